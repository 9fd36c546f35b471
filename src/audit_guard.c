/*
 * audit_guard.c: keeps mana_ai.decrypt_audit append-only.
 *
 * Owns the trigger that refuses UPDATE, DELETE and TRUNCATE.  The only
 * way past it is mana_ai_audit_guard_lift(), a C call made by the
 * retention code in this process; nothing reachable from SQL can flip it.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"

#include "audit_guard.h"

static bool retention_in_progress = false;

/* Lifted around the retention DELETE only; always reset in PG_FINALLY. */
void
mana_ai_audit_guard_lift(bool lifted)
{
	retention_in_progress = lifted;
}

PG_FUNCTION_INFO_V1(mana_ai_decrypt_audit_guard);
Datum
mana_ai_decrypt_audit_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mana_ai.decrypt_audit_guard() must be called as a trigger")));

	if (retention_in_progress && TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		return PointerGetDatum(NULL);	/* statement trigger: result ignored */

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("mana_ai.decrypt_audit is append-only"),
			 errdetail("Rows are removed only by the worker's retention job after mana_ai.audit_retention."),
			 errhint("Lower mana_ai.audit_retention to keep fewer rows.")));
	PG_RETURN_NULL();			/* keep compiler quiet */
}
