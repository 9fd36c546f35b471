/*
 * tick_xact.c: the transactions a tick runs in, and its lock.
 *
 * In the worker every phase is its own short transaction (tick_unit_*),
 * each mission's prepare its own transaction (tick_run_isolated), and the
 * write-backs are batched: one transaction holds the write-backs of up to
 * mana_ai.writeback_batch_size missions (or what fits in
 * mana_ai.writeback_batch_time), each in its own subtransaction
 * (tick_run_sub), so one WAL flush serves the batch and one mission's
 * failure still undoes only its own work.  From SQL everything stays in
 * the caller's transaction and each mission gets a subtransaction.  Owns
 * the tick lock (an advisory lock per database: session-level in the
 * worker, transaction-level from SQL) and what the worker does when an
 * error ends its tick.  Must never leave a transaction open when it
 * returns in the worker, and never swallow a query cancel: that is not a
 * mission's failure.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "storage/lock.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "shared/spi_plans.h"
#include "tick/tick_internal.h"
#include "tick/tick_lock.h"

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
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
worker_xact_commit(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
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
void
tick_fail_worker_run(Tick *t)
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
		worker_xact_begin();
		tick_runs_mark_failed(t->run_id, edata->message ? edata->message : "error");
		tick_count_uncommitted_tokens(t);
		tick_mission_runs_record_quietly(t, edata->message);
		worker_xact_commit();
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

/* A phase's unit of work: its own transaction in the worker. */
void
tick_unit_begin(Tick *t)
{
	if (t->mode == TICK_WORKER)
		worker_xact_begin();
	MemoryContextSwitchTo(t->cxt);
}

void
tick_unit_commit(Tick *t)
{
	if (t->mode == TICK_WORKER)
		worker_xact_commit();
	MemoryContextSwitchTo(t->cxt);
}

/*
 * Run fn for one mission so that its failure undoes only its own work:
 * in a transaction of its own (top) or a subtransaction of the one open.
 * A query cancel is not a mission failure: it goes on up.
 */
static bool
run_guarded(Tick *t, void (*fn) (Tick *, Job *), Job *job, char **error, bool top)
{
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	if (top)
		worker_xact_begin();
	else
	{
		BeginInternalSubTransaction(NULL);
		/*
		 * A snapshot of its own: in a write-back batch the transaction's
		 * snapshot is as old as the batch, and the mission's replay (a
		 * read-only query) must see what the user committed since, or the
		 * write-back could win the LWW merge over a newer reschedule.
		 */
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	MemoryContextSwitchTo(t->cxt);

	PG_TRY();
	{
		fn(t, job);
		if (top)
			worker_xact_commit();
		else
		{
			PopActiveSnapshot();
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
		if (top)
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

/* A mission's own transaction in the worker, a subtransaction from SQL. */
bool
tick_run_isolated(Tick *t, void (*fn) (Tick *, Job *), Job *job, char **error)
{
	return run_guarded(t, fn, job, error, t->mode == TICK_WORKER);
}

/* A subtransaction of the open batch (or of the caller's transaction). */
bool
tick_run_sub(Tick *t, void (*fn) (Tick *, Job *), Job *job, char **error)
{
	return run_guarded(t, fn, job, error, false);
}

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
 * Commit the worker's open batch: NULL, or the error that made the commit
 * fail (a deferred check a trigger asked for, a serialization failure),
 * with the batch undone.  A cancel goes on up.
 */
static char *
batch_commit(Tick *t)
{
	char	   *volatile error = NULL;

	PG_TRY();
	{
		worker_xact_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(t->cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
		error = pstrdup(edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(t->cxt);
	return error;
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
		error = batch_commit(t);
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

/*
 * One statement of the tick's own bookkeeping, in its own SPI
 * connection; ERROR (saying what failed) unless SPI answers expected.
 */
void
tick_exec(Tick *t, const char *sql, int nargs, Oid *types, Datum *values,
		  int expected, const char *what)
{
	mana_ai_spi_connect();
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) != expected)
		elog(ERROR, "mana_ai: could not %s", what);
	mana_ai_spi_finish();
	MemoryContextSwitchTo(t->cxt);
}
