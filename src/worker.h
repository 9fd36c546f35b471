/*
 * worker.h: the launcher and the tick worker (worker.c), as _PG_init
 * registers them.
 */
#ifndef MANA_AI_WORKER_H
#define MANA_AI_WORKER_H

/* Register the launcher; only when preloaded (shared_preload_libraries). */
extern void mana_ai_worker_register(void);

#endif
