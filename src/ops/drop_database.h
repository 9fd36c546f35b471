/*
 * drop_database.h: the hook that makes the tick worker leave a database
 * being dropped (drop_database.c).
 */
#ifndef MANA_AI_DROP_DATABASE_H
#define MANA_AI_DROP_DATABASE_H

/* Install the object-access hook; only when preloaded. */
extern void mana_ai_drop_database_hook_install(void);

#endif
