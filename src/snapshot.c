/*
 * snapshot.c: mana_ai.refresh_snapshots(), the incremental fold of new
 * sync_changes rows into mission_snapshots and agent_snapshots (SPEC 3).
 *
 * Owns the refresh cursor ("horizon"), the memory of rows applied inside
 * the uncertainty window, and the tombstone memory.  Design (see
 * docs/projections.md):
 *   - created_at is the inserting transaction's start, so the horizon
 *     never passes the start of a transaction still in progress
 *     (mana_ai.refresh_horizon(), SECURITY DEFINER over pg_stat_activity);
 *     rows at or after the horizon that were applied are remembered by id
 *     so a refresh with nothing new applies nothing.
 *   - The one cross-user step, finding users with rows since the horizon,
 *     is mana_ai.snapshot_users_since() and returns user ids only; every
 *     read and write of a user's rows runs with app.current_user_id set
 *     to that user.
 *   - New rows fold onto the stored snapshot (which keeps its stamps); a
 *     row older than the snapshot's last applied row (a late commit)
 *     replays that one record from its history instead.
 * Must never build SQL from data, never abort on a malformed row, and
 * never read a user's rows outside that user's scope.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "lww.h"
#include "metrics.h"
#include "replay.h"
#include "snapshot.h"

/* pg_advisory_xact_lock(REFRESH_LOCK_CLASS, kind): one refresh per kind. */
#define REFRESH_LOCK_CLASS 1835101793	/* 'mana' */

typedef struct KindDef
{
	int			lock_key;
	const char *kind;			/* missions | agents */
	const char *table_name;		/* sync_changes.table_name */
	const char *load_sql;
	const char *upsert_sql;
	const char *delete_sql;
} KindDef;

static const KindDef kind_defs[2] = {
	{1, "missions", "aiMissions",
		"SELECT r.id, s.record, s.last_applied_at, t.record_id IS NOT NULL"
		"  FROM unnest($2::text[]) AS r(id)"
		"  LEFT JOIN mana_ai.mission_snapshots s ON s.user_id = $1 AND s.mission_id = r.id"
		"  LEFT JOIN mana_ai.snapshot_tombstones t"
		"         ON t.kind = 'missions' AND t.user_id = $1 AND t.record_id = r.id"
		" WHERE s.record IS NOT NULL OR t.record_id IS NOT NULL"
		" ORDER BY r.id COLLATE \"C\"",
		"INSERT INTO mana_ai.mission_snapshots AS s"
		" (user_id, mission_id, record, last_applied_at, updated_at)"
		" SELECT $1, u.r, u.j, u.t, now() FROM unnest($2::text[], $3::jsonb[], $4::timestamptz[]) AS u(r, j, t)"
		" ON CONFLICT (user_id, mission_id) DO UPDATE SET record = excluded.record,"
		" last_applied_at = excluded.last_applied_at, updated_at = excluded.updated_at",
		"DELETE FROM mana_ai.mission_snapshots WHERE user_id = $1 AND mission_id = ANY ($2)"},
	{2, "agents", "agents",
		"SELECT r.id, s.record, s.last_applied_at, t.record_id IS NOT NULL"
		"  FROM unnest($2::text[]) AS r(id)"
		"  LEFT JOIN mana_ai.agent_snapshots s ON s.user_id = $1 AND s.agent_id = r.id"
		"  LEFT JOIN mana_ai.snapshot_tombstones t"
		"         ON t.kind = 'agents' AND t.user_id = $1 AND t.record_id = r.id"
		" WHERE s.record IS NOT NULL OR t.record_id IS NOT NULL"
		" ORDER BY r.id COLLATE \"C\"",
		"INSERT INTO mana_ai.agent_snapshots AS s"
		" (user_id, agent_id, record, last_applied_at, updated_at)"
		" SELECT $1, u.r, u.j, u.t, now() FROM unnest($2::text[], $3::jsonb[], $4::timestamptz[]) AS u(r, j, t)"
		" ON CONFLICT (user_id, agent_id) DO UPDATE SET record = excluded.record,"
		" last_applied_at = excluded.last_applied_at, updated_at = excluded.updated_at",
		"DELETE FROM mana_ai.agent_snapshots WHERE user_id = $1 AND agent_id = ANY ($2)"},
};

/* The new rows of one user and kind, grouped by record, then in LWW order. */
static const char *rows_sql =
	"SELECT s.id, s.record_id, s.op, s.data, s.field_timestamps, s.created_at"
	"  FROM public.sync_changes s"
	" WHERE s.user_id = $1 AND s.app_id = 'ai' AND s.table_name = $2"
	"   AND s.created_at >= $3"
	"   AND NOT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied a"
	"                    WHERE a.kind = $4 AND a.row_id = s.id)"
	" ORDER BY s.record_id COLLATE \"C\", s.created_at, s.id";

static const char *history_sql =
	"SELECT op, data, field_timestamps, created_at FROM public.sync_changes"
	" WHERE table_name = $1 AND record_id = $2 AND user_id = $3 AND app_id = 'ai'"
	" ORDER BY created_at, id";

static const char *add_tombstones_sql =
	"INSERT INTO mana_ai.snapshot_tombstones (kind, user_id, record_id)"
	" SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING";

static const char *add_applied_sql =
	"INSERT INTO mana_ai.snapshot_applied (kind, row_id, user_id, created_at)"
	" SELECT $1, u.i, $2, u.t FROM unnest($3::uuid[], $4::timestamptz[]) AS u(i, t)"
	" ON CONFLICT DO NOTHING";

/* Growable parallel arrays of Datums for one batched statement. */
typedef struct DatumList
{
	Datum	   *vals;
	int			n;
	int			cap;
} DatumList;

static void
datums_add(DatumList *l, Datum d)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->vals = l->vals ? repalloc(l->vals, sizeof(Datum) * l->cap)
			: palloc(sizeof(Datum) * l->cap);
	}
	l->vals[l->n++] = d;
}

static Datum
text_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
jsonb_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, JSONBOID, -1, false, TYPALIGN_INT));
}

static Datum
timestamptz_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, TIMESTAMPTZOID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
uuid_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, UUIDOID, UUID_LEN,
										   false, TYPALIGN_CHAR));
}

/* What one user's refresh writes back, batched. */
typedef struct UserWrites
{
	DatumList	upsert_ids;
	DatumList	upsert_records;
	DatumList	upsert_last;
	DatumList	delete_ids;
	DatumList	tomb_ids;
	DatumList	applied_ids;
	DatumList	applied_at;
} UserWrites;

/* One user's already stored state for the records the new rows touch. */
typedef struct StoredState
{
	/* (id, record or NULL, last_applied_at, tombstoned) sorted by id "C" */
	SPITupleTable *state;
	uint64		nstate;
	uint64		pos;
} StoredState;

/*
 * Plans prepared once per refresh run (per user they would be re-planned
 * thousands of times on a cold refresh).  Keyed by the statement's static
 * string; they live in SPI's procedure context and go with SPI_finish.
 */
#define MAX_PLANS 32
static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			run_plans[MAX_PLANS];
static int	n_run_plans = 0;

static SPIPlanPtr
plan_for(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;

	for (int i = 0; i < n_run_plans; i++)
		if (run_plans[i].sql == sql)
			return run_plans[i].plan;
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "mana_ai refresh: could not prepare (SPI code %d): %s", SPI_result, sql);
	if (n_run_plans < MAX_PLANS)
	{
		run_plans[n_run_plans].sql = sql;
		run_plans[n_run_plans].plan = plan;
		n_run_plans++;
	}
	return plan;
}

static void
run_or_fail(const char *sql, int nargs, Oid *types, Datum *args, int expected)
{
	int			rc = SPI_execute_plan(plan_for(sql, nargs, types), args, NULL, false, 0);

	if (rc != expected)
		elog(ERROR, "mana_ai refresh: statement failed (SPI code %d): %s", rc, sql);
}

static char *
tuple_text(SPITupleTable *t, uint64 row, int col)
{
	return SPI_getvalue(t->vals[row], t->tupdesc, col);
}

static Datum
tuple_datum(SPITupleTable *t, uint64 row, int col, bool *isnull)
{
	return SPI_getbinval(t->vals[row], t->tupdesc, col, isnull);
}

/* Advance a sorted cursor to record_id; true if it is there. */
static bool
seek_sorted(SPITupleTable *t, uint64 n, uint64 *pos, const char *record_id)
{
	while (*pos < n)
	{
		char	   *id = tuple_text(t, *pos, 1);
		int			c = strcmp(id, record_id);

		if (c >= 0)
			return c == 0;
		(*pos)++;
	}
	return false;
}

static Jsonb *
row_jsonb(SPITupleTable *t, uint64 row, int col)
{
	bool		isnull;
	Datum		d = tuple_datum(t, row, col, &isnull);

	return isnull ? NULL : DatumGetJsonbP(d);
}

/* Fold the record's whole visible history: the answer for a late row. */
static LwwState *
replay_history(const KindDef *def, const char *user_id, const char *record_id,
			   MemoryContext cxt)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	LwwState   *state = lww_state_create(cxt, record_id);
	SPITupleTable *t;

	args[0] = CStringGetTextDatum(def->table_name);
	args[1] = CStringGetTextDatum(record_id);
	args[2] = CStringGetTextDatum(user_id);
	run_or_fail(history_sql, 3, types, args, SPI_OK_SELECT);
	t = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		lww_fold_row(state, tuple_text(t, i, 1), row_jsonb(t, i, 2), row_jsonb(t, i, 3),
					 DatumGetTimestampTz(tuple_datum(t, i, 4, &isnull)));
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freetuptable(t);
	return state;
}

/*
 * Fold rows [from, to) of one record (same record_id) onto what is
 * stored, and queue the writes.
 */
static void
refresh_record(const KindDef *def, const char *user_id, SPITupleTable *rows,
			   uint64 from, uint64 to, StoredState *stored, TimestampTz horizon,
			   UserWrites *w, RefreshCounts *counts, MemoryContext cxt)
{
	char	   *record_id = tuple_text(rows, from, 2);
	bool		isnull;
	bool		has_snapshot;
	Jsonb	   *old_record = NULL;
	TimestampTz old_last = DT_NOBEGIN;
	TimestampTz first_at = DatumGetTimestampTz(tuple_datum(rows, from, 6, &isnull));
	TimestampTz last_at = DatumGetTimestampTz(tuple_datum(rows, to - 1, 6, &isnull));
	bool		tombstoned;
	LwwState   *state;
	Jsonb	   *result;

	/* count and remember the rows whatever their fate */
	for (uint64 i = from; i < to; i++)
	{
		TimestampTz at = DatumGetTimestampTz(tuple_datum(rows, i, 6, &isnull));

		if (lww_row_is_wellformed(tuple_text(rows, i, 3), row_jsonb(rows, i, 4),
								  row_jsonb(rows, i, 5), at))
			counts->rows_applied++;
		else
			counts->skipped_rows++;
		if (at >= horizon)
		{
			datums_add(&w->applied_ids, datumCopy(tuple_datum(rows, i, 1, &isnull), false, UUID_LEN));
			datums_add(&w->applied_at, TimestampTzGetDatum(at));
		}
	}

	if (seek_sorted(stored->state, stored->nstate, &stored->pos, record_id))
	{
		tombstoned = DatumGetBool(tuple_datum(stored->state, stored->pos, 4, &isnull));
		if (tombstoned)
			return;				/* a tombstone is terminal */
		old_record = row_jsonb(stored->state, stored->pos, 2);
		has_snapshot = old_record != NULL;
		if (has_snapshot)
			old_last = DatumGetTimestampTz(tuple_datum(stored->state, stored->pos, 3, &isnull));
	}
	else
		has_snapshot = false;

	if (has_snapshot && first_at <= old_last)
	{
		/* a row older than what the snapshot holds: replay this record */
		state = replay_history(def, user_id, record_id, cxt);
	}
	else
	{
		state = lww_state_create(cxt, record_id);
		if (has_snapshot)
			lww_state_load(state, old_record);
		for (uint64 i = from; i < to; i++)
			lww_fold_row(state, tuple_text(rows, i, 3), row_jsonb(rows, i, 4),
						 row_jsonb(rows, i, 5),
						 DatumGetTimestampTz(tuple_datum(rows, i, 6, &isnull)));
	}
	if (last_at < old_last)
		last_at = old_last;

	result = lww_state_result(state);
	if (result == NULL)
	{
		if (state->tombstoned)
		{
			datums_add(&w->tomb_ids, CStringGetTextDatum(record_id));
			if (has_snapshot)
			{
				datums_add(&w->delete_ids, CStringGetTextDatum(record_id));
				counts->deleted_snapshots++;
			}
		}
		return;
	}
	if (has_snapshot && last_at == old_last &&
		VARSIZE(result) == VARSIZE(old_record) &&
		memcmp(result, old_record, VARSIZE(result)) == 0)
		return;					/* nothing changed: do not rewrite */

	datums_add(&w->upsert_ids, CStringGetTextDatum(record_id));
	datums_add(&w->upsert_records, JsonbPGetDatum(result));
	datums_add(&w->upsert_last, TimestampTzGetDatum(last_at));
	if (has_snapshot)
		counts->updated_snapshots++;
	else
		counts->new_snapshots++;
}

/* Load the stored snapshots and tombstones of the records in rows. */
static void
load_stored(const KindDef *def, const char *user_id, SPITupleTable *rows,
			uint64 nrows, StoredState *stored)
{
	DatumList	ids = {0};
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		args[2];
	char	   *prev = NULL;

	for (uint64 i = 0; i < nrows; i++)
	{
		char	   *id = tuple_text(rows, i, 2);

		if (prev == NULL || strcmp(prev, id) != 0)
			datums_add(&ids, CStringGetTextDatum(id));
		prev = id;
	}
	args[0] = CStringGetTextDatum(user_id);
	args[1] = text_array(&ids);
	run_or_fail(def->load_sql, 2, types, args, SPI_OK_SELECT);
	stored->state = SPI_tuptable;
	stored->nstate = SPI_processed;
}

/* Write one user's batched results. */
static void
flush_writes(const KindDef *def, const char *user_id, UserWrites *w)
{
	Datum		user = CStringGetTextDatum(user_id);
	Datum		kind = CStringGetTextDatum(def->kind);

	if (w->upsert_ids.n > 0)
	{
		Oid			types[4] = {TEXTOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZARRAYOID};
		Datum		args[4] = {user, text_array(&w->upsert_ids),
			jsonb_array(&w->upsert_records), timestamptz_array(&w->upsert_last)};

		run_or_fail(def->upsert_sql, 4, types, args, SPI_OK_INSERT);
	}
	if (w->delete_ids.n > 0)
	{
		Oid			types[2] = {TEXTOID, TEXTARRAYOID};
		Datum		args[2] = {user, text_array(&w->delete_ids)};

		run_or_fail(def->delete_sql, 2, types, args, SPI_OK_DELETE);
	}
	if (w->tomb_ids.n > 0)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, TEXTARRAYOID};
		Datum		args[3] = {kind, user, text_array(&w->tomb_ids)};

		run_or_fail(add_tombstones_sql, 3, types, args, SPI_OK_INSERT);
	}
	if (w->applied_ids.n > 0)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, UUIDARRAYOID, TIMESTAMPTZARRAYOID};
		Datum		args[4] = {kind, user, uuid_array(&w->applied_ids),
			timestamptz_array(&w->applied_at)};

		run_or_fail(add_applied_sql, 4, types, args, SPI_OK_INSERT);
	}
}

/* Fold one user's new rows of one kind, under that user's scope. */
static void
refresh_user(const KindDef *def, const char *user_id, TimestampTz since,
			 TimestampTz horizon, RefreshCounts *counts, MemoryContext cxt)
{
	int			nest = mana_ai_enter_user_scope(user_id);
	Oid			types[4] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		args[4];
	SPITupleTable *rows;
	uint64		nrows;
	StoredState stored = {0};
	UserWrites	w;
	uint64		start = 0;

	memset(&w, 0, sizeof(w));
	args[0] = CStringGetTextDatum(user_id);
	args[1] = CStringGetTextDatum(def->table_name);
	args[2] = TimestampTzGetDatum(since);
	args[3] = CStringGetTextDatum(def->kind);
	run_or_fail(rows_sql, 4, types, args, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	if (nrows == 0)
	{
		SPI_freetuptable(rows);
		mana_ai_leave_user_scope(nest);
		return;
	}

	load_stored(def, user_id, rows, nrows, &stored);
	for (uint64 i = 1; i <= nrows; i++)
	{
		if (i == nrows ||
			strcmp(tuple_text(rows, i, 2), tuple_text(rows, start, 2)) != 0)
		{
			refresh_record(def, user_id, rows, start, i, &stored, horizon,
						   &w, counts, cxt);
			start = i;
		}
		CHECK_FOR_INTERRUPTS();
	}
	flush_writes(def, user_id, &w);
	SPI_freetuptable(stored.state);
	SPI_freetuptable(rows);
	mana_ai_leave_user_scope(nest);
}

/*
 * The horizon this refresh may move to: the oldest start of a transaction
 * still in progress (it may yet insert rows stamped with that start), or
 * the old horizon when that cannot be known here.
 */
static TimestampTz
next_horizon(TimestampTz old)
{
	bool		isnull;
	TimestampTz h;

	/* A snapshot older than this statement could miss rows committed since. */
	if (IsolationUsesXactSnapshot())
		return old;
	run_or_fail("SELECT mana_ai.refresh_horizon()", 0, NULL, NULL, SPI_OK_SELECT);
	h = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || h < old)
		return old;
	return h;
}

static void
refresh_kind(const KindDef *def, RefreshCounts *counts)
{
	MemoryContext user_cxt;
	MemoryContext old_cxt;
	Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		args[2];
	bool		isnull;
	TimestampTz since;
	TimestampTz horizon;
	SPITupleTable *users;
	uint64		nusers;

	memset(counts, 0, sizeof(*counts));
	args[0] = Int32GetDatum(def->lock_key);
	types[0] = INT4OID;
	run_or_fail("SELECT pg_catalog.pg_advisory_xact_lock(" CppAsString2(REFRESH_LOCK_CLASS) ", $1)",
				1, types, args, SPI_OK_SELECT);

	types[0] = TEXTOID;
	args[0] = CStringGetTextDatum(def->kind);
	run_or_fail("SELECT horizon FROM mana_ai.snapshot_horizon WHERE kind = $1 FOR UPDATE",
				1, types, args, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "mana_ai refresh: no horizon row for %s", def->kind);
	since = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* computed before any row is read: see next_horizon() */
	horizon = next_horizon(since);

	args[0] = CStringGetTextDatum(def->table_name);
	args[1] = TimestampTzGetDatum(since);
	run_or_fail("SELECT u FROM mana_ai.snapshot_users_since($1, $2) AS u",
				2, types, args, SPI_OK_SELECT);
	users = SPI_tuptable;
	nusers = SPI_processed;

	user_cxt = AllocSetContextCreate(CurrentMemoryContext, "mana_ai refresh user",
									 ALLOCSET_DEFAULT_SIZES);
	for (uint64 u = 0; u < nusers; u++)
	{
		char	   *user_id = tuple_text(users, u, 1);

		if (user_id == NULL || user_id[0] == '\0')
			continue;			/* no scope can ever read such rows */
		old_cxt = MemoryContextSwitchTo(user_cxt);
		refresh_user(def, user_id, since, horizon, counts, user_cxt);
		MemoryContextSwitchTo(old_cxt);
		MemoryContextReset(user_cxt);
	}
	MemoryContextDelete(user_cxt);
	SPI_freetuptable(users);

	if (horizon > since)
	{
		types[1] = TIMESTAMPTZOID;
		args[0] = CStringGetTextDatum(def->kind);
		args[1] = TimestampTzGetDatum(horizon);
		run_or_fail("DELETE FROM mana_ai.snapshot_applied WHERE kind = $1 AND created_at < $2",
					2, types, args, SPI_OK_DELETE);
		run_or_fail("UPDATE mana_ai.snapshot_horizon SET horizon = $2 WHERE kind = $1",
					2, types, args, SPI_OK_UPDATE);
	}
}

void
mana_ai_refresh_snapshots_run(RefreshCounts *missions, RefreshCounts *agents)
{
	RefreshCounts mc,
				ac;

	SPI_connect();
	n_run_plans = 0;
	refresh_kind(&kind_defs[0], &mc);
	refresh_kind(&kind_defs[1], &ac);
	n_run_plans = 0;
	SPI_finish();

	mana_ai_metric_inc(MC_SNAPSHOTS_NEW, mc.new_snapshots + ac.new_snapshots);
	mana_ai_metric_inc(MC_SNAPSHOTS_UPDATED, mc.updated_snapshots + ac.updated_snapshots);
	mana_ai_metric_inc(MC_SNAPSHOT_ROWS_APPLIED, mc.rows_applied + ac.rows_applied);
	if (missions)
		*missions = mc;
	if (agents)
		*agents = ac;
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

		values[0] = CStringGetTextDatum(kind_defs[k].kind);
		values[1] = Int64GetDatum(counts[k].rows_applied);
		values[2] = Int32GetDatum(counts[k].new_snapshots);
		values[3] = Int32GetDatum(counts[k].updated_snapshots);
		values[4] = Int32GetDatum(counts[k].deleted_snapshots);
		values[5] = Int64GetDatum(counts[k].skipped_rows);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
