/*
 * audit_guard.c: keeps mana_ai.decrypt_audit and mana_ai.mission_runs
 * append-only.
 *
 * Owns the triggers that refuse UPDATE, DELETE and TRUNCATE.  The only
 * way past them is mana_ai_audit_guard_lift(), a C call made by the
 * retention code in this process; nothing reachable from SQL can flip it.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/rel.h"

#include "crypto/audit_guard.h"

static bool retention_in_progress = false;

/* Lifted around the retention DELETE only; always reset in PG_FINALLY. */
void
mana_ai_audit_guard_lift(bool lifted)
{
	retention_in_progress = lifted;
}

/* The statement trigger of either table: only retention's DELETE passes. */
static Datum
append_only_guard(FunctionCallInfo fcinfo, const char *retention_guc)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("an append-only guard of mana_ai must be called as a trigger")));

	if (retention_in_progress && TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		return PointerGetDatum(NULL);	/* statement trigger: result ignored */

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("mana_ai.%s is append-only", RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("Rows are removed only by the worker's retention job after %s.", retention_guc),
			 errhint("Lower %s to keep fewer rows.", retention_guc)));
	PG_RETURN_NULL();			/* keep compiler quiet */
}

PG_FUNCTION_INFO_V1(mana_ai_decrypt_audit_guard);
Datum
mana_ai_decrypt_audit_guard(PG_FUNCTION_ARGS)
{
	return append_only_guard(fcinfo, "mana_ai.audit_retention");
}

PG_FUNCTION_INFO_V1(mana_ai_mission_runs_guard);
Datum
mana_ai_mission_runs_guard(PG_FUNCTION_ARGS)
{
	return append_only_guard(fcinfo, "mana_ai.mission_runs_retention");
}
