/*
 * mana_ai.h: module entry points called from _PG_init.
 *
 * Each module exposes one init function here; _PG_init only calls them.
 */
#ifndef MANA_AI_H
#define MANA_AI_H

/* worker.c: register the launcher when preloaded */
extern void mana_ai_worker_register(void);

/* shmem.c: request and attach shared state when preloaded */
extern void mana_ai_shmem_init(void);

/* drop_database.c: a DROP DATABASE of the worker's database makes it leave */
extern void mana_ai_drop_database_hook_install(void);

#endif
