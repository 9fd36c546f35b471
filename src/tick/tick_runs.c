/*
 * tick_runs.c: a tick's row in mana_ai.tick_runs (SPEC 4.11) and the
 * result it returns.
 *
 * Owns the run's life: inserted "running" (or "overlap-skipped") when the
 * tick starts, closed "ok" with the counts and the result when it ends,
 * or "failed" with the error when an error ended the worker's tick (the
 * closing transaction also takes the tick's mission_runs rows,
 * tick_mission_runs.c); and the result object {scannedAt,
 * dueMissionCount, ..., errors[]}.  Runs in whatever transaction the
 * caller has open.  Must never record more than
 * MAX_TICK_ERRORS errors, and never put key or plaintext bytes into a
 * row: errors are the tick's own short messages.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "shared/instants.h"
#include "shared/jsonb_members.h"
#include "shared/spi_plans.h"
#include "tick/tick_internal.h"

#define MAX_TICK_ERRORS 50

void
tick_runs_insert(Tick *t, const char *status)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(t->mode == TICK_WORKER ? "worker" : "sql");
	values[1] = CStringGetTextDatum(status);
	mana_ai_spi_connect();
	if (SPI_execute_with_args("INSERT INTO mana_ai.tick_runs (source, status, finished_at, errors)"
							  " VALUES ($1, $2, CASE WHEN $2 = 'running' THEN NULL ELSE clock_timestamp() END,"
							  "         CASE WHEN $2 = 'running' THEN '[]'::jsonb ELSE jsonb_build_array($2) END)"
							  " RETURNING id",
							  2, types, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "mana_ai: could not record the tick run");
	t->run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&(bool) {false}));
	mana_ai_spi_finish();
	MemoryContextSwitchTo(t->cxt);
}

void
tick_runs_finish(Tick *t, const char *status)
{
	Oid			types[7] = {INT8OID, TEXTOID, INT4OID, INT4OID, INT4OID, INT4OID, JSONBOID};
	Datum		values[7];
	Jsonb	   *result = tick_result(t);

	values[0] = Int64GetDatum(t->run_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = Int32GetDatum(t->due);
	values[3] = Int32GetDatum(t->produced);
	values[4] = Int32GetDatum(t->written);
	values[5] = Int32GetDatum(t->parse_failures);
	values[6] = JsonbPGetDatum(result);
	tick_exec(t, "UPDATE mana_ai.tick_runs SET status = $2, finished_at = clock_timestamp(),"
			  " due_missions = $3, plans_produced = $4, plans_written_back = $5,"
			  " parse_failures = $6, errors = $7 -> 'errors', result = $7"
			  " WHERE id = $1",
			  7, types, values, SPI_OK_UPDATE, "close the tick run");
	/* And what it decided for each mission, in the same transaction. */
	tick_mission_runs_record_quietly(t, NULL);
}

/* Close a run still "running" as failed with message (inside a transaction). */
void
tick_runs_mark_failed(int64 run_id, const char *message)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(run_id);
	values[1] = CStringGetTextDatum(message);
	mana_ai_spi_connect();
	if (SPI_execute_with_args("UPDATE mana_ai.tick_runs SET status = 'failed', finished_at = clock_timestamp(),"
							  "       errors = errors || jsonb_build_array($2)"
							  " WHERE id = $1 AND status = 'running'",
							  2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "mana_ai: could not mark the tick run failed");
	mana_ai_spi_finish();
}

void
tick_add_error(Tick *t, const char *fmt,...)
{
	MemoryContext old = MemoryContextSwitchTo(t->cxt);
	StringInfoData buf;
	va_list		args;

	if (list_length(t->errors) >= MAX_TICK_ERRORS)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	t->errors = lappend(t->errors, buf.data);
	MemoryContextSwitchTo(old);
}

/* The phase that began at t->phase_mark ends now; the next one begins. */
void
tick_phase_done(Tick *t, TickPhase phase)
{
	TimestampTz now = GetCurrentTimestamp();

	t->phase_ms[phase] += (now - t->phase_mark) / 1000.0;
	t->phase_mark = now;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static void
push_ms_member(JsonbParseState **state, const char *name, double ms)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
														Float8GetDatum(rint(ms * 10.0) / 10.0)));
	jb_push_value_member(state, name, &v);
}

/*
 * commitLatencyMs {n, p50, p95, max}: per plan the worker committed, the
 * time from its last answer to its batch's commit (nearest rank).
 */
static void
push_commit_latency(JsonbParseState **state, Tick *t)
{
	int			n = t->n_commit_ms;

	qsort(t->commit_ms, n, sizeof(double), cmp_double);
	jb_push_text(state, WJB_KEY, "commitLatencyMs");
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	jb_push_int_member(state, "n", n);
	push_ms_member(state, "p50", t->commit_ms[(int) ceil(0.50 * n) - 1]);
	push_ms_member(state, "p95", t->commit_ms[(int) ceil(0.95 * n) - 1]);
	push_ms_member(state, "max", t->commit_ms[n - 1]);
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/*
 * {scannedAt, dueMissionCount, plansProduced, plansWrittenBack,
 * parseFailures, failedIterations, tickRunId, phaseMs {refresh, select,
 * prepare, llm, writeback}, commitLatencyMs {n, p50, p95, max} (the
 * worker, when it committed a plan), errors[]}
 */
Jsonb *
tick_result(Tick *t)
{
	JsonbParseState *state = NULL;
	ListCell   *lc;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	jb_push_text_member(&state, "scannedAt", mana_ai_iso_utc(t->scanned_at, 3));
	jb_push_int_member(&state, "dueMissionCount", t->due);
	jb_push_int_member(&state, "plansProduced", t->produced);
	jb_push_int_member(&state, "plansWrittenBack", t->written);
	jb_push_int_member(&state, "parseFailures", t->parse_failures);
	jb_push_int_member(&state, "failedIterations", t->failed_iterations);
	jb_push_int_member(&state, "tickRunId", t->run_id);
	jb_push_text(&state, WJB_KEY, "phaseMs");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < TP_COUNT; i++)
	{
		static const char *const names[TP_COUNT] = {"refresh", "select", "prepare", "llm", "writeback"};
		JsonbValue	v;

		v.type = jbvNumeric;
		v.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
															Float8GetDatum(rint(t->phase_ms[i] * 10.0) / 10.0)));
		jb_push_value_member(&state, names[i], &v);
	}
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	if (t->n_commit_ms > 0)
		push_commit_latency(&state, t);
	jb_push_text(&state, WJB_KEY, "errors");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, t->errors)
		jb_push_text(&state, WJB_ELEM, (char *) lfirst(lc));
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}
