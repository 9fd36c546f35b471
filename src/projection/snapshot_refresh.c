/*
 * snapshot_refresh.c: mana_ai.refresh_snapshots(), the incremental fold
 * of new sync_changes rows into mission_snapshots and agent_snapshots
 * (SPEC 3): its driver.
 *
 * Owns the refresh cursor ("horizon"), the memory of rows applied inside
 * the uncertainty window, the refresh locks' bounded wait, and the order
 * of one refresh.  Design (see
 * docs/projections.md):
 *   - created_at is the inserting transaction's start, so the horizon
 *     never passes the start of a transaction still in progress
 *     (mana_ai.refresh_horizon(), SECURITY DEFINER over the backends'
 *     activity); rows at or after the horizon that were applied are
 *     remembered by id so a refresh with nothing new applies nothing.
 *   - Two cross-user steps, both SECURITY DEFINER and granted to the
 *     worker's role only: finding users with rows since the horizon
 *     (mana_ai.snapshot_users_since(), user ids only) and reading a batch
 *     of those users' new rows in one statement
 *     (mana_ai.snapshot_rows_of(), the ai app's aiMissions/agents rows
 *     only); each row names its user, and its snapshot is written under
 *     that user.  A late row's replay reads the record's history under
 *     its user's app.current_user_id (snapshot_fold.c).
 *   - Cost follows the delta: one discovery for both kinds, one read per
 *     batch of users with new rows (both kinds), and the stored state and
 *     the writes batched over the same users, a few statements per kind.
 * The statements are snapshot_statements.c's, the fold snapshot_fold.c's.
 * Must never build SQL from data, never abort on a malformed row, and
 * never read sync_changes but through those two functions and the
 * per-user replay.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "ops/metrics.h"
#include "projection/snapshot.h"
#include "projection/snapshot_internal.h"
#include "projection/sync_format.h"
#include "shared/spi_plans.h"

/*
 * The refresh locks: one refresh at a time, in a fixed order (missions,
 * then agents: the order of the proxy's adopt step too).  They are row
 * locks on mana_ai.snapshot_horizon, which only roles with UPDATE on it
 * (mana_ai's own) can take.  Waits at most mana_ai.refresh_lock_timeout,
 * then counts, logs and fails the refresh.
 */
static void
refresh_lock_take(const char *sql)
{
	int			nest = NewGUCNestLevel();
	char		timeout[32];
	MemoryContext cxt = CurrentMemoryContext;

	snprintf(timeout, sizeof(timeout), "%d", mana_ai_refresh_lock_timeout);
	(void) set_config_option("lock_timeout", timeout, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "mana_ai refresh: could not take the refresh locks");
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		mana_ai_metric_inc(MC_LOCK_TIMEOUTS, 1);
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("mana_ai refresh: gave up waiting for the refresh locks after %d ms",
						mana_ai_refresh_lock_timeout),
				 errdetail("Another session holds a row of mana_ai.snapshot_horizon (another refresh, or a session of a role with UPDATE on it)."),
				 errhint("See pg_locks for the holder; the next tick tries again (mana_ai.refresh_lock_timeout).")));
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nest);
}

/*
 * The horizon this refresh may move to: the oldest start of a transaction
 * still in progress (it may yet insert rows stamped with that start).
 * False when that cannot be known here.
 */
static bool
next_horizon(TimestampTz *h)
{
	bool		isnull;

	/* A snapshot older than this statement could miss rows committed since. */
	if (IsolationUsesXactSnapshot())
		return false;
	snap_run(snap_next_horizon_sql, 0, NULL, NULL, SPI_OK_SELECT);
	*h = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return !isnull;
}

/*
 * Both kinds in one pass: lock, read both horizons, compute the next one
 * before reading any row, discover the users with new rows once, then
 * read each user's rows (both kinds) and fold them batch by batch.
 */
static void
refresh_all(RefreshCounts counts[NKINDS])
{
	Oid			types[2];
	Datum		args[2];
	bool		isnull;
	TimestampTz since[NKINDS] = {DT_NOEND, DT_NOEND};
	TimestampTz horizon[NKINDS];
	TimestampTz next;
	bool		have_next;
	bool		any_applied;
	bool		any_stored[NKINDS];
	SPITupleTable *users;
	uint64		nusers;
	Batch	   *b;
	int			batch_users = BATCH_START_USERS;
	bool		batched;

	memset(counts, 0, sizeof(RefreshCounts) * NKINDS);
	/* a table of neither sync format stops here, with its errcode and hint */
	(void) mana_ai_sync_format();
	refresh_lock_take(snap_lock_sql);
	SPI_freetuptable(SPI_tuptable);

	snap_run(snap_horizons_sql, 0, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *kind = snap_tuple_text(SPI_tuptable, i, 1);

		for (int k = 0; k < NKINDS; k++)
			if (strcmp(kind, snap_kind_defs[k].kind) == 0)
				since[k] = snap_row_timestamptz(SPI_tuptable, i, 2);
	}
	SPI_freetuptable(SPI_tuptable);
	for (int k = 0; k < NKINDS; k++)
		if (since[k] == DT_NOEND)
			elog(ERROR, "mana_ai refresh: no horizon row for %s", snap_kind_defs[k].kind);

	/* computed before any row is read: see next_horizon() */
	have_next = next_horizon(&next);
	for (int k = 0; k < NKINDS; k++)
		horizon[k] = (have_next && next > since[k]) ? next : since[k];

	/* what there is to exclude or load at all (a cold refresh has neither) */
	snap_run(snap_anything_stored_sql, 0, NULL, NULL, SPI_OK_SELECT);
	any_applied = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	for (int k = 0; k < NKINDS; k++)
		any_stored[k] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												   2 + k, &isnull));
	SPI_freetuptable(SPI_tuptable);

	types[0] = TIMESTAMPTZOID;
	args[0] = TimestampTzGetDatum(Min(since[0], since[1]));
	snap_run(snap_users_since_sql, 1, types, args, SPI_OK_SELECT);
	users = SPI_tuptable;
	nusers = SPI_processed;

	batched = snap_rows_of_installed();
	b = snap_batch_create();
	for (uint64 n = 0; n < nusers; n++)
	{
		char	   *user_id = snap_tuple_text(users, n, 1);

		if (user_id == NULL || user_id[0] == '\0')
			continue;			/* no scope can ever read such rows */
		snap_batch_add_user(b, user_id);
		pfree(user_id);
		if (b->user_ids.n >= batch_users)
		{
			snap_read_batch(b, since, any_applied, batched);
			/* rows per user vary: size the next batch by this one's rows */
			if (b->nrows > BATCH_MAX_ROWS)
				batch_users = Max(1, (int) (batch_users * (uint64) BATCH_MAX_ROWS / b->nrows));
			else if (b->nrows < BATCH_MAX_ROWS / 2)
				batch_users = Min(BATCH_MAX_USERS, batch_users * 2);
			snap_run_batch(b, horizon, any_stored, counts);
			snap_batch_clear(b);
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (b->user_ids.n > 0)
	{
		snap_read_batch(b, since, any_applied, batched);
		snap_run_batch(b, horizon, any_stored, counts);
	}
	snap_batch_free(b);
	SPI_freetuptable(users);

	if (horizon[0] > since[0] || horizon[1] > since[1])
	{
		DatumList	kinds = {0};
		DatumList	hs = {0};

		for (int k = 0; k < NKINDS; k++)
			if (horizon[k] > since[k])
			{
				snap_datums_add(&kinds, CStringGetTextDatum(snap_kind_defs[k].kind));
				snap_datums_add(&hs, TimestampTzGetDatum(horizon[k]));
			}
		types[0] = TEXTARRAYOID;
		types[1] = TIMESTAMPTZARRAYOID;
		args[0] = snap_text_array(&kinds);
		args[1] = snap_timestamptz_array(&hs);
		/* rows remembered by this refresh are all at or above its horizon */
		if (any_applied)
			snap_run(snap_forget_applied_sql, 2, types, args, SPI_OK_DELETE);
		snap_run(snap_move_horizon_sql, 2, types, args, SPI_OK_UPDATE);
	}
}

void
mana_ai_refresh_snapshots_run(RefreshCounts *missions, RefreshCounts *agents)
{
	RefreshCounts counts[NKINDS];

	mana_ai_spi_connect();
	refresh_all(counts);
	mana_ai_spi_finish();

	mana_ai_metric_inc(MC_SNAPSHOTS_NEW, counts[0].new_snapshots + counts[1].new_snapshots);
	mana_ai_metric_inc(MC_SNAPSHOTS_UPDATED, counts[0].updated_snapshots + counts[1].updated_snapshots);
	mana_ai_metric_inc(MC_SNAPSHOT_ROWS_APPLIED, counts[0].rows_applied + counts[1].rows_applied);
	if (missions)
		*missions = counts[0];
	if (agents)
		*agents = counts[1];
}

PG_FUNCTION_INFO_V1(mana_ai_refresh_snapshots);

/* SQL: mana_ai.refresh_snapshots() → one row per kind with the counts. */
Datum
mana_ai_refresh_snapshots(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RefreshCounts counts[2];

	InitMaterializedSRF(fcinfo, 0);
	mana_ai_refresh_snapshots_run(&counts[0], &counts[1]);
	for (int k = 0; k < 2; k++)
	{
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = CStringGetTextDatum(snap_kind_defs[k].kind);
		values[1] = Int64GetDatum(counts[k].rows_applied);
		values[2] = Int32GetDatum(counts[k].new_snapshots);
		values[3] = Int32GetDatum(counts[k].updated_snapshots);
		values[4] = Int32GetDatum(counts[k].deleted_snapshots);
		values[5] = Int64GetDatum(counts[k].skipped_rows);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
