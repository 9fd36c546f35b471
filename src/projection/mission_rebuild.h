/*
 * mission_rebuild.h: the fresh mission record of a write-back, from its
 * snapshot plus the rows the snapshot does not reflect, and the trim of
 * mana_ai.max_iterations_kept.
 */
#ifndef MANA_AI_MISSION_REBUILD_H
#define MANA_AI_MISSION_REBUILD_H

#include "postgres.h"

#include "utils/jsonb.h"

/*
 * The LWW-merged mission (SPEC 2), or NULL (never written or deleted): the
 * same answer as mana_ai_replay_record(user_id, "ai", "aiMissions", id),
 * read under the user's scope in memory bounded by the record's size.
 * full: fold the whole history (streamed) instead of starting from the
 * snapshot.  Does its own SPI_connect; the result is in the caller's
 * memory context.
 */
extern Jsonb *mana_ai_rebuild_mission(const char *user_id, const char *mission_id,
									  bool full);

/*
 * record with its iterations cut for an append under
 * mana_ai.max_iterations_kept (0: record itself): the newest N - 1 and
 * every older one with a step still planned.
 */
extern Jsonb *mana_ai_trim_iterations(Jsonb *record);

#endif
