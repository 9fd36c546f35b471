/*
 * snapshot_load.h: one stored snapshot record by its key.
 */
#ifndef MANA_AI_SNAPSHOT_LOAD_H
#define MANA_AI_SNAPSHOT_LOAD_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

/*
 * The record of mission_snapshots / agent_snapshots for (user_id, id), or
 * NULL when there is none; in the caller's memory context.  Does its own
 * SPI_connect (nesting inside a caller's connection is fine).
 */
extern Jsonb *mana_ai_load_mission(const char *user_id, const char *mission_id);
extern Jsonb *mana_ai_load_agent(const char *user_id, const char *agent_id);

/*
 * The mission named by a SQL function's first two arguments (user_id
 * text, mission_id text), both returned as C strings; ERROR for an empty
 * user id.
 */
extern Jsonb *mana_ai_load_mission_args(FunctionCallInfo fcinfo, char **user_id,
										char **mission_id);

#endif
