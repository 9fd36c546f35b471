/*
 * snapshot.c: mana_ai.refresh_snapshots(), the incremental fold of new
 * sync_changes rows into mission_snapshots and agent_snapshots (SPEC 3).
 *
 * Owns the refresh cursor ("horizon"), the memory of rows applied inside
 * the uncertainty window, and the tombstone memory.  Design (see
 * docs/projections.md):
 *   - created_at is the inserting transaction's start, so the horizon
 *     never passes the start of a transaction still in progress
 *     (mana_ai.refresh_horizon(), SECURITY DEFINER over the backends'
 *     activity);
 *     rows at or after the horizon that were applied are remembered by id
 *     so a refresh with nothing new applies nothing.
 *   - The one cross-user step, finding users with rows since the horizon,
 *     is mana_ai.snapshot_users_since() and returns user ids only; every
 *     read of a user's sync_changes rows runs with app.current_user_id
 *     set to that user.
 *   - New rows fold onto the stored snapshot (which keeps its stamps); a
 *     row older than the snapshot's last applied row (a late commit)
 *     replays that one record from its history instead.
 *   - Cost follows the delta: one discovery for both kinds, one read per
 *     user with new rows (both kinds), and the stored state and the
 *     writes batched over up to 100 users per statement (mana_ai's own
 *     tables, without row-level security); plans are kept for the life
 *     of the backend.
 * Must never build SQL from data, never abort on a malformed row, and
 * never read a user's rows outside that user's scope.
 */
#include "postgres.h"

#include "access/htup_details.h"
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

/* pg_advisory_xact_lock(REFRESH_LOCK_CLASS, 1|2): one refresh per kind. */
#define REFRESH_LOCK_CLASS 1835101793	/* 'mana' */

/*
 * A batch: the users whose new rows are read (each under its own scope)
 * before their stored state is loaded and their writes are flushed, all
 * in a few statements.  Bounded so a cold refresh of a big log keeps its
 * memory flat.
 */
#define BATCH_MAX_USERS 100
#define BATCH_MAX_ROWS 5000

#define NKINDS 2

typedef struct KindDef
{
	const char *kind;			/* missions | agents */
	const char *table_name;		/* sync_changes.table_name */
	const char *load_sql;
	const char *insert_sql;
	const char *update_sql;
	const char *delete_sql;
} KindDef;

/* kind_defs[0] is missions, [1] agents: the order of rows_sql's is_agent. */
static const KindDef kind_defs[NKINDS] = {
	{"missions", "aiMissions",
		"SELECT k.n, s.record, s.last_applied_at, t.record_id IS NOT NULL"
		"  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(u, r, n)"
		"  LEFT JOIN mana_ai.mission_snapshots s ON s.user_id = k.u AND s.mission_id = k.r"
		"  LEFT JOIN mana_ai.snapshot_tombstones t"
		"         ON t.kind = 'missions' AND t.user_id = k.u AND t.record_id = k.r"
		" WHERE s.record IS NOT NULL OR t.record_id IS NOT NULL",
		"INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, last_applied_at, updated_at)"
		" SELECT u.u, u.r, u.j, u.t, now()"
		"   FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[]) AS u(u, r, j, t)",
		"UPDATE mana_ai.mission_snapshots s SET record = u.j, last_applied_at = u.t, updated_at = now()"
		"  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[]) AS u(u, r, j, t)"
		" WHERE s.user_id = u.u AND s.mission_id = u.r",
		"DELETE FROM mana_ai.mission_snapshots s USING unnest($1::text[], $2::text[]) AS d(u, r)"
		" WHERE s.user_id = d.u AND s.mission_id = d.r"},
	{"agents", "agents",
		"SELECT k.n, s.record, s.last_applied_at, t.record_id IS NOT NULL"
		"  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(u, r, n)"
		"  LEFT JOIN mana_ai.agent_snapshots s ON s.user_id = k.u AND s.agent_id = k.r"
		"  LEFT JOIN mana_ai.snapshot_tombstones t"
		"         ON t.kind = 'agents' AND t.user_id = k.u AND t.record_id = k.r"
		" WHERE s.record IS NOT NULL OR t.record_id IS NOT NULL",
		"INSERT INTO mana_ai.agent_snapshots (user_id, agent_id, record, last_applied_at, updated_at)"
		" SELECT u.u, u.r, u.j, u.t, now()"
		"   FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[]) AS u(u, r, j, t)",
		"UPDATE mana_ai.agent_snapshots s SET record = u.j, last_applied_at = u.t, updated_at = now()"
		"  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[]) AS u(u, r, j, t)"
		" WHERE s.user_id = u.u AND s.agent_id = u.r",
		"DELETE FROM mana_ai.agent_snapshots s USING unnest($1::text[], $2::text[]) AS d(u, r)"
		" WHERE s.user_id = d.u AND s.agent_id = d.r"},
};

/*
 * The new rows of one user, both kinds ($2 missions' horizon, $3 agents').
 * Unordered: read_user() sorts them by kind, record and LWW order on
 * pointers, cheaper than a sort node copying every wide row.  The variant
 * with the anti-join is used only while snapshot_applied holds ids (rows
 * applied inside the window); otherwise it has nothing to exclude.
 */
#define ROWS_SELECT \
	"SELECT s.id, s.record_id, s.op, s.data, s.field_timestamps, s.created_at," \
	"       s.table_name = 'agents'" \
	"  FROM public.sync_changes s" \
	" WHERE s.user_id = $1 AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents')" \
	"   AND s.created_at >= LEAST($2, $3)" \
	"   AND s.created_at >= CASE s.table_name WHEN 'agents' THEN $3 ELSE $2 END"

static const char *rows_sql = ROWS_SELECT;
static const char *rows_unapplied_sql = ROWS_SELECT
	"   AND NOT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied a"
	"                    WHERE a.kind = CASE s.table_name WHEN 'agents' THEN 'agents' ELSE 'missions' END"
	"                      AND a.row_id = s.id)";

static const char *history_sql =
	"SELECT op, data, field_timestamps, created_at FROM public.sync_changes"
	" WHERE table_name = $1 AND record_id = $2 AND user_id = $3 AND app_id = 'ai'"
	" ORDER BY created_at, id";

static const char *add_tombstones_sql =
	"INSERT INTO mana_ai.snapshot_tombstones (kind, user_id, record_id)"
	" SELECT $1, u.u, u.r FROM unnest($2::text[], $3::text[]) AS u(u, r)"
	" ON CONFLICT DO NOTHING";

static const char *add_applied_sql =
	"INSERT INTO mana_ai.snapshot_applied (kind, row_id, user_id, created_at)"
	" SELECT $1, u.i, u.u, u.t FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) AS u(i, u, t)"
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

/* What one batch writes back for one kind. */
typedef struct KindWrites
{
	DatumList	insert_users;
	DatumList	insert_ids;
	DatumList	insert_records;
	DatumList	insert_last;
	DatumList	update_users;
	DatumList	update_ids;
	DatumList	update_records;
	DatumList	update_last;
	DatumList	delete_users;
	DatumList	delete_ids;
	DatumList	tomb_users;
	DatumList	tomb_ids;
	DatumList	applied_ids;
	DatumList	applied_users;
	DatumList	applied_at;
} KindWrites;

/* A record's stored state; found = false when neither snapshot nor tombstone. */
typedef struct StoredSlot
{
	bool		found;
	bool		tombstoned;
	Jsonb	   *record;			/* NULL: no snapshot */
	TimestampTz last_applied_at;
} StoredSlot;

/* One new row, its columns taken apart once. */
typedef struct RowRef
{
	int			kind;			/* index into kind_defs */
	char	   *record_id;
	TimestampTz created_at;
	Datum		id;				/* uuid, points into the tuple */
	char	   *op;
	Jsonb	   *data;			/* NULL: SQL NULL */
	Jsonb	   *stamps;
} RowRef;

/* One user's new rows, read under that user's scope, in fold order. */
typedef struct UserRows
{
	char	   *user_id;
	Datum		user_text;
	SPITupleTable *tuples;		/* holds what refs point into */
	RowRef	   *refs;
} UserRows;

/* The rows [from, to) of one record of one kind of one user. */
typedef struct RecordGroup
{
	int			user;			/* index into Batch.users */
	int			kind;
	uint64		from;
	uint64		to;
	int			slot;			/* index into Batch.stored[kind] */
} RecordGroup;

typedef struct Batch
{
	UserRows   *users;
	int			nusers;
	uint64		nrows;
	RecordGroup *groups;
	int			ngroups;
	int			groups_cap;
	DatumList	load_users[NKINDS];
	DatumList	load_ids[NKINDS];
	StoredSlot *stored[NKINDS];
	SPITupleTable *loaded[NKINDS];
	KindWrites	writes[NKINDS];
} Batch;

/*
 * Plans are prepared once per backend and kept (SPI_keepplan): the
 * worker and mana_ai_tick() refresh from a long-lived backend, where
 * re-preparing and re-planning every statement would cost more than a
 * quiet refresh itself.  Keyed by the statement's static string.  The plan cache
 * re-plans after DDL, a search_path change or a role change (row-level
 * security); every name in these statements is schema-qualified anyway.
 */
#define MAX_PLANS 32
static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			saved_plans[MAX_PLANS];
static int	n_saved_plans = 0;

static SPIPlanPtr
plan_for(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;

	for (int i = 0; i < n_saved_plans; i++)
		if (saved_plans[i].sql == sql)
			return saved_plans[i].plan;
	/*
	 * Generic plans from the start: every statement here has one shape
	 * whatever its parameters (one user, or arrays of keys), and custom
	 * planning would cost a long-lived backend its first refreshes.
	 */
	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "mana_ai refresh: could not prepare (SPI code %d): %s", SPI_result, sql);
	if (n_saved_plans < MAX_PLANS && SPI_keepplan(plan) == 0)
	{
		saved_plans[n_saved_plans].sql = sql;
		saved_plans[n_saved_plans].plan = plan;
		n_saved_plans++;
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

static Jsonb *
row_jsonb(SPITupleTable *t, uint64 row, int col)
{
	bool		isnull;
	Datum		d = tuple_datum(t, row, col, &isnull);

	return isnull ? NULL : DatumGetJsonbP(d);
}

static TimestampTz
row_timestamptz(SPITupleTable *t, uint64 row, int col)
{
	bool		isnull;

	return DatumGetTimestampTz(tuple_datum(t, row, col, &isnull));
}

/* Fold the record's whole history, read as its user: the answer to a late row. */
static LwwState *
replay_history(const KindDef *def, const char *user_id, const char *record_id,
			   MemoryContext cxt)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	LwwState   *state = lww_state_create(cxt, record_id);
	SPITupleTable *t;
	int			nest = mana_ai_enter_user_scope(user_id);

	args[0] = CStringGetTextDatum(def->table_name);
	args[1] = CStringGetTextDatum(record_id);
	args[2] = CStringGetTextDatum(user_id);
	run_or_fail(history_sql, 3, types, args, SPI_OK_SELECT);
	t = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		lww_fold_row(state, tuple_text(t, i, 1), row_jsonb(t, i, 2), row_jsonb(t, i, 3),
					 row_timestamptz(t, i, 4));
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freetuptable(t);
	mana_ai_leave_user_scope(nest);
	return state;
}

/*
 * Fold one record's new rows onto what is stored, and queue the writes.
 */
static void
refresh_record(Batch *b, RecordGroup *g, TimestampTz horizon,
			   RefreshCounts *counts, MemoryContext cxt)
{
	const KindDef *def = &kind_defs[g->kind];
	UserRows   *u = &b->users[g->user];
	RowRef	   *rows = u->refs;
	StoredSlot *stored = &b->stored[g->kind][g->slot];
	KindWrites *w = &b->writes[g->kind];
	char	   *record_id = rows[g->from].record_id;
	bool		has_snapshot = false;
	Jsonb	   *old_record = NULL;
	TimestampTz old_last = DT_NOBEGIN;
	TimestampTz first_at = rows[g->from].created_at;
	TimestampTz last_at = rows[g->to - 1].created_at;
	LwwState   *state;
	Jsonb	   *result;

	/* count and remember the rows whatever their fate */
	for (uint64 i = g->from; i < g->to; i++)
	{
		RowRef	   *r = &rows[i];

		if (lww_row_is_wellformed(r->op, r->data, r->stamps, r->created_at))
			counts->rows_applied++;
		else
			counts->skipped_rows++;
		if (r->created_at >= horizon)
		{
			datums_add(&w->applied_ids, r->id);
			datums_add(&w->applied_users, u->user_text);
			datums_add(&w->applied_at, TimestampTzGetDatum(r->created_at));
		}
	}

	if (stored->found)
	{
		if (stored->tombstoned)
			return;				/* a tombstone is terminal */
		old_record = stored->record;
		has_snapshot = old_record != NULL;
		if (has_snapshot)
			old_last = stored->last_applied_at;
	}

	if (has_snapshot && first_at <= old_last)
	{
		/* a row older than what the snapshot holds: replay this record */
		state = replay_history(def, u->user_id, record_id, cxt);
	}
	else
	{
		state = lww_state_create(cxt, record_id);
		if (has_snapshot)
			lww_state_load(state, old_record);
		for (uint64 i = g->from; i < g->to; i++)
			lww_fold_row(state, rows[i].op, rows[i].data, rows[i].stamps,
						 rows[i].created_at);
	}
	if (last_at < old_last)
		last_at = old_last;

	result = lww_state_result(state);
	if (result == NULL)
	{
		if (state->tombstoned)
		{
			datums_add(&w->tomb_users, u->user_text);
			datums_add(&w->tomb_ids, CStringGetTextDatum(record_id));
			if (has_snapshot)
			{
				datums_add(&w->delete_users, u->user_text);
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

	if (has_snapshot)
	{
		datums_add(&w->update_users, u->user_text);
		datums_add(&w->update_ids, CStringGetTextDatum(record_id));
		datums_add(&w->update_records, JsonbPGetDatum(result));
		datums_add(&w->update_last, TimestampTzGetDatum(last_at));
		counts->updated_snapshots++;
	}
	else
	{
		/* no snapshot and no tombstone: nobody else writes snapshots (lock) */
		datums_add(&w->insert_users, u->user_text);
		datums_add(&w->insert_ids, CStringGetTextDatum(record_id));
		datums_add(&w->insert_records, JsonbPGetDatum(result));
		datums_add(&w->insert_last, TimestampTzGetDatum(last_at));
		counts->new_snapshots++;
	}
}

/* Fold order: kind, record_id bytewise (COLLATE "C"), created_at, id. */
static int
rowref_cmp(const void *a, const void *b)
{
	const RowRef *x = a;
	const RowRef *y = b;
	int			c;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	c = strcmp(x->record_id, y->record_id);
	if (c != 0)
		return c;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return memcmp(DatumGetUUIDP(x->id), DatumGetUUIDP(y->id), UUID_LEN);
}

/*
 * Read one user's new rows under that user's scope, put them in fold
 * order and queue their records for the batch's stored-state load.
 */
static void
read_user(Batch *b, const char *user_id, TimestampTz since[NKINDS], bool any_applied)
{
	int			nest = mana_ai_enter_user_scope(user_id);
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[3];
	SPITupleTable *tuples;
	uint64		nrows;
	UserRows   *u;
	RowRef	   *refs;
	uint64		start = 0;

	args[0] = CStringGetTextDatum(user_id);
	args[1] = TimestampTzGetDatum(since[0]);
	args[2] = TimestampTzGetDatum(since[1]);
	run_or_fail(any_applied ? rows_unapplied_sql : rows_sql, 3, types, args, SPI_OK_SELECT);
	tuples = SPI_tuptable;
	nrows = SPI_processed;
	mana_ai_leave_user_scope(nest);
	if (nrows == 0)
	{
		SPI_freetuptable(tuples);
		return;
	}

	refs = palloc(sizeof(RowRef) * nrows);
	for (uint64 i = 0; i < nrows; i++)
	{
		Datum		values[7];
		bool		nulls[7];
		RowRef	   *r = &refs[i];

		heap_deform_tuple(tuples->vals[i], tuples->tupdesc, values, nulls);
		r->id = values[0];
		r->record_id = TextDatumGetCString(values[1]);
		r->op = TextDatumGetCString(values[2]);
		r->data = nulls[3] ? NULL : DatumGetJsonbP(values[3]);
		r->stamps = nulls[4] ? NULL : DatumGetJsonbP(values[4]);
		r->created_at = DatumGetTimestampTz(values[5]);
		r->kind = DatumGetBool(values[6]) ? 1 : 0;
	}
	qsort(refs, nrows, sizeof(RowRef), rowref_cmp);

	u = &b->users[b->nusers];
	u->user_id = pstrdup(user_id);
	u->user_text = args[0];
	u->tuples = tuples;
	u->refs = refs;
	b->nrows += nrows;

	for (uint64 i = 1; i <= nrows; i++)
	{
		if (i == nrows || refs[i].kind != refs[start].kind ||
			strcmp(refs[i].record_id, refs[start].record_id) != 0)
		{
			RecordGroup *g;
			int			kind = refs[start].kind;

			if (b->ngroups == b->groups_cap)
			{
				b->groups_cap = b->groups_cap ? b->groups_cap * 2 : 256;
				b->groups = b->groups ? repalloc(b->groups, sizeof(RecordGroup) * b->groups_cap)
					: palloc(sizeof(RecordGroup) * b->groups_cap);
			}
			g = &b->groups[b->ngroups++];
			g->user = b->nusers;
			g->kind = kind;
			g->from = start;
			g->to = i;
			g->slot = b->load_ids[kind].n;
			datums_add(&b->load_users[kind], u->user_text);
			datums_add(&b->load_ids[kind], CStringGetTextDatum(refs[start].record_id));
			start = i;
		}
		CHECK_FOR_INTERRUPTS();
	}
	b->nusers++;
}

/*
 * Load the stored snapshots and tombstones of every record the batch
 * touches; nothing to load for a kind that has neither (cold refresh).
 */
static void
load_stored(Batch *b, bool any_stored[NKINDS])
{
	for (int k = 0; k < NKINDS; k++)
	{
		Oid			types[2] = {TEXTARRAYOID, TEXTARRAYOID};
		Datum		args[2];
		SPITupleTable *t;
		int			nslots = b->load_ids[k].n;

		b->stored[k] = palloc0(sizeof(StoredSlot) * Max(nslots, 1));
		b->loaded[k] = NULL;
		if (nslots == 0 || !any_stored[k])
			continue;
		args[0] = text_array(&b->load_users[k]);
		args[1] = text_array(&b->load_ids[k]);
		run_or_fail(kind_defs[k].load_sql, 2, types, args, SPI_OK_SELECT);
		t = SPI_tuptable;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int64		n = DatumGetInt64(tuple_datum(t, i, 1, &isnull));
			StoredSlot *s;

			if (n < 1 || n > nslots)
				elog(ERROR, "mana_ai refresh: stored state for an unknown record (%lld)",
					 (long long) n);
			s = &b->stored[k][n - 1];
			s->found = true;
			s->record = row_jsonb(t, i, 2);
			if (s->record != NULL)
				s->last_applied_at = row_timestamptz(t, i, 3);
			s->tombstoned = DatumGetBool(tuple_datum(t, i, 4, &isnull));
		}
		b->loaded[k] = t;
	}
}

/* Write one batch's results, a few statements per kind. */
static void
flush_writes(Batch *b)
{
	for (int k = 0; k < NKINDS; k++)
	{
		const KindDef *def = &kind_defs[k];
		KindWrites *w = &b->writes[k];
		Datum		kind = CStringGetTextDatum(def->kind);

		if (w->insert_ids.n > 0)
		{
			Oid			types[4] = {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[4] = {text_array(&w->insert_users), text_array(&w->insert_ids),
				jsonb_array(&w->insert_records), timestamptz_array(&w->insert_last)};

			run_or_fail(def->insert_sql, 4, types, args, SPI_OK_INSERT);
		}
		if (w->update_ids.n > 0)
		{
			Oid			types[4] = {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[4] = {text_array(&w->update_users), text_array(&w->update_ids),
				jsonb_array(&w->update_records), timestamptz_array(&w->update_last)};

			run_or_fail(def->update_sql, 4, types, args, SPI_OK_UPDATE);
		}
		if (w->delete_ids.n > 0)
		{
			Oid			types[2] = {TEXTARRAYOID, TEXTARRAYOID};
			Datum		args[2] = {text_array(&w->delete_users), text_array(&w->delete_ids)};

			run_or_fail(def->delete_sql, 2, types, args, SPI_OK_DELETE);
		}
		if (w->tomb_ids.n > 0)
		{
			Oid			types[3] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
			Datum		args[3] = {kind, text_array(&w->tomb_users), text_array(&w->tomb_ids)};

			run_or_fail(add_tombstones_sql, 3, types, args, SPI_OK_INSERT);
		}
		if (w->applied_ids.n > 0)
		{
			Oid			types[4] = {TEXTOID, UUIDARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[4] = {kind, uuid_array(&w->applied_ids),
				text_array(&w->applied_users), timestamptz_array(&w->applied_at)};

			run_or_fail(add_applied_sql, 4, types, args, SPI_OK_INSERT);
		}
	}
}

/* Fold and write one batch of users, then free everything it held. */
static void
run_batch(Batch *b, TimestampTz horizon[NKINDS], bool any_stored[NKINDS],
		  RefreshCounts counts[NKINDS], MemoryContext cxt)
{
	load_stored(b, any_stored);
	for (int i = 0; i < b->ngroups; i++)
	{
		RecordGroup *g = &b->groups[i];

		refresh_record(b, g, horizon[g->kind], &counts[g->kind], cxt);
		CHECK_FOR_INTERRUPTS();
	}
	flush_writes(b);
	for (int k = 0; k < NKINDS; k++)
		if (b->loaded[k])
			SPI_freetuptable(b->loaded[k]);
	/* newest first: SPI keeps its tuple tables in a list, newest at the head */
	for (int i = b->nusers - 1; i >= 0; i--)
		SPI_freetuptable(b->users[i].tuples);
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
	run_or_fail("SELECT mana_ai.refresh_horizon()", 0, NULL, NULL, SPI_OK_SELECT);
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
	MemoryContext batch_cxt;
	MemoryContext old_cxt;
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
	Batch	   *b = NULL;

	memset(counts, 0, sizeof(RefreshCounts) * NKINDS);
	run_or_fail("SELECT pg_catalog.pg_advisory_xact_lock(" CppAsString2(REFRESH_LOCK_CLASS) ", 1),"
				" pg_catalog.pg_advisory_xact_lock(" CppAsString2(REFRESH_LOCK_CLASS) ", 2)",
				0, NULL, NULL, SPI_OK_SELECT);
	SPI_freetuptable(SPI_tuptable);

	run_or_fail("SELECT kind, horizon FROM mana_ai.snapshot_horizon FOR UPDATE",
				0, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *kind = tuple_text(SPI_tuptable, i, 1);

		for (int k = 0; k < NKINDS; k++)
			if (strcmp(kind, kind_defs[k].kind) == 0)
				since[k] = row_timestamptz(SPI_tuptable, i, 2);
	}
	SPI_freetuptable(SPI_tuptable);
	for (int k = 0; k < NKINDS; k++)
		if (since[k] == DT_NOEND)
			elog(ERROR, "mana_ai refresh: no horizon row for %s", kind_defs[k].kind);

	/* computed before any row is read: see next_horizon() */
	have_next = next_horizon(&next);
	for (int k = 0; k < NKINDS; k++)
		horizon[k] = (have_next && next > since[k]) ? next : since[k];

	/* what there is to exclude or load at all (a cold refresh has neither) */
	run_or_fail("SELECT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied),"
				" EXISTS (SELECT 1 FROM mana_ai.mission_snapshots)"
				" OR EXISTS (SELECT 1 FROM mana_ai.snapshot_tombstones WHERE kind = 'missions'),"
				" EXISTS (SELECT 1 FROM mana_ai.agent_snapshots)"
				" OR EXISTS (SELECT 1 FROM mana_ai.snapshot_tombstones WHERE kind = 'agents')",
				0, NULL, NULL, SPI_OK_SELECT);
	any_applied = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	for (int k = 0; k < NKINDS; k++)
		any_stored[k] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												   2 + k, &isnull));
	SPI_freetuptable(SPI_tuptable);

	types[0] = TIMESTAMPTZOID;
	args[0] = TimestampTzGetDatum(Min(since[0], since[1]));
	run_or_fail("SELECT u FROM mana_ai.snapshot_users_since(NULL, $1) AS u",
				1, types, args, SPI_OK_SELECT);
	users = SPI_tuptable;
	nusers = SPI_processed;

	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "mana_ai refresh batch",
									  ALLOCSET_DEFAULT_SIZES);
	old_cxt = MemoryContextSwitchTo(batch_cxt);
	for (uint64 n = 0; n < nusers; n++)
	{
		char	   *user_id;

		if (b != NULL && (b->nusers >= BATCH_MAX_USERS || b->nrows >= BATCH_MAX_ROWS))
		{
			run_batch(b, horizon, any_stored, counts, batch_cxt);
			MemoryContextReset(batch_cxt);
			b = NULL;
		}
		user_id = tuple_text(users, n, 1);
		if (user_id == NULL || user_id[0] == '\0')
			continue;			/* no scope can ever read such rows */
		if (b == NULL)
		{
			b = palloc0(sizeof(Batch));
			b->users = palloc(sizeof(UserRows) * BATCH_MAX_USERS);
		}
		read_user(b, user_id, since, any_applied);
		CHECK_FOR_INTERRUPTS();
	}
	if (b != NULL)
		run_batch(b, horizon, any_stored, counts, batch_cxt);
	MemoryContextSwitchTo(old_cxt);
	MemoryContextDelete(batch_cxt);
	SPI_freetuptable(users);

	if (horizon[0] > since[0] || horizon[1] > since[1])
	{
		DatumList	kinds = {0};
		DatumList	hs = {0};

		for (int k = 0; k < NKINDS; k++)
			if (horizon[k] > since[k])
			{
				datums_add(&kinds, CStringGetTextDatum(kind_defs[k].kind));
				datums_add(&hs, TimestampTzGetDatum(horizon[k]));
			}
		types[0] = TEXTARRAYOID;
		types[1] = TIMESTAMPTZARRAYOID;
		args[0] = text_array(&kinds);
		args[1] = timestamptz_array(&hs);
		/* rows remembered by this refresh are all at or above its horizon */
		if (any_applied)
			run_or_fail("DELETE FROM mana_ai.snapshot_applied a"
						" USING unnest($1::text[], $2::timestamptz[]) AS v(k, h)"
						" WHERE a.kind = v.k AND a.created_at < v.h",
						2, types, args, SPI_OK_DELETE);
		run_or_fail("UPDATE mana_ai.snapshot_horizon s SET horizon = v.h"
					" FROM unnest($1::text[], $2::timestamptz[]) AS v(k, h)"
					" WHERE s.kind = v.k",
					2, types, args, SPI_OK_UPDATE);
	}
}

void
mana_ai_refresh_snapshots_run(RefreshCounts *missions, RefreshCounts *agents)
{
	RefreshCounts counts[NKINDS];

	SPI_connect();
	refresh_all(counts);
	SPI_finish();

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
