/*
 * tick_xact.c: the transactions a tick runs in.
 *
 * In the worker every phase is its own short transaction (tick_unit_*),
 * each mission's prepare its own transaction (tick_run_isolated), and
 * each mission's write-back a subtransaction (tick_run_sub) of a batch
 * (tick_batch.c), whose commit tick_unit_try_commit reports instead of
 * raising.  From SQL everything stays in the caller's transaction and
 * each mission gets a subtransaction.  The bottom of the tick: it calls
 * nothing of the tick above it (what an error or a failed commit means
 * for the run or the missions is tick_run.c's and tick_batch.c's).  Must
 * never leave a transaction open when it returns in the worker, and never
 * swallow a query cancel: that is not a mission's failure.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "shared/spi_plans.h"
#include "tick/tick_internal.h"

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
 * Inside a PG_CATCH: the error being handled as its message, in the
 * tick's memory, with the error state cleared (the caller then undoes its
 * transaction).  A query cancel is no mission's failure: it goes on up.
 */
static char *
take_error_unless_cancel(Tick *t)
{
	ErrorData  *edata;
	char	   *message;

	MemoryContextSwitchTo(t->cxt);
	edata = CopyErrorData();
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		PG_RE_THROW();
	FlushErrorState();
	message = pstrdup(edata->message);
	FreeErrorData(edata);
	return message;
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
		*error = take_error_unless_cancel(t);
		if (top)
			AbortCurrentTransaction();
		else
		{
			RollbackAndReleaseCurrentSubTransaction();
			CurrentResourceOwner = owner;
		}
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
 * Commit the worker's open transaction (a write-back batch): NULL, or the
 * error that made the commit fail (a deferred check a trigger asked for,
 * a serialization failure), with the transaction undone.  A cancel goes
 * on up.
 */
char *
tick_unit_try_commit(Tick *t)
{
	char	   *volatile error = NULL;

	PG_TRY();
	{
		worker_xact_commit();
	}
	PG_CATCH();
	{
		error = take_error_unless_cancel(t);
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(t->cxt);
	return error;
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
