/*
 * resolvers.h: the input resolvers (SPEC 6), with or without the
 * mission's grant (SPEC 5.1), the C API the tick and the SQL functions
 * call.  They may run inside the tick's transaction and do their own
 * SPI_connect/SPI_finish.
 */
#ifndef MANA_AI_RESOLVERS_H
#define MANA_AI_RESOLVERS_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "crypto/inputs.h"

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

/*
 * The one way from a mission to its inputs: unwrap the mission's grant
 * (its "grant" object member, if any; the MDK never leaves this call),
 * then resolve as above.  A grant that does not unwrap is no error: the
 * inputs are resolved without it, and with count_grant_skips (the tick)
 * its outcome is counted in ML_GRANT_SKIPS.
 */
extern List *mana_ai_resolve_mission_inputs(const char *user_id, const char *mission_id,
											Jsonb *mission, const char *iteration_id,
											bool count_grant_skips);

#endif
