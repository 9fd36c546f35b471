/*
 * tick_writeback.c: what a tick writes for one mission (SPEC 1.3, 1.4,
 * 4.8-4.10): the new iteration and the next slot, or the failure.
 *
 * Owns the sync_changes row that appends an iteration (as the owning
 * agent, under the user's scope, since 0.3.0 through the
 * claim_runner_slot / append_runner_iteration pair: the worker's role has
 * no INSERT on sync_changes, issue 19), the slot check that makes a crash
 * or a second planner never yield two iterations for one slot, the token
 * usage, and the backoff in mana_ai.mission_attempts that ends in a
 * failed iteration after mana_ai.max_attempts.  In the current sync
 * format (SPEC 11.2) the row carries the iterations alone and the next
 * slot goes to mana_ai.mission_slots.  In which subtransaction each of
 * these runs, and what follows when one raises, is tick_settle.c's.  Must
 * never write a row for a slot that is no longer the mission's next slot,
 * never write anything but iterations into a current-format record, and
 * never build SQL from data.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "ops/metrics.h"
#include "projection/mission_rebuild.h"
#include "projection/replay.h"
#include "projection/sync_format.h"
#include "shared/jsonb_members.h"
#include "shared/spi_plans.h"
#include "tick/schedule.h"
#include "tick/tick_internal.h"

/* The seed format (SPEC 1.1, 4.8-4.9): iterations and the next slot in the record. */
static const char *write_seed_sql =
	"INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,"
	"       data, field_timestamps, client_id, schema_version, actor)"
	"SELECT 'ai', 'aiMissions', $2, $1, 'update',"
	"       jsonb_build_object("
	"         'iterations', CASE WHEN jsonb_typeof($3 -> 'iterations') = 'array'"
	"                            THEN $3 -> 'iterations' ELSE '[]'::jsonb END"
	"                       || jsonb_build_array(it.iteration"
	"                            || CASE WHEN $12 IS NULL THEN '{}'::jsonb"
	"                                    ELSE jsonb_build_object('model', $12) END),"
	"         'updatedAt', w.stamp,"
	"         'nextRunAt', mana_ai.iso_text($9)),"
	"       jsonb_build_object('iterations', w.stamp, 'updatedAt', w.stamp,"
	"                          'nextRunAt', w.stamp),"
	"       'mana-ai-runner', 1,"
	"       jsonb_build_object('kind', 'ai', 'principalId', $10, 'displayName', $11,"
	"                          'missionId', $2, 'iterationId', $4,"
	"                          'rationale', coalesce($3 ->> 'objective', $3 ->> 'title', ''))"
	"  FROM (SELECT mana_ai.iso_text($8) AS stamp) w,"
	"       (SELECT mana_ai.build_iteration($4, $5, $8, $6, $7) AS iteration) it";

/*
 * The current format (SPEC 11.2): the iterations alone, stamped in
 * field_meta, origin 'agent', and the mission's own space_id (its latest
 * row that names one) so members of a shared space pull the iteration.
 * The next slot goes to mana_ai.mission_slots instead ($9).
 */
static const char *write_current_sql =
	"INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,"
	"       data, field_meta, client_id, schema_version, actor, origin, space_id)"
	"SELECT 'ai', 'aiMissions', $2, $1, 'update',"
	"       jsonb_build_object("
	"         'iterations', CASE WHEN jsonb_typeof($3 -> 'iterations') = 'array'"
	"                            THEN $3 -> 'iterations' ELSE '[]'::jsonb END"
	"                       || jsonb_build_array(it.iteration"
	"                            || CASE WHEN $12 IS NULL THEN '{}'::jsonb"
	"                                    ELSE jsonb_build_object('model', $12) END)),"
	"       jsonb_build_object('iterations', w.stamp),"
	"       'mana-ai-runner', 1,"
	"       jsonb_build_object('kind', 'ai', 'principalId', $10, 'displayName', $11,"
	"                          'missionId', $2, 'iterationId', $4,"
	"                          'rationale', coalesce($3 ->> 'objective', $3 ->> 'title', '')),"
	"       'agent',"
	"       (SELECT s.space_id FROM public.sync_changes s"
	"         WHERE s.table_name = 'aiMissions' AND s.record_id = $2 AND s.user_id = $1"
	"           AND s.app_id = 'ai' AND s.space_id IS NOT NULL"
	"         ORDER BY s.created_at DESC, s.id DESC LIMIT 1)"
	"  FROM (SELECT mana_ai.iso_text($8) AS stamp) w,"
	"       (SELECT mana_ai.build_iteration($4, $5, $8, $6, $7) AS iteration) it";

/*
 * Since 0.3.0 (issue 19) the worker's role has no INSERT on sync_changes:
 * the same row goes through mana_ai.append_runner_iteration, which takes
 * data, stamps and actor, checks them and the claim taken just before
 * (claim_sql), and fills in the rest (op, app, table, client_id, and in
 * the current format origin and space_id).  The statements above stay for
 * a catalog older than 0.3.0, whose worker's role still has the INSERT.
 */
#define APPEND_ITERATION(DATA_EXTRA, STAMPS_EXTRA) \
	"SELECT mana_ai.append_runner_iteration($1, $2," \
	"       jsonb_build_object(" \
	"         'iterations', CASE WHEN jsonb_typeof($3 -> 'iterations') = 'array'" \
	"                            THEN $3 -> 'iterations' ELSE '[]'::jsonb END" \
	"                       || jsonb_build_array(it.iteration" \
	"                            || CASE WHEN $12 IS NULL THEN '{}'::jsonb" \
	"                                    ELSE jsonb_build_object('model', $12) END)" DATA_EXTRA ")," \
	"       jsonb_build_object('iterations', w.stamp" STAMPS_EXTRA ")," \
	"       jsonb_build_object('kind', 'ai', 'principalId', $10, 'displayName', $11," \
	"                          'missionId', $2, 'iterationId', $4," \
	"                          'rationale', coalesce($3 ->> 'objective', $3 ->> 'title', '')))" \
	"  FROM (SELECT mana_ai.iso_text($8) AS stamp) w," \
	"       (SELECT mana_ai.build_iteration($4, $5, $8, $6, $7) AS iteration) it"

/* seed: updatedAt and nextRunAt too, stamped like iterations (SPEC 1.3) */
static const char *append_seed_sql =
	APPEND_ITERATION(", 'updatedAt', w.stamp, 'nextRunAt', mana_ai.iso_text($9)",
					 ", 'updatedAt', w.stamp, 'nextRunAt', w.stamp");
static const char *append_current_sql = APPEND_ITERATION("", "");

static const char *claim_sql = "SELECT mana_ai.claim_runner_slot($1, $2, $3)";

/*
 * The slot the current format plans next, from the fresh record's
 * nextRunAt ($3) and mana_ai's own slot state (the same rule as the view
 * mana_ai.missions): the record's, unless it is not later than the slot
 * planned last; then the next one kept here.  Locked, so no two writers
 * settle one slot.
 */
static const char *slot_state_sql =
	"SELECT planned_slot, next_slot FROM mana_ai.mission_slots"
	" WHERE user_id = $1 AND mission_id = $2 FOR UPDATE";

static const char *effective_slot_sql =
	"SELECT CASE WHEN x.r IS NULL OR $4::timestamptz IS NULL OR x.r > $4::timestamptz"
	"            THEN $3 ELSE $5 END"
	"  FROM (SELECT mana_ai.iso_timestamp($3) AS r) x";

static const char *slot_planned_sql =
	"INSERT INTO mana_ai.mission_slots (user_id, mission_id, planned_slot, next_slot)"
	" VALUES ($1, $2, mana_ai.iso_timestamp($3), mana_ai.iso_text($4))"
	" ON CONFLICT (user_id, mission_id) DO UPDATE"
	"   SET planned_slot = EXCLUDED.planned_slot, next_slot = EXCLUDED.next_slot,"
	"       updated_at = now()";

static const char *settled_sql =
	"DELETE FROM mana_ai.mission_attempts WHERE user_id = $1 AND mission_id = $2";

static const char *tokens_sql =
	"INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens)"
	" VALUES ($1, $2, $3, $4)";

/* Whether the catalog has the 0.3.0 write path (append_runner_iteration). */
static bool
append_installed(void)
{
	Oid			types[5] = {TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID};

	return OidIsValid(LookupFuncName(list_make2(makeString("mana_ai"),
												makeString("append_runner_iteration")),
									 5, types, true));
}

/*
 * The slot the current format would plan now for this mission: its
 * record's nextRunAt (record_slot, may be NULL) against the slot state.
 * Runs in the user's scope; palloc'd in the caller's context, or NULL.
 */
static char *
current_slot(Job *job, const char *record_slot)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', 'n', 'n'};
	char	   *slot = NULL;
	bool		isnull;

	values[0] = CStringGetTextDatum(job->user_id);
	values[1] = CStringGetTextDatum(job->mission_id);
	values[2] = record_slot ? CStringGetTextDatum(record_slot) : (Datum) 0;
	nulls[2] = record_slot ? ' ' : 'n';
	mana_ai_spi_connect();
	mana_ai_run_kept(slot_state_sql, 2, types, 0, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		values[3] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		nulls[3] = isnull ? 'n' : ' ';
		values[4] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		nulls[4] = isnull ? 'n' : ' ';
	}
	mana_ai_run_kept(effective_slot_sql, 5, types, 0, values, nulls, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		slot = v ? MemoryContextStrdup(caller, v) : NULL;
	}
	mana_ai_spi_finish();
	MemoryContextSwitchTo(caller);
	return slot;
}

/*
 * Append the iteration and the next slot to the mission as the owning
 * agent.  The record is rebuilt fresh under the user's scope (its snapshot
 * and the rows not in it yet, mission_rebuild.c), so nothing the user
 * wrote since the refresh is lost; if its nextRunAt is no longer
 * the slot we planned, someone already planned it (or it was
 * rescheduled): write nothing and answer false.
 */
bool
tick_write_iteration(Tick *t, Job *job, Jsonb *plan, Jsonb *error)
{
	int			scope;
	Jsonb	   *fresh;
	char	   *fresh_slot;
	bool		current = mana_ai_sync_format() == SYNC_FORMAT_CURRENT;
	Jsonb	   *cadence;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = 0;
	bool		next_null = true;
	Oid			types[12] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, JSONBOID,
	JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[12];
	char		nulls[12];
	/* a failed iteration keeps exactly SPEC 1.3's shape: no model */
	const char *model = (job->prepared && error == NULL) ? job->call->model : NULL;

	/*
	 * The rebuilt record and what is built from it are this mission's
	 * only: kept in the tick's memory they added a record per mission
	 * until the tick ended (some 250 MB at 10,000).  Nothing made here
	 * outlives the call.
	 */
	if (t->write_cxt == NULL)
		t->write_cxt = AllocSetContextCreate(t->cxt, "mana_ai write-back",
											 ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(t->write_cxt);
	MemoryContextSwitchTo(t->write_cxt);
	scope = mana_ai_enter_user_scope(job->user_id);
	fresh = mana_ai_rebuild_mission(job->user_id, job->mission_id, false);
	fresh_slot = jb_member_text(fresh, "nextRunAt");
	if (current && fresh != NULL)
		fresh_slot = current_slot(job, fresh_slot);
	if (fresh == NULL || fresh_slot == NULL || strcmp(fresh_slot, job->slot) != 0)
	{
		mana_ai_leave_user_scope(scope);
		MemoryContextSwitchTo(t->cxt);
		job->outcome = "stale";
		return false;
	}
	/* An invalid cadence has no next slot: nextRunAt is cleared. */
	cadence = jb_member_object(fresh, "cadence");
	if (cadence != NULL && !job->cadence_invalid)
		next = mana_ai_next_run_at(cadence, now, &next_null);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(job->user_id);
	values[1] = CStringGetTextDatum(job->mission_id);
	values[2] = JsonbPGetDatum(mana_ai_trim_iterations(fresh));
	values[3] = CStringGetTextDatum(job->iteration_id);
	values[4] = TimestampTzGetDatum(job->started_at);
	values[5] = plan ? JsonbPGetDatum(plan) : (Datum) 0;
	nulls[5] = plan ? ' ' : 'n';
	values[6] = error ? JsonbPGetDatum(error) : (Datum) 0;
	nulls[6] = error ? ' ' : 'n';
	values[7] = TimestampTzGetDatum(now);
	values[8] = TimestampTzGetDatum(next);
	nulls[8] = next_null ? 'n' : ' ';
	values[9] = CStringGetTextDatum(job->agent_id);
	values[10] = CStringGetTextDatum(job->agent_name);
	/* The model that answered goes on a planned iteration (nowhere else). */
	values[11] = model ? CStringGetTextDatum(model) : (Datum) 0;
	nulls[11] = model ? ' ' : 'n';

	mana_ai_spi_connect();
	if (append_installed())
	{
		Oid			claim_types[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		claim[3] = {values[0], values[1], CStringGetTextDatum(job->slot)};

		mana_ai_run_kept(claim_sql, 3, claim_types, 0, claim, NULL, SPI_OK_SELECT);
		mana_ai_run_kept(current ? append_current_sql : append_seed_sql, 12, types, 0,
						 values, nulls, SPI_OK_SELECT);
	}
	else
		mana_ai_run_kept(current ? write_current_sql : write_seed_sql, 12, types, 0,
						 values, nulls, SPI_OK_INSERT);
	if (current)
	{
		Oid			slot_types[4] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
		Datum		slot_values[4] = {values[0], values[1],
		CStringGetTextDatum(job->slot), values[8]};
		char		slot_nulls[4] = {' ', ' ', ' ', nulls[8]};

		mana_ai_run_kept(slot_planned_sql, 4, slot_types, 0, slot_values, slot_nulls,
						 SPI_OK_INSERT);
	}

	/* The slot is settled: forget its failures. */
	mana_ai_run_kept(settled_sql, 2, types, 0, values, NULL, SPI_OK_DELETE);
	mana_ai_spi_finish();
	mana_ai_leave_user_scope(scope);
	MemoryContextSwitchTo(t->cxt);
	job->written = true;
	job->outcome = error ? "failed" : "planned";
	return true;
}

/*
 * The tokens of every round of the mission's conversation count against
 * its agent's 24 h budget, whether a plan came of them or not.  Each step
 * of settle_mission counts them in its own subtransaction, so exactly the
 * step that commits has counted them once.
 */
void
tick_count_tokens(Tick *t, Job *job)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[4];

	if (!job->prepared || job->call->total_tokens <= 0)
		return;
	values[0] = CStringGetTextDatum(job->user_id);
	values[1] = CStringGetTextDatum(job->agent_id);
	values[2] = CStringGetTextDatum(job->mission_id);
	values[3] = Int64GetDatum(job->call->total_tokens);
	mana_ai_spi_connect();
	mana_ai_run_kept(tokens_sql, 4, types, 0, values, NULL, SPI_OK_INSERT);
	mana_ai_spi_finish();
	MemoryContextSwitchTo(t->cxt);
}

/*
 * The backoff row, or the failed iteration once the attempts are used up
 * (at once for an invalid cadence: no retry can help it; never when only
 * the backoff can still be saved).
 */
static void
save_failure(Tick *t, Job *job)
{
	int			attempts = job->attempts_before + 1;
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT8OID, TEXTOID};
	Datum		values[6];
	double		backoff = Min(3600.0, mana_ai_tick_interval * pow(2.0, attempts - 1));

	if ((attempts >= mana_ai_max_attempts || job->cadence_invalid) && !job->backoff_only)
	{
		JsonbParseState *state = NULL;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		jb_push_text_member(&state, "name", job->fail_name);
		jb_push_text_member(&state, "message", job->fail_message ? job->fail_message : "failed");
		jb_push_text_member(&state, "phase", job->fail_phase);
		if (tick_write_iteration(t, job, NULL,
								 JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL))))
			t->failed_iterations++;
		return;
	}

	values[0] = CStringGetTextDatum(job->user_id);
	values[1] = CStringGetTextDatum(job->mission_id);
	values[2] = CStringGetTextDatum(job->slot);
	values[3] = Int32GetDatum(attempts);
	values[4] = Float8GetDatum(backoff);
	values[5] = CStringGetTextDatum(job->fail_message ? job->fail_message : job->fail_phase);
	tick_exec(t, "INSERT INTO mana_ai.mission_attempts"
			  "       (user_id, mission_id, slot, attempts, next_attempt_at, last_error)"
			  " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6)"
			  " ON CONFLICT (user_id, mission_id) DO UPDATE"
			  "   SET slot = EXCLUDED.slot, attempts = EXCLUDED.attempts,"
			  "       next_attempt_at = EXCLUDED.next_attempt_at,"
			  "       last_error = EXCLUDED.last_error, updated_at = now()",
			  6, types, values, SPI_OK_INSERT, "record the failed attempt");
	job->outcome = "retry";
}

/*
 * A failed attempt for this slot: back off exponentially from the tick
 * interval (capped at an hour); after mana_ai.max_attempts write a failed
 * iteration so the user sees it and the slot advances (SPEC 4.10).
 */
void
tick_record_failure(Tick *t, Job *job)
{
	/* If saving raises, the caller counts and reports it: only once. */
	save_failure(t, job);
	mana_ai_metric_inc(MC_MISSION_ERRORS, 1);
	tick_add_error(t, "mission %s: %s: %s", job->mission_id, job->fail_phase,
				   job->fail_message ? job->fail_message : "failed");
}
