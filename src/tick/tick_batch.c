/*
 * tick_batch.c: the worker's write-back batches.
 *
 * One transaction, with every constraint immediate, holds the write-backs
 * of up to mana_ai.writeback_batch_size missions, or what fits in
 * mana_ai.writeback_batch_time, each in its own subtransaction
 * (tick_settle.c's settle_mission), so one WAL flush serves the batch and
 * one mission's failure still undoes only its own work.  Owns opening a
 * batch, counting the missions settled in it, and its commit: a committed
 * batch marks its missions committed (and times their commit latency); a
 * batch whose commit fails sends each of its missions down the failure
 * path on its own (tick_settle_failed_batch).  From SQL the batch is the
 * caller's transaction.  Must never keep a batch open longer than its
 * size or time allows: its locks and its snapshot would be held long.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "planner/llm.h"
#include "shared/spi_plans.h"
#include "tick/tick_internal.h"

/*
 * Open a write-back batch unless one is open.  In the worker it is a
 * transaction with every constraint immediate, so a deferred check fails
 * inside the one mission's subtransaction, never at the batch's commit
 * (which would undo every mission of the batch).  From SQL it is the
 * caller's transaction.
 */
void
tick_batch_open(Tick *t)
{
	if (t->batch_open)
		return;
	tick_unit_begin(t);
	if (t->mode == TICK_WORKER)
	{
		mana_ai_spi_connect();
		if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "mana_ai: could not make the batch's constraints immediate");
		mana_ai_spi_finish();
		MemoryContextSwitchTo(t->cxt);
	}
	t->batch_open = true;
	t->batch_missions = 0;
	t->batch_started = GetCurrentTimestamp();
}

/*
 * One more mission is settled in the open batch: commit the batch when it
 * holds mana_ai.writeback_batch_size missions or has been open for
 * mana_ai.writeback_batch_time, so its locks and its snapshot are never
 * held long.
 */
void
tick_batch_settled(Tick *t, Job *job)
{
	t->batch_jobs = lappend(t->batch_jobs, job);
	t->batch_missions++;
	if (t->batch_missions >= mana_ai_writeback_batch_size ||
		TimestampDifferenceExceeds(t->batch_started, GetCurrentTimestamp(),
								   mana_ai_writeback_batch_time))
		tick_batch_close(t);
}

/*
 * Commit the open batch, if any: every write-back in it lands at once.
 * When the commit fails, each of its missions goes through the failure
 * path on its own (tick_settle_failed_batch), and the tick goes on.
 */
void
tick_batch_close(Tick *t)
{
	ListCell   *lc;
	List	   *jobs = t->batch_jobs;
	char	   *error = NULL;

	if (!t->batch_open)
		return;
	t->batch_open = false;
	t->batch_jobs = NIL;
	if (t->mode == TICK_WORKER)
		error = tick_unit_try_commit(t);
	else
		tick_unit_commit(t);
	if (error != NULL)
		tick_settle_failed_batch(t, jobs, error);
	else
	{
		double		now = mana_ai_llm_now();

		foreach(lc, jobs)
		{
			Job		   *job = (Job *) lfirst(lc);

			job->committed = true;
			if (t->mode == TICK_WORKER && job->prepared && job->call->answered_at > 0)
			{
				if (t->commit_ms == NULL)
					t->commit_ms = MemoryContextAlloc(t->cxt, sizeof(double) *
													  Max(list_length(t->jobs), 1));
				if (t->n_commit_ms < list_length(t->jobs))
					t->commit_ms[t->n_commit_ms++] = (now - job->call->answered_at) * 1000.0;
			}
		}
	}
	list_free(jobs);
}
