/*
 * tick_settle.c: how one mission of a tick is settled once its planner
 * conversation has ended (SPEC 4.7-4.10): the answer parsed into a plan
 * and written back, or the failure recorded, each step in a
 * subtransaction of its own.
 *
 * Owns that ladder (settle_mission: every error of a step routed to the
 * failure path, so tokens spent are always counted and a failing mission
 * always backs off), the same ladder for each mission of a worker's batch
 * whose commit failed (tick_settle_failed_batch), and the tokens of the
 * missions an error left uncommitted (tick_count_uncommitted_tokens).
 * job->outcome is final when settle_mission returns: the one place each
 * mission's outcome is known.  What is written is tick_writeback.c's, the
 * subtransactions tick_xact.c's.  Must never leave a failing mission
 * without its backoff or its tokens uncounted, and never swallow a query
 * cancel (tick_run_sub re-throws it).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/jsonb.h"

#include "ops/guc.h"
#include "ops/metrics.h"
#include "planner/planner.h"
#include "shared/jsonb_members.h"
#include "tick/tick_internal.h"

static void settle_job(Tick *t, Job *job);

/*
 * The plan of a mission whose conversation ended well: the tools loop's
 * own (validated round by round), or the json answer's strict parse with
 * each step judged as a tool call (an invalid one dropped, as the tools
 * loop never plans one).
 * NULL with the reason in job->fail_* when the answer is no plan.
 */
static Jsonb *
job_plan(Tick *t, Job *job)
{
	Jsonb	   *parsed;
	char	   *ok;

	if (t->protocol == MANA_AI_PROTOCOL_TOOLS)
		return jb_from_cstring(job->call->plan);
	parsed = mana_ai_parse_plan_checked(job->call->content, job->agent);
	tick_note_steps(job, jb_member_text(parsed, "flags"), jb_member_text(parsed, "dropped"));
	ok = jb_member_text(parsed, "ok");
	if (ok != NULL && strcmp(ok, "true") == 0)
		return jb_member_object(parsed, "plan");
	job->fail_message = jb_member_text(parsed, "reason");
	return NULL;
}

/*
 * Parse and write back one mission, or count its failure (SPEC 4.7-4.10);
 * settle_step calls it in the mission's own subtransaction.
 */
static void
settle_job(Tick *t, Job *job)
{
	Jsonb	   *plan = NULL;

	if (job->prepared && job->call->flags != NULL)
		tick_note_steps(job, job->call->flags, NULL);	/* the tools loop's */
	if (job->prepared && !job->call->ok && !job->call->answered)
	{
		job->fail_phase = "calling-llm";
		job->fail_name = "LlmError";
		job->fail_message = job->call->error ? job->call->error : "planner call failed";
	}
	else if (job->prepared && !job->call->ok)
		job->fail_message = job->call->error;	/* answered, but no plan */
	else if (job->fail_phase == NULL)
		plan = job_plan(t, job);

	if (job->fail_phase == NULL && plan == NULL)
	{
		t->parse_failures++;
		job->fail_phase = "parsing-response";
		job->fail_name = "ParseError";
	}
	if (job->fail_phase == NULL)
	{
		t->produced++;
		if (tick_write_iteration(t, job, plan, NULL))
			t->written++;
		return;
	}
	tick_record_failure(t, job);
}

/* The steps of settling one mission; each counts the tokens first. */
static void
settle_step(Tick *t, Job *job)
{
	tick_count_tokens(t, job);
	settle_job(t, job);
}

static void
failure_step(Tick *t, Job *job)
{
	tick_count_tokens(t, job);
	tick_record_failure(t, job);
}

/*
 * Settle one mission.  If the write-back raises (a trigger, a constraint,
 * a cadence that changed since the prepare), its step is undone and the
 * mission takes the failure path instead (phase finalizing): a backoff
 * row, or the failed iteration after mana_ai.max_attempts; if that raises
 * too, the backoff alone; if even that cannot be saved, the tokens alone.
 * So the tokens spent are always counted and the LLM is never called on
 * every tick for a mission whose write-back keeps failing.
 */
static void
settle_mission(Tick *t, Job *job)
{
	char	   *error = NULL;
	char	   *why;

	job->outcome = NULL;
	job->settled = true;		/* its mission_runs row says how */
	if (tick_run_sub(t, settle_step, job, &error))
		return;
	job->written = false;		/* whatever the step wrote was undone */
	if (job->fail_phase == NULL)
	{
		/* The plan's write-back failed: record that as the failure. */
		job->fail_phase = "finalizing";
		job->fail_name = "WriteBackError";
		job->fail_message = error;
		job->outcome = NULL;
		if (tick_run_sub(t, failure_step, job, &error))
			return;
	}
	/* Recording the failure failed: the backoff, with no row written. */
	job->backoff_only = true;
	job->outcome = NULL;
	if (tick_run_sub(t, failure_step, job, &error))
		return;
	why = error;
	job->outcome = "error";
	job->written = false;
	if (!tick_run_sub(t, tick_count_tokens, job, &error))
		why = psprintf("%s; its tokens were not counted: %s", why, error);
	job->settle_error = why;
	tick_add_error(t, "mission %s: %s", job->mission_id, why);
	mana_ai_metric_inc(MC_MISSION_ERRORS, 1);
}

/*
 * The worker's batch holding these missions did not commit: everything
 * it wrote is undone.  Each mission takes the failure path in a
 * transaction of its own (attempt counted, its tokens counted once, a
 * failed iteration after mana_ai.max_attempts), the same ladder as
 * settle_mission, and the tick counts no write that was undone.
 */
void
tick_settle_failed_batch(Tick *t, List *jobs, const char *error)
{
	ListCell   *lc;

	foreach(lc, jobs)
	{
		Job		   *job = (Job *) lfirst(lc);
		char	   *why = NULL;
		bool		stale = job->outcome != NULL && strcmp(job->outcome, "stale") == 0;

		CHECK_FOR_INTERRUPTS();
		if (job->written && job->fail_phase == NULL)
			t->written--;
		else if (job->written)
			t->failed_iterations--;
		job->written = false;
		if (job->fail_phase == NULL && !stale)
		{
			job->fail_phase = "finalizing";
			job->fail_name = "WriteBackError";
			job->fail_message = psprintf("the write-back batch did not commit: %s", error);
		}
		job->outcome = NULL;
		job->backoff_only = false;
		if (!stale && job->settle_error == NULL)
		{
			if (tick_run_isolated(t, failure_step, job, &why))
			{
				job->committed = true;
				continue;
			}
			job->backoff_only = true;
			job->outcome = NULL;
			if (tick_run_isolated(t, failure_step, job, &why))
			{
				job->committed = true;
				continue;
			}
		}
		job->outcome = stale ? "stale" : "error";
		if (tick_run_isolated(t, tick_count_tokens, job, &why))
			job->committed = true;
		else
			elog(WARNING, "mana_ai: could not count the tokens of mission %s: %s",
				 job->mission_id, why);
		if (!stale)
		{
			job->settle_error = job->settle_error ? job->settle_error :
				psprintf("the write-back batch did not commit: %s", error);
			tick_add_error(t, "mission %s: %s", job->mission_id, job->settle_error);
			mana_ai_metric_inc(MC_MISSION_ERRORS, 1);
		}
	}
}

/*
 * An error ended the worker's tick and undid the open batch, if any: its
 * missions' write-backs, backoffs and token rows are gone, and the
 * missions it never reached wrote nothing.  Their slots are still due and
 * will be planned again, so the iterations are not lost; but the tokens
 * their LLM calls spent must still count, here in the transaction that
 * marks the run failed, and their mission_runs rows must not claim a
 * write that was undone.
 */
void
tick_count_uncommitted_tokens(Tick *t)
{
	ListCell   *lc;

	foreach(lc, t->jobs)
	{
		Job		   *job = (Job *) lfirst(lc);
		char	   *error = NULL;

		CHECK_FOR_INTERRUPTS();
		if (job->committed)
			continue;
		job->settled = false;
		job->written = false;
		if (job->prepared && !tick_run_sub(t, tick_count_tokens, job, &error))
			elog(WARNING, "mana_ai: could not count the tokens of mission %s: %s",
				 job->mission_id, error);
	}
}

/* For tick_groups.c: one mission's whole ladder, and its first step alone. */
void
tick_settle_mission(Tick *t, Job *job)
{
	settle_mission(t, job);
}

void
tick_settle_step(Tick *t, Job *job)
{
	settle_step(t, job);
}
