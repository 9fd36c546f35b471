/*
 * tick_mission_runs.c: what a tick decided for each mission it
 * considered, as rows of mana_ai.mission_runs ("why did my mission not
 * run?", issue 13).
 *
 * A mission is considered when the select phase found it in
 * mana_ai.due_missions: it then has exactly one row for the tick, with
 * the gate's decision (skipped-*, backing-off), or for a mission taken
 * its outcome: ran (iteration id, model, tokens, planner time) or failed
 * (phase and message).  Every row of a tick goes to the database in one
 * statement, mana_ai.record_mission_runs(tick_id, jsonb), in the
 * transaction that closes the tick's run.
 *
 * Owns turning the tick's jobs into those rows.  Must never put a key or
 * decrypted text into a row: the messages are the ones the failed
 * iteration and tick_runs.errors already carry (the LLM client's fixed
 * reasons, the plan parser's reason codes, the tick's own errors).
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "ops/guc.h"
#include "shared/jsonb_members.h"
#include "shared/spi_plans.h"
#include "tick/tick.h"
#include "tick/tick_internal.h"

/* The answer of a slot that moved on while its plan was being made. */
#define NOT_WRITTEN "not written: the slot was planned or rescheduled meanwhile"

static const char *record_sql = "SELECT mana_ai.record_mission_runs($1, $2)";

/* The model that answered the mission's last round (NULL when none did). */
static const char *
job_model(Job *job)
{
	return job->call->model;
}

bool
mana_ai_mission_runs_installed(void)
{
	Oid			nsp = get_namespace_oid("mana_ai", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("mission_runs", nsp));
}

/* One row object: only its non-null members (the rest read as NULL). */
static void
push_row(JsonbParseState **state, Job *job, const char *tick_error)
{
	const char *decision = job->decision;
	const char *phase = NULL;
	const char *message = NULL;
	bool		called = decision == NULL && job->prepared && job->call != NULL &&
		job->call->attempts > 0;
	bool		written = job->written;

	if (decision != NULL)
		;						/* a gate's decision: nothing else to say */
	else if (!job->settled)
	{
		/* An error ended the tick before this mission's outcome. */
		decision = "failed";
		phase = "tick";
		message = tick_error ? tick_error : "the tick ended with an error";
		written = false;
	}
	else if (job->settle_error != NULL)
	{
		/* Its write-back raised and was rolled back with what it wrote. */
		decision = "failed";
		phase = job->fail_phase ? job->fail_phase : "writing-back";
		message = job->settle_error;
		written = false;
	}
	else if (job->fail_phase != NULL)
	{
		decision = "failed";
		phase = job->fail_phase;
		message = job->fail_message ? job->fail_message : "failed";
	}
	else
	{
		decision = "ran";
		if (!written)
			message = NOT_WRITTEN;
	}
	/* steps the planner dropped, refused or flagged: reason codes only */
	if (job->step_notes != NULL && job->settle_error == NULL && job->settled)
		message = message ? psprintf("%s; %s", message, job->step_notes) : job->step_notes;

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	jb_push_text_member(state, "user_id", job->user_id);
	jb_push_text_member(state, "mission_id", job->mission_id);
	jb_push_text_member(state, "agent_id", job->agent_id);
	if (job->slot)
		jb_push_text_member(state, "slot", job->slot);
	jb_push_text_member(state, "decision", decision);
	if (written)
		jb_push_text_member(state, "iteration_id", job->iteration_id);
	if (called)
	{
		if (job_model(job) != NULL)
			jb_push_text_member(state, "model", job_model(job));
		if (job->call->total_tokens >= 0)
			jb_push_int_member(state, "tokens", job->call->total_tokens);
		/* to the microsecond: the clock's resolution, not binary noise */
		jb_push_float_member(state, "planner_ms", rint(job->call->seconds * 1e6) / 1e3);
	}
	if (phase)
		jb_push_text_member(state, "error_phase", phase);
	if (message)
		jb_push_text_member(state, "error_message", message);
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/*
 * Write one row per considered mission with one call of
 * mana_ai.record_mission_runs, in the transaction open now (none before
 * the schema is upgraded to 0.2.0).  tick_error:
 * the error that ended the tick (NULL when it finished), the reason of
 * every mission it took but did not settle.
 */
void
tick_mission_runs_record(Tick *t, const char *tick_error)
{
	JsonbParseState *state = NULL;
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2];
	ListCell   *lc;
	int			n = 0;

	if (t->considered == NIL || !mana_ai_mission_runs_installed())
		return;
	MemoryContextSwitchTo(t->cxt);
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, t->considered)
	{
		Job		   *job = (Job *) lfirst(lc);

		/* a row cut short by an error inside the select phase has no principal */
		if (job->agent_id == NULL)
			continue;
		push_row(&state, job, tick_error);
		n++;
	}
	if (n == 0)
		return;
	values[1] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL)));
	values[0] = Int64GetDatum(t->run_id);

	mana_ai_spi_connect();
	mana_ai_run_kept(record_sql, 2, types, 0, values, NULL, SPI_OK_SELECT);
	mana_ai_spi_finish();
	MemoryContextSwitchTo(t->cxt);
}

/*
 * The same in a subtransaction, so a failure here (a WARNING) never costs
 * the run's own record: the tick's closing transaction (or, after an
 * error ended the worker's tick, the one that marks the run failed), and
 * from SQL the caller's transaction with every write-back in it.
 */
void
tick_mission_runs_record_quietly(Tick *t, const char *tick_error)
{
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		tick_mission_runs_record(t, tick_error);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(t->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("mana_ai: could not record the tick's mission runs: %s",
						edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	CurrentResourceOwner = owner;
	MemoryContextSwitchTo(t->cxt);
}
