/*
 * tick_run.c: one tick of the runner (SPEC 4), for the worker and for
 * SELECT mana_ai_tick() alike.
 *
 * Phases: lock and record the run; refresh the snapshots; pick the due
 * missions and apply the agent gates; per mission unwrap the grant,
 * resolve the inputs and render the prompt; call the LLM for all of them
 * at once; per mission parse and write back (or count a failure and back
 * off); close the run.  In the worker every phase is its own short
 * transaction and none is open while the LLM calls run; each mission's
 * write-back commits on its own.  Called from SQL everything happens in
 * the caller's transaction, each mission in a subtransaction.
 *
 * Owns the order of the phases, the gates, retries and the write-back.
 * Must never hold a transaction across the LLM phase in the worker, and
 * never keep an MDK beyond the mission it was unwrapped for.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "crypto.h"
#include "guc.h"
#include "llm.h"
#include "metrics.h"
#include "planner.h"
#include "replay.h"
#include "resolvers.h"
#include "schedule.h"
#include "snapshot.h"
#include "spi_plans.h"
#include "tick.h"

/* tick lock key (int4, int4): "mana", 100; snapshot.c uses 1 and 2 */
#define TICK_LOCK_KEY1	1835101793
#define TICK_LOCK_KEY2	1
#define LEGACY_AGENT_ID	"legacy:ai-default"
#define MAX_TICK_ERRORS 50

typedef enum TickMode
{
	TICK_SQL,
	TICK_WORKER
} TickMode;

/* A mission taken in this tick, from gate to write-back. */
typedef struct Job
{
	char	   *user_id;
	char	   *mission_id;
	char	   *slot;			/* the nextRunAt text being planned */
	char	   *agent_id;		/* principal: agent id or legacy */
	char	   *agent_name;
	bool		has_agent;		/* an agent snapshot was found */
	Jsonb	   *mission;
	Jsonb	   *agent;			/* NULL for legacy missions */
	char		iteration_id[37];
	TimestampTz started_at;
	int			attempts_before;
	bool		prepared;		/* prompt rendered, LLM call pending */
	LlmCall    *call;
	char	   *fail_phase;		/* set when the mission failed */
	char	   *fail_name;
	char	   *fail_message;
} Job;

typedef struct Tick
{
	TickMode	mode;
	MemoryContext cxt;			/* survives the phase transactions */
	int64		run_id;
	TimestampTz scanned_at;
	int			due;
	int			produced;
	int			written;
	int			parse_failures;
	int			failed_iterations;
	List	   *errors;			/* char * */
	List	   *jobs;			/* Job * */
} Tick;

static Jsonb *run_tick(TickMode mode, MemoryContext cxt);
static bool try_tick_lock(TickMode mode);
static void release_tick_lock(TickMode mode);
static void worker_xact_begin(void);
static void fail_worker_run(Tick *t) pg_attribute_noreturn();
static void unit_begin(Tick *t);
static void unit_commit(Tick *t);
static bool run_isolated(Tick *t, void (*fn) (Tick *, Job *), Job *job, char **error);
static void insert_run(Tick *t, const char *status);
static void finish_run(Tick *t, const char *status);
static void refresh_phase(Tick *t);
static void select_phase(Tick *t);
static void prepare_job(Tick *t, Job *job);
static void llm_phase(Tick *t);
static void settle_job(Tick *t, Job *job);
static bool write_iteration(Tick *t, Job *job, Jsonb *plan, Jsonb *error);
static void record_failure(Tick *t, Job *job);
static void save_failure(Tick *t, Job *job);
static void add_error(Tick *t, const char *fmt,...) pg_attribute_printf(2, 3);
static Jsonb *tick_result(Tick *t);
static void new_uuid(char *out);
static char *member_text(Jsonb *jb, const char *key);
static Jsonb *member_object(Jsonb *jb, const char *key);
static Jsonb *jsonb_from_cstring(const char *s);

/* ------------------------------------------------------------ entry points */

PG_FUNCTION_INFO_V1(mana_ai_tick_sql);
Datum
mana_ai_tick_sql(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "mana_ai tick",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Jsonb	   *result = run_tick(TICK_SQL, cxt);
	Jsonb	   *copy;

	MemoryContextSwitchTo(old);
	copy = (Jsonb *) DatumGetPointer(datumCopy(JsonbPGetDatum(result), false, -1));
	MemoryContextDelete(cxt);
	PG_RETURN_JSONB_P(copy);
}

/* The worker's tick: outside any transaction, memory in cxt (reset by caller). */
void
mana_ai_worker_run_tick(MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	(void) run_tick(TICK_WORKER, cxt);
	MemoryContextSwitchTo(old);
}

static Jsonb *
run_tick(TickMode mode, MemoryContext cxt)
{
	Tick	   *t = palloc0(sizeof(Tick));
	TimestampTz start = GetCurrentTimestamp();
	Jsonb	   *result;
	ListCell   *lc;

	t->mode = mode;
	t->cxt = cxt;
	t->scanned_at = start;

	unit_begin(t);
	if (!try_tick_lock(mode))
	{
		add_error(t, "overlap-skipped");
		insert_run(t, "overlap-skipped");
		result = tick_result(t);
		unit_commit(t);
		return result;
	}
	insert_run(t, "running");
	unit_commit(t);

	/*
	 * The lock is a session lock in the worker: release it whatever
	 * happens, and never leave the run "running" behind an error.  The
	 * tool catalog cached for the tick goes with the tick.
	 */
	mana_ai_planner_tick_begin(cxt);
	PG_TRY();
	{
		refresh_phase(t);
		select_phase(t);
		llm_phase(t);
		foreach(lc, t->jobs)
		{
			Job		   *job = (Job *) lfirst(lc);
			char	   *error = NULL;

			CHECK_FOR_INTERRUPTS();
			if (!run_isolated(t, settle_job, job, &error))
			{
				add_error(t, "mission %s: %s", job->mission_id, error);
				mana_ai_metric_inc(MC_MISSION_ERRORS, 1);
			}
		}
		unit_begin(t);
		result = tick_result(t);
		finish_run(t, "ok");
		unit_commit(t);
	}
	PG_CATCH();
	{
		mana_ai_planner_tick_end();
		if (mode == TICK_WORKER)
			fail_worker_run(t); /* does not return */
		PG_RE_THROW();
	}
	PG_END_TRY();
	mana_ai_planner_tick_end();
	if (mode == TICK_WORKER)
		release_tick_lock(mode);

	mana_ai_metric_inc(MC_TICKS, 1);
	mana_ai_metric_inc(MC_PLANS_PRODUCED, t->produced);
	mana_ai_metric_inc(MC_PLANS_WRITTEN_BACK, t->written);
	mana_ai_metric_inc(MC_PARSE_FAILURES, t->parse_failures);
	mana_ai_metric_observe(MH_TICK_DURATION,
						   (GetCurrentTimestamp() - start) / 1000000.0);
	return result;
}

/* ------------------------------------------------------------ transactions */

/*
 * One tick per database: an advisory lock, not a process flag.  The
 * worker holds it for the session across its phase transactions; from
 * SQL it is transaction-scoped and goes with the caller's transaction.
 */
static bool
try_tick_lock(TickMode mode)
{
	bool		got;

	SPI_connect();
	if (SPI_execute(mode == TICK_WORKER ?
					"SELECT pg_catalog.pg_try_advisory_lock(1835101793, 100)" :
					"SELECT pg_catalog.pg_try_advisory_xact_lock(1835101793, 100)",
					false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "mana_ai: could not ask for the tick lock");
	got = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool)
									 {false}));
	SPI_finish();
	return got;
}

static void
release_tick_lock(TickMode mode)
{
	bool		in_xact = IsTransactionState();

	if (!in_xact)
	{
		worker_xact_begin();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	SPI_connect();
	SPI_execute("SELECT pg_catalog.pg_advisory_unlock(1835101793, 100)", false, 1);
	SPI_finish();
	if (!in_xact)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
}

/*
 * A worker transaction.  A background worker has no statements, so
 * nothing advances the statement start time that StartTransaction copies
 * into now(): without this, now() would stay at the worker's first
 * transaction forever, and backoffs (next_attempt_at > now()), due
 * missions and the token window would never move on.
 */
static void
worker_xact_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
}

/*
 * An error ended the worker's tick (a phase's query failed, the LLM key
 * file is unusable, a cancel): undo the open transaction, let go of the
 * tick lock (the only session-level advisory lock the worker takes), and
 * close the run as failed with the error, so it does not stay "running"
 * until the next restart.  Then the error goes on up to the worker loop,
 * which logs it and tries again later.  From SQL none of this is needed:
 * the caller's transaction takes the run row and the lock with it.
 */
static void
fail_worker_run(Tick *t)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(t->cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	LockReleaseSession(USER_LOCKMETHOD);

	PG_TRY();
	{
		Oid			types[2] = {INT8OID, TEXTOID};
		Datum		values[2];

		values[0] = Int64GetDatum(t->run_id);
		values[1] = CStringGetTextDatum(edata->message ? edata->message : "error");
		worker_xact_begin();
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		SPI_execute_with_args("UPDATE mana_ai.tick_runs SET status = 'failed', finished_at = clock_timestamp(),"
							  "       errors = errors || jsonb_build_array($2)"
							  " WHERE id = $1 AND status = 'running'",
							  2, types, values, NULL, false, 0);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		/* Nothing more to save: the original error is the one to report. */
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(t->cxt);
	ReThrowError(edata);
}

static void
unit_begin(Tick *t)
{
	if (t->mode == TICK_WORKER)
	{
		worker_xact_begin();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	MemoryContextSwitchTo(t->cxt);
}

static void
unit_commit(Tick *t)
{
	if (t->mode == TICK_WORKER)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	MemoryContextSwitchTo(t->cxt);
}

/*
 * Run fn for one mission so that its failure undoes only its own work:
 * its own transaction in the worker, a subtransaction from SQL.  A query
 * cancel is not a mission failure: it goes on up.
 */
static bool
run_isolated(Tick *t, void (*fn) (Tick *, Job *), Job *job, char **error)
{
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	if (t->mode == TICK_WORKER)
		worker_xact_begin();
	else
		BeginInternalSubTransaction(NULL);
	if (t->mode == TICK_WORKER)
		PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(t->cxt);

	PG_TRY();
	{
		fn(t, job);
		if (t->mode == TICK_WORKER)
		{
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		else
		{
			ReleaseCurrentSubTransaction();
			CurrentResourceOwner = owner;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(t->cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		if (t->mode == TICK_WORKER)
			AbortCurrentTransaction();
		else
		{
			RollbackAndReleaseCurrentSubTransaction();
			CurrentResourceOwner = owner;
		}
		*error = pstrdup(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(t->cxt);
	return ok;
}

/* ------------------------------------------------------------ tick_runs */

static void
insert_run(Tick *t, const char *status)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(t->mode == TICK_WORKER ? "worker" : "sql");
	values[1] = CStringGetTextDatum(status);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO mana_ai.tick_runs (source, status, finished_at, errors)"
							  " VALUES ($1, $2, CASE WHEN $2 = 'running' THEN NULL ELSE clock_timestamp() END,"
							  "         CASE WHEN $2 = 'running' THEN '[]'::jsonb ELSE jsonb_build_array($2) END)"
							  " RETURNING id",
							  2, types, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "mana_ai: could not record the tick run");
	t->run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&(bool) {false}));
	SPI_finish();
	MemoryContextSwitchTo(t->cxt);
}

static void
finish_run(Tick *t, const char *status)
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
	SPI_connect();
	if (SPI_execute_with_args("UPDATE mana_ai.tick_runs SET status = $2, finished_at = clock_timestamp(),"
							  " due_missions = $3, plans_produced = $4, plans_written_back = $5,"
							  " parse_failures = $6, errors = $7 -> 'errors', result = $7"
							  " WHERE id = $1",
							  7, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "mana_ai: could not close the tick run");
	SPI_finish();
	MemoryContextSwitchTo(t->cxt);
}

/* ------------------------------------------------------------ phases */

static void
refresh_phase(Tick *t)
{
	RefreshCounts missions,
				agents;

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: refreshing snapshots");
	unit_begin(t);
	mana_ai_refresh_snapshots_run(&missions, &agents);
	unit_commit(t);
}

/*
 * The due missions, oldest first, through the agent gates (SPEC 4.3-4.4).
 * Concurrency counts per (user_id, agent_id): every user's default agent
 * has the same id, and counting by id alone starves all but one user.
 */
static void
select_phase(Tick *t)
{
	HTAB	   *taken;
	HASHCTL		ctl;
	uint64		n;
	ListCell   *lc;

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: selecting due missions");
	unit_begin(t);
	SPI_connect();
	if (SPI_execute("SELECT m.user_id, m.mission_id, m.record, m.record ->> 'nextRunAt',"
					"       m.agent_id, a.agent_id IS NOT NULL, a.record, a.name, a.state, a.deleted,"
					"       a.max_concurrent_missions, a.max_tokens_per_day,"
					"       (SELECT coalesce(sum(u.tokens), 0) FROM mana_ai.token_usage u"
					"         WHERE u.user_id = m.user_id AND u.agent_id = a.agent_id"
					"           AND u.ts > now() - interval '24 hours')::bigint,"
					"       coalesce(t.attempts, 0), coalesce(t.next_attempt_at > now(), false)"
					"  FROM mana_ai.due_missions m"
					"  LEFT JOIN mana_ai.agents a ON a.user_id = m.user_id AND a.agent_id = m.agent_id"
					"  LEFT JOIN mana_ai.mission_attempts t ON t.user_id = m.user_id"
					"        AND t.mission_id = m.mission_id AND t.slot = m.record ->> 'nextRunAt'"
					" ORDER BY m.next_run_at, m.user_id, m.mission_id",
					false, 0) != SPI_OK_SELECT)	/* not read-only: see the refresh */
		elog(ERROR, "mana_ai: could not list the due missions");

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN * 4;
	ctl.entrysize = ctl.keysize + sizeof(int);
	ctl.hcxt = t->cxt;
	taken = hash_create("mana_ai agent concurrency", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	n = SPI_processed;
	t->due = (int) n;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi_cxt = MemoryContextSwitchTo(t->cxt);
		Job		   *job = palloc0(sizeof(Job));
		bool		isnull;
		char	   *agent_id = SPI_getvalue(tup, desc, 5);
		bool		has_agent = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		const char *decision = NULL;

		CHECK_FOR_INTERRUPTS();
		job->user_id = SPI_getvalue(tup, desc, 1);
		job->mission_id = SPI_getvalue(tup, desc, 2);
		job->mission = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
		job->slot = SPI_getvalue(tup, desc, 4);
		job->attempts_before = DatumGetInt32(SPI_getbinval(tup, desc, 14, &isnull));

		if (DatumGetBool(SPI_getbinval(tup, desc, 15, &isnull)))
		{
			MemoryContextSwitchTo(spi_cxt);
			continue;			/* backing off after a failure */
		}

		if (agent_id != NULL && has_agent)
		{
			char	   *state = SPI_getvalue(tup, desc, 9);
			bool		deleted = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
			int			max_concurrent = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
			bool		no_budget;
			int64		budget = DatumGetInt64(SPI_getbinval(tup, desc, 12, &no_budget));
			int64		used = DatumGetInt64(SPI_getbinval(tup, desc, 13, &isnull));
			char		key[NAMEDATALEN * 4];
			bool		found;
			int		   *count;

			snprintf(key, sizeof(key), "%s\x1f%s", job->user_id, agent_id);
			count = (int *) ((char *) hash_search(taken, key, HASH_ENTER, &found) + ctl.keysize);
			if (!found)
				*count = 0;

			if (deleted)
				decision = "skipped-deleted";
			else if (state && strcmp(state, "archived") == 0)
				decision = "skipped-archived";
			else if (state && strcmp(state, "paused") == 0)
				decision = "skipped-paused";
			else if (!no_budget && used >= budget)
				decision = "skipped-budget";
			else if (*count >= max_concurrent)
				decision = "skipped-concurrency";
			else
			{
				decision = "ran";
				(*count)++;
			}
			mana_ai_metric_inc_labeled(ML_AGENT_DECISIONS, decision, 1);
			if (strcmp(decision, "ran") != 0)
			{
				MemoryContextSwitchTo(spi_cxt);
				continue;
			}
			job->has_agent = true;
			job->agent_id = agent_id;
			job->agent_name = SPI_getvalue(tup, desc, 8);
			job->agent = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 7, &isnull));
		}
		else
		{
			/* No agent, or one that matches no snapshot: a legacy mission. */
			job->agent_id = pstrdup(LEGACY_AGENT_ID);
			job->agent_name = pstrdup("Mana");
		}
		if (job->agent_name == NULL)
			job->agent_name = pstrdup(job->agent_id);
		new_uuid(job->iteration_id);
		job->started_at = GetCurrentTimestamp();
		t->jobs = lappend(t->jobs, job);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	unit_commit(t);

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: preparing prompts");
	foreach(lc, t->jobs)
	{
		Job		   *job = (Job *) lfirst(lc);
		char	   *error = NULL;

		CHECK_FOR_INTERRUPTS();
		if (!run_isolated(t, prepare_job, job, &error))
		{
			job->prepared = false;
			job->fail_phase = "resolving-inputs";
			job->fail_name = "InputError";
			job->fail_message = error;
		}
	}
}

/*
 * Grant, inputs, prompt for one mission (SPEC 4.5-4.7).  The MDK lives on
 * this stack frame only and is wiped however the frame is left.
 */
static void
prepare_job(Tick *t, Job *job)
{
	unsigned char mdk[32];
	volatile bool have_mdk = false;
	Jsonb	   *grant = member_object(job->mission, "grant");
	List	   *inputs;
	PlannerPrompt prompt;

	PG_TRY();
	{
		if (grant != NULL)
		{
			const char *outcome = mana_ai_unwrap_grant(grant, job->mission_id, mdk);

			have_mdk = strcmp(outcome, "ok") == 0;
			if (!have_mdk)
				mana_ai_metric_inc_labeled(ML_GRANT_SKIPS, outcome, 1);
		}
		inputs = mana_ai_resolve_inputs(job->user_id, job->mission_id, job->mission,
										have_mdk ? mdk : NULL, job->iteration_id);
	}
	PG_FINALLY();
	{
		explicit_bzero(mdk, sizeof(mdk));
	}
	PG_END_TRY();

	MemoryContextSwitchTo(t->cxt);
	prompt = mana_ai_render_prompt(job->mission, job->agent, inputs);
	job->call = palloc0(sizeof(LlmCall));
	job->call->system = MemoryContextStrdup(t->cxt, prompt.system);
	job->call->user = MemoryContextStrdup(t->cxt, prompt.user);
	job->prepared = true;
}

/* All planner calls at once; in the worker no transaction is open here. */
static void
llm_phase(Tick *t)
{
	int			n = 0;
	LlmCall    *calls;
	int			i = 0;
	ListCell   *lc;

	foreach(lc, t->jobs)
		if (((Job *) lfirst(lc))->prepared)
			n++;
	if (n == 0)
		return;

	calls = palloc0(sizeof(LlmCall) * n);
	foreach(lc, t->jobs)
		if (((Job *) lfirst(lc))->prepared)
			calls[i++] = *((Job *) lfirst(lc))->call;

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: waiting for the LLM");
	mana_ai_llm_complete(calls, n);

	i = 0;
	foreach(lc, t->jobs)
		if (((Job *) lfirst(lc))->prepared)
			*((Job *) lfirst(lc))->call = calls[i++];
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: writing back");
}

/* Parse and write back one mission, or count its failure (SPEC 4.7-4.10). */
static void
settle_job(Tick *t, Job *job)
{
	Jsonb	   *parsed;
	char	   *ok;

	if (job->prepared && !job->call->ok)
	{
		job->fail_phase = "calling-llm";
		job->fail_name = "LlmError";
		job->fail_message = job->call->error ? job->call->error : "planner call failed";
	}
	if (job->fail_phase == NULL)
	{
		parsed = mana_ai_parse_plan_for(job->call->content, job->agent);
		ok = member_text(parsed, "ok");
		if (ok == NULL || strcmp(ok, "true") != 0)
		{
			t->parse_failures++;
			job->fail_phase = "parsing-response";
			job->fail_name = "ParseError";
			job->fail_message = member_text(parsed, "reason");
		}
		else
		{
			t->produced++;
			if (write_iteration(t, job, member_object(parsed, "plan"), NULL))
				t->written++;
			return;
		}
	}
	record_failure(t, job);
}

/*
 * Append the iteration and the next slot to the mission as the owning
 * agent (SPEC 1.3, 1.4, 4.8, 4.9).  The record is replayed fresh under
 * the user's scope, so nothing the user wrote since the refresh is lost;
 * if its nextRunAt is no longer the slot we planned, someone already
 * planned it (or it was rescheduled): write nothing.
 */
static bool
write_iteration(Tick *t, Job *job, Jsonb *plan, Jsonb *error)
{
	int			scope = mana_ai_enter_user_scope(job->user_id);
	Jsonb	   *fresh = mana_ai_replay_record(job->user_id, "ai", "aiMissions", job->mission_id);
	char	   *fresh_slot = fresh ? member_text(fresh, "nextRunAt") : NULL;
	Jsonb	   *cadence;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = 0;
	bool		next_null = true;
	char	   *objective;
	Oid			types[11] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, JSONBOID,
	JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID};
	Datum		values[11];
	char		nulls[11];
	static SPIPlanPtr write_plan = NULL;
	static SPIPlanPtr settled_plan = NULL;
	static SPIPlanPtr tokens_plan = NULL;

	if (fresh == NULL || fresh_slot == NULL || strcmp(fresh_slot, job->slot) != 0)
	{
		mana_ai_leave_user_scope(scope);
		return false;
	}
	cadence = member_object(fresh, "cadence");
	if (cadence != NULL)
		next = mana_ai_next_run_at(cadence, now, &next_null);
	objective = member_text(fresh, "objective");
	if (objective == NULL || objective[0] == '\0')
		objective = member_text(fresh, "title");

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(job->user_id);
	values[1] = CStringGetTextDatum(job->mission_id);
	values[2] = JsonbPGetDatum(fresh);
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

	SPI_connect();
	if (SPI_execute_plan(mana_ai_kept_plan(&write_plan,
							  "INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,"
							  "       data, field_timestamps, client_id, schema_version, actor)"
							  "SELECT 'ai', 'aiMissions', $2, $1, 'update',"
							  "       jsonb_build_object("
							  "         'iterations', CASE WHEN jsonb_typeof($3 -> 'iterations') = 'array'"
							  "                            THEN $3 -> 'iterations' ELSE '[]'::jsonb END"
							  "                       || jsonb_build_array(it.iteration),"
							  "         'updatedAt', w.stamp,"
							  "         'nextRunAt', mana_ai.iso_text($9)),"
							  "       jsonb_build_object('iterations', w.stamp, 'updatedAt', w.stamp,"
							  "                          'nextRunAt', w.stamp),"
							  "       'mana-ai-runner', 1,"
							  "       jsonb_build_object('kind', 'ai', 'principalId', $10, 'displayName', $11,"
							  "                          'missionId', $2, 'iterationId', $4,"
							  "                          'rationale', coalesce($3 ->> 'objective', $3 ->> 'title', ''))"
							  "  FROM (SELECT mana_ai.iso_text($8) AS stamp) w,"
							  "       (SELECT mana_ai.build_iteration($4, $5, $8, $6, $7) AS iteration) it",
										   11, types),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "mana_ai: could not write the iteration back");
	SPI_finish();

	/* The slot is settled: forget its failures; count the tokens spent. */
	SPI_connect();
	SPI_execute_plan(mana_ai_kept_plan(&settled_plan,
									   "DELETE FROM mana_ai.mission_attempts WHERE user_id = $1 AND mission_id = $2",
									   2, types),
					 values, NULL, false, 0);
	if (job->prepared && job->call->total_tokens > 0)
	{
		Oid			utypes[4] = {TEXTOID, TEXTOID, TEXTOID, INT8OID};
		Datum		uvalues[4];

		uvalues[0] = CStringGetTextDatum(job->user_id);
		uvalues[1] = CStringGetTextDatum(job->agent_id);
		uvalues[2] = CStringGetTextDatum(job->mission_id);
		uvalues[3] = Int64GetDatum(job->call->total_tokens);
		SPI_execute_plan(mana_ai_kept_plan(&tokens_plan,
										   "INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens)"
										   " VALUES ($1, $2, $3, $4)", 4, utypes),
						 uvalues, NULL, false, 0);
	}
	SPI_finish();
	mana_ai_leave_user_scope(scope);
	MemoryContextSwitchTo(t->cxt);
	(void) objective;
	return true;
}

/*
 * A failed attempt for this slot: back off exponentially from the tick
 * interval (capped at an hour); after mana_ai.max_attempts write a failed
 * iteration so the user sees it and the slot advances (SPEC 4.10).
 */
static void
record_failure(Tick *t, Job *job)
{
	/* If saving raises, the caller counts and reports it: only once. */
	save_failure(t, job);
	mana_ai_metric_inc(MC_MISSION_ERRORS, 1);
	add_error(t, "mission %s: %s: %s", job->mission_id, job->fail_phase,
			  job->fail_message ? job->fail_message : "failed");
}

/* The backoff row, or the failed iteration once the attempts are used up. */
static void
save_failure(Tick *t, Job *job)
{
	int			attempts = job->attempts_before + 1;
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT8OID, TEXTOID};
	Datum		values[6];
	double		backoff = Min(3600.0, mana_ai_tick_interval * pow(2.0, attempts - 1));

	if (attempts >= mana_ai_max_attempts)
	{
		JsonbParseState *state = NULL;
		JsonbValue	k,
					v;
		const char *pairs[3][2] = {{"name", job->fail_name},
		{"message", job->fail_message ? job->fail_message : "failed"},
		{"phase", job->fail_phase}};

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		for (int i = 0; i < 3; i++)
		{
			k.type = jbvString;
			k.val.string.val = (char *) pairs[i][0];
			k.val.string.len = strlen(pairs[i][0]);
			v.type = jbvString;
			v.val.string.val = (char *) pairs[i][1];
			v.val.string.len = strlen(pairs[i][1]);
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
		}
		if (write_iteration(t, job, NULL,
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
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO mana_ai.mission_attempts"
							  "       (user_id, mission_id, slot, attempts, next_attempt_at, last_error)"
							  " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6)"
							  " ON CONFLICT (user_id, mission_id) DO UPDATE"
							  "   SET slot = EXCLUDED.slot, attempts = EXCLUDED.attempts,"
							  "       next_attempt_at = EXCLUDED.next_attempt_at,"
							  "       last_error = EXCLUDED.last_error, updated_at = now()",
							  6, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "mana_ai: could not record the failed attempt");
	SPI_finish();
	MemoryContextSwitchTo(t->cxt);
}

/* ------------------------------------------------------------ results */

static void
add_error(Tick *t, const char *fmt,...)
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

static void
push_pair(JsonbParseState **state, const char *key, JsonbValue *v)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
	pushJsonbValue(state, WJB_VALUE, v);
}

static void
push_int(JsonbParseState **state, const char *key, int64 n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	push_pair(state, key, &v);
}

/*
 * ISO-8601 in UTC with milliseconds, as every other stamp mana_ai writes:
 * timestamptz_out would follow the caller's DateStyle and TimeZone.
 */
static char *
iso_utc(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
					tm.tm_sec, (int) (fsec / 1000));
}

/* {scannedAt, dueMissionCount, plansProduced, plansWrittenBack, parseFailures, errors[]} */
static Jsonb *
tick_result(Tick *t)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	ListCell   *lc;
	char	   *scanned = iso_utc(t->scanned_at);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	v.type = jbvString;
	v.val.string.val = scanned;
	v.val.string.len = strlen(scanned);
	push_pair(&state, "scannedAt", &v);
	push_int(&state, "dueMissionCount", t->due);
	push_int(&state, "plansProduced", t->produced);
	push_int(&state, "plansWrittenBack", t->written);
	push_int(&state, "parseFailures", t->parse_failures);
	push_int(&state, "failedIterations", t->failed_iterations);
	push_int(&state, "tickRunId", t->run_id);
	v.type = jbvString;
	v.val.string.val = "errors";
	v.val.string.len = 6;
	pushJsonbValue(&state, WJB_KEY, &v);
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, t->errors)
	{
		char	   *e = (char *) lfirst(lc);

		v.type = jbvString;
		v.val.string.val = e;
		v.val.string.len = strlen(e);
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* ------------------------------------------------------------ small helpers */

static void
new_uuid(char *out)
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("could not generate a random iteration id")));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
			 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A top-level member as text (strings unquoted), or NULL. */
static char *
member_text(Jsonb *jb, const char *key)
{
	JsonbValue *v;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvBool)
		return pstrdup(v->val.boolean ? "true" : "false");
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

/* A top-level member that is an object, as its own Jsonb, or NULL. */
static Jsonb *
member_object(Jsonb *jb, const char *key)
{
	JsonbValue *v;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	if (!JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return JsonbValueToJsonb(v);
}

static Jsonb *
jsonb_from_cstring(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}

/* ------------------------------------------------------------ build_iteration */

/* pushJsonbValue for a C string (NULL: JSON null). */
static void
push_text(JsonbParseState **state, JsonbIteratorToken seq, const char *s)
{
	JsonbValue	v;

	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	pushJsonbValue(state, seq, &v);
}

static void
push_key(JsonbParseState **state, const char *key)
{
	push_text(state, WJB_KEY, key);
}

/* container ->> key, as SQL's operator: NULL when not an object, absent or null. */
static char *
field_text(JsonbContainer *c, const char *key)
{
	JsonbValue *v;

	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	v = getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvBool)
		return pstrdup(v->val.boolean ? "true" : "false");
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return JsonbToCString(NULL, v->val.binary.data, -1);
}

/* mana_ai.iso_text(ts): to_char in UTC with milliseconds; NULL for infinity. */
static char *
iso_text(TimestampTz ts)
{
	Datum		utc;

	if (TIMESTAMP_NOT_FINITE(ts))
		return NULL;
	utc = DirectFunctionCall2(timestamptz_zone, CStringGetTextDatum("UTC"),
							  TimestampTzGetDatum(ts));
	return TextDatumGetCString(DirectFunctionCall2Coll(timestamp_to_char, DEFAULT_COLLATION_OID, utc,
													   CStringGetTextDatum("YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"")));
}

PG_FUNCTION_INFO_V1(mana_ai_iso_text);
Datum
mana_ai_iso_text(PG_FUNCTION_ARGS)
{
	char	   *s = iso_text(PG_GETARG_TIMESTAMPTZ(0));

	if (s == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(s));
}

/* jsonb_array_elements' complaint about what is not an array. */
static void
require_array(JsonbContainer *c)
{
	if (JsonContainerIsArray(c) && !JsonContainerIsScalar(c))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot extract elements from %s",
					JsonContainerIsObject(c) ? "an object" : "a scalar")));
}

/*
 * mana_ai.build_iteration(iteration_id, started_at, finished_at, plan, error)
 * → jsonb: a server iteration (SPEC 1.3) from a parsed plan ({summary,
 * steps}) or, when error ({name, message, phase}) is given, a failed one.
 * In C because the tick calls it for every mission it writes back, and as
 * a SQL function it was parsed and planned anew on every call.
 */
PG_FUNCTION_INFO_V1(mana_ai_build_iteration);
Datum
mana_ai_build_iteration(PG_FUNCTION_ARGS)
{
	char	   *iteration_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *started = PG_ARGISNULL(1) ? NULL : iso_text(PG_GETARG_TIMESTAMPTZ(1));
	char	   *finished = PG_ARGISNULL(2) ? NULL : iso_text(PG_GETARG_TIMESTAMPTZ(2));
	Jsonb	   *plan = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	Jsonb	   *error = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	JsonbParseState *state = NULL;
	JsonbValue	v;
	char	   *summary;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_key(&state, "id");
	push_text(&state, WJB_VALUE, iteration_id);
	push_key(&state, "startedAt");
	push_text(&state, WJB_VALUE, started);
	push_key(&state, "finishedAt");
	push_text(&state, WJB_VALUE, finished);
	push_key(&state, "source");
	push_text(&state, WJB_VALUE, "server");

	if (error != NULL)
	{
		push_key(&state, "plan");
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		pushJsonbValue(&state, WJB_END_ARRAY, NULL);
		summary = field_text(&error->root, "message");
		push_key(&state, "summary");
		push_text(&state, WJB_VALUE, summary ? summary : "");
		push_key(&state, "overallStatus");
		push_text(&state, WJB_VALUE, "failed");
		push_key(&state, "errorDetails");
		v.type = jbvBinary;
		v.val.binary.data = &error->root;
		v.val.binary.len = VARSIZE(error) - VARHDRSZ;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	else
	{
		JsonbValue *steps = NULL;
		int			nsteps = 0;

		if (plan != NULL && JB_ROOT_IS_OBJECT(plan))
			steps = getKeyJsonValueFromContainer(&plan->root, "steps", 5, NULL);
		if (steps != NULL && steps->type != jbvBinary)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot extract elements from a scalar")));
		push_key(&state, "plan");
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		if (steps != NULL)
		{
			JsonbIterator *it;
			JsonbIteratorToken tok;
			JsonbValue	step;

			require_array(steps->val.binary.data);
			it = JsonbIteratorInit(steps->val.binary.data);
			while ((tok = JsonbIteratorNext(&it, &step, true)) != WJB_DONE)
			{
				JsonbContainer *sc;
				JsonbValue *params = NULL;
				char	   *text;

				if (tok != WJB_ELEM)
					continue;
				sc = (step.type == jbvBinary && JsonContainerIsObject(step.val.binary.data)) ?
					step.val.binary.data : NULL;
				pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
				push_key(&state, "id");
				push_text(&state, WJB_VALUE, iteration_id ?
						  psprintf("%s-%d", iteration_id, nsteps) : NULL);
				text = field_text(sc, "summary");
				push_key(&state, "summary");
				push_text(&state, WJB_VALUE, text ? text : "");
				push_key(&state, "intent");
				pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
				push_key(&state, "kind");
				push_text(&state, WJB_VALUE, "toolCall");
				push_key(&state, "toolName");
				push_text(&state, WJB_VALUE, field_text(sc, "toolName"));
				push_key(&state, "params");
				if (sc != NULL)
					params = getKeyJsonValueFromContainer(sc, "params", 6, NULL);
				if (params != NULL)
					pushJsonbValue(&state, WJB_VALUE, params);
				else
				{
					pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
					pushJsonbValue(&state, WJB_END_OBJECT, NULL);
				}
				pushJsonbValue(&state, WJB_END_OBJECT, NULL);
				push_key(&state, "status");
				push_text(&state, WJB_VALUE, "planned");
				push_key(&state, "rationale");
				push_text(&state, WJB_VALUE, field_text(sc, "rationale"));
				pushJsonbValue(&state, WJB_END_OBJECT, NULL);
				nsteps++;
			}
		}
		pushJsonbValue(&state, WJB_END_ARRAY, NULL);
		summary = plan ? field_text(&plan->root, "summary") : NULL;
		push_key(&state, "summary");
		push_text(&state, WJB_VALUE, summary ? summary : "");
		push_key(&state, "overallStatus");
		push_text(&state, WJB_VALUE, nsteps > 0 ? "awaiting-review" : "approved");
	}
	PG_RETURN_JSONB_P(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/* ------------------------------------------------------------ build_prompt */

PG_FUNCTION_INFO_V1(mana_ai_build_prompt);
Datum
mana_ai_build_prompt(PG_FUNCTION_ARGS)
{
	char	   *user_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *mission_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *mission;
	Jsonb	   *agent = NULL;
	char	   *agent_id;
	Jsonb	   *grant;
	unsigned char mdk[32];
	volatile bool have_mdk = false;
	List	   *inputs;
	PlannerPrompt prompt;
	StringInfoData buf;

	if (user_id[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("user_id must not be empty"),
						errhint("Pass the id of the user who owns the mission.")));
	mission = mana_ai_load_mission(user_id, mission_id);
	if (mission == NULL)
		ereport(ERROR, (errcode(ERRCODE_NO_DATA_FOUND),
						errmsg("mission \"%s\" of user \"%s\" has no snapshot", mission_id, user_id),
						errhint("Run SELECT * FROM mana_ai.refresh_snapshots(); first.")));
	agent_id = member_text(mission, "agentId");
	if (agent_id != NULL)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		values[2] = {CStringGetTextDatum(user_id), CStringGetTextDatum(agent_id)};
		bool		isnull;

		SPI_connect();
		if (SPI_execute_with_args("SELECT record FROM mana_ai.agent_snapshots"
								  " WHERE user_id = $1 AND agent_id = $2",
								  2, types, values, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			agent = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}

	grant = member_object(mission, "grant");
	PG_TRY();
	{
		if (grant != NULL)
			have_mdk = strcmp(mana_ai_unwrap_grant(grant, mission_id, mdk), "ok") == 0;
		inputs = mana_ai_resolve_inputs(user_id, mission_id, mission,
										have_mdk ? mdk : NULL, NULL);
	}
	PG_FINALLY();
	{
		explicit_bzero(mdk, sizeof(mdk));
	}
	PG_END_TRY();

	prompt = mana_ai_render_prompt(mission, agent, inputs);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"system\": ");
	escape_json(&buf, prompt.system);
	appendStringInfoString(&buf, ", \"user\": ");
	escape_json(&buf, prompt.user);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_JSONB_P(jsonb_from_cstring(buf.data));
}
