/*
 * tick_lock.h: the tick lock (a relation lock on mana_ai.tick_lock) and
 * the refresh's bounded wait for its row locks (tick_lock.c).
 */
#ifndef MANA_AI_TICK_LOCK_H
#define MANA_AI_TICK_LOCK_H

/* The worker's error path: release the session-level tick lock, if held. */
extern void tick_lock_release_after_error(void);

/* Run sql (a SELECT ... FOR UPDATE) waiting at most mana_ai.refresh_lock_timeout. */
extern void refresh_lock_take(const char *sql);

#endif
