/*
 * resolvers.h: the grant unwrap and the input resolvers (SPEC 5.1, 6),
 * the C API the tick calls.  Both may run inside the tick's transaction
 * and do their own SPI_connect/SPI_finish.
 */
#ifndef MANA_AI_RESOLVERS_H
#define MANA_AI_RESOLVERS_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "inputs.h"

/*
 * SPEC 5.1 outcome string ("ok", "not-configured", "expired", "malformed",
 * "wrap-rejected"); fills mdk only on "ok"; the caller wipes it.  grant is
 * the mission's "grant" member (NULL counts as malformed).  Never throws
 * for a bad grant; counts nothing (the tick counts grant skips).
 */
extern const char *mana_ai_unwrap_grant(Jsonb *grant, const char *mission_id,
										 unsigned char mdk[32]);

/*
 * Resolve the mission's inputs (SPEC 6) -> List of ResolvedInput*, in the
 * caller's memory context, in the mission's input order.  mdk NULL = no
 * usable grant: encrypted inputs are dropped silently, without audit.
 * Each encrypted input attempted leaves one decrypt_audit row carrying
 * iteration_id (may be NULL).  Unknown modules, never-written, tombstoned
 * and deletedAt records are dropped.  Bumps ML_DECRYPTS and
 * ML_GRANT_SCOPE_VIOLATIONS by table.
 */
extern List *mana_ai_resolve_inputs(const char *user_id, const char *mission_id,
									Jsonb *mission, const unsigned char *mdk,
									const char *iteration_id);

#endif
