/*
 * tick_run.c: one tick of the runner (SPEC 4), for the worker and for
 * SELECT mana_ai_tick() alike: its phases, in order.
 *
 * Phases: lock and record the run; refresh the snapshots; pick the due
 * missions and apply the agent gates; then the LLM phase (tick_stream.c):
 * each mission prepared (grant, inputs, prompt: tick_prepare.c) as the
 * loop has room for it, every conversation in one multi handle, each
 * mission parsed and written back (or its failure counted and backed off)
 * as soon as its call ends; close the run.  The transactions they run in
 * are tick_xact.c's, the run's row tick_runs.c's, each mission's
 * write-back tick_settle.c's (in the worker's batches, tick_batch.c, or
 * from SQL in groups, tick_groups.c).
 *
 * Owns the order of the phases, the agent gates, and what the worker does
 * when an error ends its tick.  Must never hold a
 * transaction across the LLM phase in the worker, and never keep an MDK
 * beyond the mission it was unwrapped for (the resolvers wipe it).
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "crypto/resolvers.h"
#include "ops/guc.h"
#include "ops/metrics.h"
#include "planner/llm.h"
#include "planner/planner.h"
#include "projection/snapshot.h"
#include "projection/sync_format.h"
#include "shared/jsonb_members.h"
#include "shared/spi_plans.h"
#include "tick/schedule.h"
#include "tick/tick.h"
#include "tick/tick_internal.h"
#include "tick/tick_lock.h"

#define LEGACY_AGENT_ID	"legacy:ai-default"

/*
 * Missions running per (user_id, agent_id) in this tick (tick_agent_key),
 * and the agent's record, one copy for all of them.
 */
typedef struct AgentSlots
{
	char	   *key;			/* hash key: a pointer to the string */
	int			running;
	Jsonb	   *agent;			/* NULL until a mission of it is taken */
} AgentSlots;

static Jsonb *run_tick(TickMode mode, MemoryContext cxt);
static void refresh_phase(Tick *t);
static void select_phase(Tick *t);
static void llm_phase(Tick *t);
static void writeback_phase(Tick *t);
pg_noreturn static void fail_worker_run(Tick *t);
static void new_uuid(char *out);

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

	t->mode = mode;
	t->protocol = mana_ai_planner_protocol;
	t->cxt = cxt;
	t->scanned_at = start;
	t->phase_mark = start;

	tick_unit_begin(t);
	if (!tick_lock_try(mode))
	{
		tick_add_error(t, "overlap-skipped");
		tick_runs_insert(t, "overlap-skipped");
		result = tick_result(t);
		tick_unit_commit(t);
		return result;
	}
	tick_runs_insert(t, "running");
	tick_unit_commit(t);

	/*
	 * The lock is a session lock in the worker: release it whatever
	 * happens, and never leave the run "running" behind an error.  The
	 * tool catalog cached for the tick goes with the tick.
	 */
	mana_ai_planner_tick_begin(cxt);
	PG_TRY();
	{
		refresh_phase(t);
		tick_phase_done(t, TP_REFRESH);
		select_phase(t);
		llm_phase(t);
		tick_phase_done(t, TP_LLM);
		writeback_phase(t);
		tick_phase_done(t, TP_WRITEBACK);
		tick_unit_begin(t);
		result = tick_result(t);
		tick_runs_finish(t, "ok");
		tick_unit_commit(t);
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
		tick_lock_release();

	mana_ai_metric_inc(MC_TICKS, 1);
	mana_ai_metric_inc(MC_PLANS_PRODUCED, t->produced);
	mana_ai_metric_inc(MC_PLANS_WRITTEN_BACK, t->written);
	mana_ai_metric_inc(MC_PARSE_FAILURES, t->parse_failures);
	mana_ai_metric_observe(MH_TICK_DURATION,
						   (GetCurrentTimestamp() - start) / 1000000.0);
	return result;
}

/* ------------------------------------------------------------ phases */

static void
refresh_phase(Tick *t)
{
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: refreshing snapshots");
	tick_unit_begin(t);
	mana_ai_refresh_snapshots_run(NULL, NULL);
	tick_unit_commit(t);
}

/*
 * The due missions with their slot: mana_ai.missions.slot (the record's
 * nextRunAt, or the slot state's next slot in the current sync format),
 * or with a catalog older than 0.3.0 the record's nextRunAt.
 */
#define DUE_SQL(SLOT) \
	"SELECT m.user_id, m.mission_id, " SLOT "," \
	"       m.agent_id, a.agent_id IS NOT NULL, ag.record, a.name, a.state, a.deleted," \
	"       a.max_concurrent_missions, a.max_tokens_per_day," \
	/* numeric sum, saturated: rows stored before 0.3.0's clamp may be huge */ \
	"       least((SELECT coalesce(sum(u.tokens), 0) FROM mana_ai.token_usage u" \
	"         WHERE u.user_id = m.user_id AND u.agent_id = a.agent_id" \
	"           AND u.ts > now() - interval '24 hours')," \
	"             9223372036854775807)::bigint," \
	"       coalesce(t.attempts, 0), coalesce(t.next_attempt_at > now(), false)" \
	"  FROM mana_ai.due_missions m" \
	"  LEFT JOIN mana_ai.agents a ON a.user_id = m.user_id AND a.agent_id = m.agent_id" \
	"  LEFT JOIN mana_ai.agent_snapshots ag ON ag.user_id = a.user_id AND ag.agent_id = a.agent_id" \
	"  LEFT JOIN mana_ai.mission_attempts t ON t.user_id = m.user_id" \
	"        AND t.mission_id = m.mission_id AND t.slot = " SLOT \
	/* no user scope can be '': such a record cannot be written back */ \
	" WHERE m.user_id <> ''" \
	" ORDER BY m.next_run_at, m.user_id, m.mission_id"

/*
 * The due missions, oldest first, through the agent gates (SPEC 4.3-4.4).
 * Concurrency counts per (user_id, agent_id): every user's default agent
 * has the same id, and counting by id alone starves all but one user.
 */
static void
select_phase(Tick *t)
{
	HTAB	   *taken;
	uint64		n;

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: selecting due missions");
	tick_unit_begin(t);
	mana_ai_spi_connect();
	/* the ops views carry no record (0.3.0): it comes from the snapshots */
	if (SPI_execute(mana_ai_slot_state_installed(mana_ai_sync_format()) ?
					DUE_SQL("m.slot") :
					DUE_SQL("(SELECT ms.record ->> 'nextRunAt' FROM mana_ai.mission_snapshots ms"
							" WHERE ms.user_id = m.user_id AND ms.mission_id = m.mission_id)"),
					false, 0) != SPI_OK_SELECT)	/* not read-only: see the refresh */
		elog(ERROR, "mana_ai: could not list the due missions");

	taken = tick_agent_table(t, "mana_ai agent concurrency", sizeof(AgentSlots));

	n = SPI_processed;
	t->due = (int) n;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi_cxt = MemoryContextSwitchTo(t->cxt);
		Job		   *job = palloc0(sizeof(Job));
		bool		isnull;
		char	   *agent_id = SPI_getvalue(tup, desc, 4);
		bool		has_agent = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		const char *decision = NULL;

		CHECK_FOR_INTERRUPTS();
		job->user_id = SPI_getvalue(tup, desc, 1);
		job->mission_id = SPI_getvalue(tup, desc, 2);
		job->slot = SPI_getvalue(tup, desc, 3);
		job->attempts_before = DatumGetInt32(SPI_getbinval(tup, desc, 13, &isnull));
		t->considered = lappend(t->considered, job);	/* one mission_runs row each */
		job->token_budget = -1;

		if (DatumGetBool(SPI_getbinval(tup, desc, 14, &isnull)))
		{
			job->decision = "backing-off";
			job->agent_id = agent_id && has_agent ? agent_id : pstrdup(LEGACY_AGENT_ID);
			MemoryContextSwitchTo(spi_cxt);
			continue;			/* backing off after a failure */
		}

		if (agent_id != NULL && has_agent)
		{
			char	   *state = SPI_getvalue(tup, desc, 8);
			bool		deleted = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
			int			max_concurrent = DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
			bool		no_budget;
			int64		budget = DatumGetInt64(SPI_getbinval(tup, desc, 11, &no_budget));
			int64		used = DatumGetInt64(SPI_getbinval(tup, desc, 12, &isnull));
			char	   *key = tick_agent_key(job->user_id, agent_id);
			bool		found;
			int		   *count;
			AgentSlots *slots;

			slots = (AgentSlots *) hash_search(taken, &key, HASH_ENTER, &found);
			if (!found)
			{
				slots->running = 0;
				slots->agent = NULL;
			}
			count = &slots->running;

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
				job->decision = decision;
				job->agent_id = agent_id;
				MemoryContextSwitchTo(spi_cxt);
				continue;
			}
			job->has_agent = true;
			job->token_budget = no_budget ? -1 : budget - used;
			job->token_total = no_budget ? 0 : budget;
			job->agent_id = agent_id;
			job->agent_name = SPI_getvalue(tup, desc, 7);
			if (slots->agent == NULL)
				slots->agent = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 6, &isnull));
			job->agent = slots->agent;	/* read-only: shared */
			tick_share_token_budget(t, job);
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
	mana_ai_spi_finish();
	tick_unit_commit(t);
	tick_phase_done(t, TP_SELECT);
}

/*
 * Every mission prepared and its planner conversation held, all at once
 * (tick_stream.c, which in the worker writes each plan back as soon as it
 * is ready); in the worker no transaction is open across a wait.
 */
static void
llm_phase(Tick *t)
{
	tick_llm_phase(t);
}

/*
 * Write back every mission taken in this tick that the LLM phase has not
 * (tick_stream.c streams them in the worker): from SQL in groups, one
 * subtransaction each (tick_groups.c); in the worker in batches
 * (tick_batch.c), each mission in its own subtransaction, a batch's
 * missions committed together.  A crash before a batch commits loses the
 * whole batch, whose slots are then still due and are planned again; a
 * committed batch has moved every slot it wrote on, so no slot is ever
 * written twice.
 */
static void
writeback_phase(Tick *t)
{
	ListCell   *lc;

	if (t->mode == TICK_SQL)
	{
		tick_settle_grouped(t);	/* one transaction: bounded subtransaction ids */
		return;
	}
	foreach(lc, t->jobs)
	{
		CHECK_FOR_INTERRUPTS();
		if (((Job *) lfirst(lc))->streamed)
			continue;			/* written back as its call ended */
		tick_batch_open(t);
		tick_settle_mission(t, (Job *) lfirst(lc));
		tick_batch_settled(t, (Job *) lfirst(lc));
	}
	tick_batch_close(t);
}

/*
 * An error ended the worker's tick (a phase's query failed, the LLM key
 * file is unusable, a cancel): undo the open transaction, let go of the
 * tick lock (the only session-level lock the worker takes), and
 * close the run as failed with the error, so it does not stay "running"
 * until the next restart, keeping what it decided per mission
 * (mission_runs).  Then the error goes on up to the worker loop,
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
	tick_lock_release_after_error();
	t->batch_open = false;		/* the open batch, if any, was just undone */

	PG_TRY();
	{
		tick_unit_begin(t);
		tick_runs_mark_failed(t->run_id, edata->message ? edata->message : "error");
		tick_count_uncommitted_tokens(t);
		tick_mission_runs_record_quietly(t, edata->message);
		tick_unit_commit(t);
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
