/*
 * replay.h: one record replayed from sync_changes under its user's
 * row-level-security scope, and the scope helpers the refresh shares.
 */
#ifndef MANA_AI_REPLAY_H
#define MANA_AI_REPLAY_H

#include "postgres.h"

#include "utils/jsonb.h"

/*
 * Set app.current_user_id to user_id until mana_ai_leave_user_scope (or
 * the end of the transaction on error), as a function's SET clause does.
 * Refuses an empty or NULL user id.  Returns the GUC nest level.
 */
extern int	mana_ai_enter_user_scope(const char *user_id);
extern void mana_ai_leave_user_scope(int nest_level);

/*
 * The LWW-merged record (SPEC 2) or NULL (never written or tombstoned),
 * read with app.current_user_id = user_id.  Does its own SPI_connect, so
 * it may be called with or without SPI already connected; the result is
 * allocated in the caller's memory context.
 */
extern Jsonb *mana_ai_replay_record(const char *user_id, const char *app_id,
									const char *table_name, const char *record_id);

#endif
