/*
 * audit.h: the decrypt audit trail (SPEC 5.4).
 */
#ifndef MANA_AI_AUDIT_H
#define MANA_AI_AUDIT_H

#include "postgres.h"

/*
 * Append one decrypt_audit row under user_id's RLS scope.  Never throws:
 * a failed write is a WARNING (the row is lost) and -1.
 */
extern int64 mana_ai_audit_write(const char *user_id, const char *mission_id,
								 const char *iteration_id, const char *table_name,
								 const char *record_id, const char *status,
								 const char *reason);

#endif
