/*
 * tick_run.c: one tick of the runner (SPEC 4), for the worker and for
 * SELECT mana_ai_tick() alike: its phases, in order.
 *
 * Phases: lock and record the run; refresh the snapshots; pick the due
 * missions and apply the agent gates; per mission unwrap the grant,
 * resolve the inputs and render the prompt; call the LLM for all of them
 * at once, each mission parsed and written back (or its failure counted
 * and backed off) as soon as its call ends (tick_stream.c); close the run.
 * The transactions they run in are tick_xact.c's, the run's row
 * tick_runs.c's, each mission's write-back tick_settle.c's (in the
 * worker's batches, tick_batch.c, or from SQL in groups, tick_groups.c).
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
 * Missions running per (user_id, agent_id) in this tick.  The key is the
 * whole pair however long ("<length of user_id>:<user_id><agent_id>", so
 * no id can run into the other), not a fixed-size copy that two long ids
 * sharing a prefix would collide in.
 */
typedef struct AgentSlots
{
	char	   *key;			/* hash key: a pointer to the string */
	int			running;
} AgentSlots;

/* The token budget left to an agent's missions in this tick, same key. */
typedef struct AgentPool
{
	char	   *key;
	int64		tokens_left;
} AgentPool;

static Jsonb *run_tick(TickMode mode, MemoryContext cxt);
static void refresh_phase(Tick *t);
static void select_phase(Tick *t);
static void prepare_job(Tick *t, Job *job);
static void llm_phase(Tick *t);
static void writeback_phase(Tick *t);
pg_noreturn static void fail_worker_run(Tick *t);
static HTAB *agent_table(Tick *t, const char *name, Size entrysize);
static char *agent_key(const char *user_id, const char *agent_id);
static char *keep_prompt(Tick *t, const char *text);
static void new_uuid(char *out);
static uint32 agent_key_hash(const void *key, Size keysize);
static int	agent_key_match(const void *a, const void *b, Size keysize);

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
		tick_phase_done(t, TP_PREPARE);
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
	"SELECT m.user_id, m.mission_id, ms.record, " SLOT "," \
	"       m.agent_id, a.agent_id IS NOT NULL, ag.record, a.name, a.state, a.deleted," \
	"       a.max_concurrent_missions, a.max_tokens_per_day," \
	/* numeric sum, saturated: rows stored before 0.3.0's clamp may be huge */ \
	"       least((SELECT coalesce(sum(u.tokens), 0) FROM mana_ai.token_usage u" \
	"         WHERE u.user_id = m.user_id AND u.agent_id = a.agent_id" \
	"           AND u.ts > now() - interval '24 hours')," \
	"             9223372036854775807)::bigint," \
	"       coalesce(t.attempts, 0), coalesce(t.next_attempt_at > now(), false)" \
	"  FROM mana_ai.due_missions m" \
	"  JOIN mana_ai.mission_snapshots ms ON ms.user_id = m.user_id AND ms.mission_id = m.mission_id" \
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
	ListCell   *lc;

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: selecting due missions");
	tick_unit_begin(t);
	mana_ai_spi_connect();
	/* the ops views carry no record (0.3.0): it comes from the snapshots */
	if (SPI_execute(mana_ai_slot_state_installed(mana_ai_sync_format()) ?
					DUE_SQL("m.slot") : DUE_SQL("ms.record ->> 'nextRunAt'"),
					false, 0) != SPI_OK_SELECT)	/* not read-only: see the refresh */
		elog(ERROR, "mana_ai: could not list the due missions");

	taken = agent_table(t, "mana_ai agent concurrency", sizeof(AgentSlots));

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
		t->considered = lappend(t->considered, job);	/* one mission_runs row each */
		job->token_budget = -1;

		if (DatumGetBool(SPI_getbinval(tup, desc, 15, &isnull)))
		{
			job->decision = "backing-off";
			job->agent_id = agent_id && has_agent ? agent_id : pstrdup(LEGACY_AGENT_ID);
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
			char	   *key = agent_key(job->user_id, agent_id);
			bool		found;
			int		   *count;

			count = &((AgentSlots *) hash_search(taken, &key, HASH_ENTER, &found))->running;
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
				job->decision = decision;
				job->agent_id = agent_id;
				MemoryContextSwitchTo(spi_cxt);
				continue;
			}
			job->has_agent = true;
			job->token_budget = no_budget ? -1 : budget - used;
			job->token_total = no_budget ? 0 : budget;
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
	mana_ai_spi_finish();
	tick_unit_commit(t);
	tick_phase_done(t, TP_SELECT);

	/*
	 * Each mission's inputs and rendering are scratch, freed after it: only
	 * its prompt stays for the LLM phase, and the system prompt, the same
	 * for every mission of the same agent, once.  Kept in the tick's
	 * memory they grew it by some 45 kB per mission (450 MB at 10,000).
	 */
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: preparing prompts");
	t->job_cxt = AllocSetContextCreate(t->cxt, "mana_ai mission prepare",
									   ALLOCSET_DEFAULT_SIZES);
	t->prompts = agent_table(t, "mana_ai system prompts", sizeof(char *));	/* any string key */
	foreach(lc, t->jobs)
	{
		Job		   *job = (Job *) lfirst(lc);
		char	   *error = NULL;

		CHECK_FOR_INTERRUPTS();
		if (!tick_run_isolated(t, prepare_job, job, &error))
		{
			job->prepared = false;
			job->fail_phase = "resolving-inputs";
			job->cadence_invalid = !job->cadence_checked;
			job->fail_name = job->cadence_invalid ? "CadenceError" : "InputError";
			job->fail_message = job->cadence_invalid ?
				psprintf("invalid cadence: %s", error) : error;
		}
		MemoryContextReset(t->job_cxt);
	}
}

/*
 * Cadence, grant, inputs, prompt for one mission (SPEC 4.5-4.7).  A
 * cadence next_run_at refuses would fail only in the write-back, after
 * the LLM call: it is tried first, and its error fails the mission at
 * once (cadence_checked stays false).  A grant that does not unwrap is no
 * error: it is counted and the mission runs without its encrypted inputs.
 */
static void
prepare_job(Tick *t, Job *job)
{
	List	   *inputs;
	PlannerPrompt prompt;
	Jsonb	   *cadence = jb_member_object(job->mission, "cadence");
	bool		manual;

	if (cadence != NULL)
		(void) mana_ai_next_run_at(cadence, GetCurrentTimestamp(), &manual);
	job->cadence_checked = true;

	MemoryContextSwitchTo(t->job_cxt);
	inputs = mana_ai_resolve_mission_inputs(job->user_id, job->mission_id, job->mission,
											job->iteration_id, true);
	MemoryContextSwitchTo(t->job_cxt);
	prompt = mana_ai_render_prompt(job->mission, job->agent, inputs,
								   t->protocol == MANA_AI_PROTOCOL_TOOLS);

	MemoryContextSwitchTo(t->cxt);
	job->call = palloc0(sizeof(LlmCall));
	job->call->system = keep_prompt(t, prompt.system);
	job->call->user = pstrdup(prompt.user);
	job->call->tools = prompt.tools;	/* in the tick's memory already */
	job->call->tools_reserve = prompt.tools_reserve;
	job->prepared = true;
}

/*
 * One token pool per (user, agent) with a budget, shared by the agent's
 * missions of this tick, so the loop stops every one of them between
 * rounds once the agent reaches maxTokensPerDay.
 */
static void
share_token_budgets(Tick *t)
{
	HTAB	   *pools = agent_table(t, "mana_ai token pools", sizeof(AgentPool));
	ListCell   *lc;

	foreach(lc, t->jobs)
	{
		Job		   *job = (Job *) lfirst(lc);
		char	   *key;
		bool		found;
		AgentPool  *pool;

		if (!job->prepared || job->token_budget < 0)
			continue;
		key = agent_key(job->user_id, job->agent_id);
		pool = (AgentPool *) hash_search(pools, &key, HASH_ENTER, &found);
		if (!found)
			pool->tokens_left = job->token_budget;
		job->call->token_budget = &pool->tokens_left;
		job->call->budget_total = job->token_total;
	}
}

/*
 * Every mission's planner conversation at once (tick_stream.c, which in
 * the worker writes each plan back as soon as it is ready); in the
 * worker no transaction is open here.
 */
static void
llm_phase(Tick *t)
{
	share_token_budgets(t);
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

/* text in the tick's memory, one copy per distinct text (read-only). */
static char *
keep_prompt(Tick *t, const char *text)
{
	bool		found;
	char	  **kept = (char **) hash_search(t->prompts, &text, HASH_ENTER, &found);

	if (!found)
		*kept = MemoryContextStrdup(t->cxt, text);	/* the key points here now */
	return *kept;
}

static uint32
agent_key_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, (int) strlen(s));
}

static int
agent_key_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* A table keyed by agent_key(), in the tick's memory. */
static HTAB *
agent_table(Tick *t, const char *name, Size entrysize)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = agent_key_hash;
	ctl.match = agent_key_match;
	ctl.hcxt = t->cxt;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* "<length of user_id>:<user_id><agent_id>": no id can run into the other. */
static char *
agent_key(const char *user_id, const char *agent_id)
{
	return psprintf("%zu:%s%s", strlen(user_id), user_id, agent_id);
}

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
