/*
 * tick_lock.h: the tick lock (a relation lock on mana_ai.tick_lock,
 * tick_lock.c), for the worker's error path.
 */
#ifndef MANA_AI_TICK_LOCK_H
#define MANA_AI_TICK_LOCK_H

/* The worker's error path: release the session-level tick lock, if held. */
extern void tick_lock_release_after_error(void);

#endif
