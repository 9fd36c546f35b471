/*
 * mission_grant.h: a mission's key grant inside the server (SPEC 5.1).
 */
#ifndef MANA_AI_MISSION_GRANT_H
#define MANA_AI_MISSION_GRANT_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "core/grant.h"

/*
 * The "grant" member of a mission record, parsed (malloc'd: grant_free
 * it), or NULL when absent or malformed; *present says which.
 */
extern MissionGrant *mana_ai_mission_grant(Jsonb *mission, bool *present);

/*
 * SPEC 5.1 outcome string ("ok", "not-configured", "expired", "malformed",
 * "wrap-rejected"); fills mdk only on "ok"; the caller wipes it.  grant is
 * the mission's "grant" member (NULL counts as malformed).  With
 * mission_id set, a grant derived for another mission is malformed.
 * Never throws for a bad grant; counts nothing.
 */
extern const char *mana_ai_unwrap_grant(Jsonb *grant, const char *mission_id,
										 unsigned char mdk[32]);

#endif
