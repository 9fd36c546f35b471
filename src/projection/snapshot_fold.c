/*
 * snapshot_fold.c: the refresh's batch fold (SPEC 2, 3).
 *
 * Owns one batch of users and the memory it reuses: read the batch's new
 * rows in one statement (mana_ai.snapshot_rows_of, SECURITY DEFINER) and
 * sort them into users and records, load what is stored for those
 * records, fold the new rows onto it (or replay a record whose row came
 * late, under that user's scope), and queue and flush the writes, a few
 * statements per kind.  Must never attribute a row to any user but the
 * one the row names, never abort on a malformed row (it is counted and
 * skipped), and never rewrite a snapshot that did not change.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "projection/lww.h"
#include "projection/replay.h"
#include "projection/snapshot_internal.h"

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
	snap_run(snap_history_sql(), 3, types, args, SPI_OK_SELECT);
	t = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		lww_fold_row(state, snap_tuple_text(t, i, 1), snap_row_jsonb(t, i, 2), snap_row_jsonb(t, i, 3),
					 snap_row_timestamptz(t, i, 4));
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freetuptable(t);
	mana_ai_leave_user_scope(nest);
	return state;
}

/* The state's result, built in the state's context, copied into cxt. */
static Jsonb *
result_copy(LwwState *state, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(state->cxt);
	Jsonb	   *result = lww_state_result(state);
	Jsonb	   *copy = NULL;

	if (result != NULL)
	{
		copy = MemoryContextAlloc(cxt, VARSIZE(result));
		memcpy(copy, result, VARSIZE(result));
	}
	MemoryContextSwitchTo(old);
	return copy;
}

/*
 * Fold one record's new rows onto what is stored, and queue the writes.
 */
static void
refresh_record(Batch *b, RecordGroup *g, TimestampTz horizon, RefreshCounts *counts)
{
	const KindDef *def = &snap_kind_defs[g->kind];
	UserRows   *u = &b->users[g->user];
	RowRef	   *rows = u->refs;
	StoredSlot *stored = &b->stored[g->kind][g->slot];
	KindWrites *w = &b->writes[g->kind];
	char	   *record_id = rows[g->from].record_id;
	Datum		record_text = b->load_ids[g->kind].vals[g->slot];
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
			snap_datums_add(&w->applied_ids, r->id);
			snap_datums_add(&w->applied_users, u->user_text);
			snap_datums_add(&w->applied_at, TimestampTzGetDatum(r->created_at));
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

	/* the fold's memory is the record's: reset as soon as the result is copied */
	if (has_snapshot && first_at <= old_last)
	{
		/* a row older than what the snapshot holds: replay this record */
		state = replay_history(def, u->user_id, record_id, b->record_cxt);
	}
	else
	{
		state = lww_state_create(b->record_cxt, record_id);
		if (has_snapshot)
			lww_state_load(state, old_record);
		for (uint64 i = g->from; i < g->to; i++)
			lww_fold_row(state, rows[i].op, rows[i].data, rows[i].stamps,
						 rows[i].created_at);
	}
	if (last_at < old_last)
		last_at = old_last;

	result = result_copy(state, b->batch_cxt);
	MemoryContextReset(b->record_cxt);
	if (result == NULL)
	{
		if (state->tombstoned)
		{
			snap_datums_add(&w->tomb_users, u->user_text);
			snap_datums_add(&w->tomb_ids, record_text);
			if (has_snapshot)
			{
				snap_datums_add(&w->delete_users, u->user_text);
				snap_datums_add(&w->delete_ids, record_text);
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
		snap_datums_add(&w->update_users, u->user_text);
		snap_datums_add(&w->update_ids, record_text);
		snap_datums_add(&w->update_records, JsonbPGetDatum(result));
		snap_datums_add(&w->update_last, TimestampTzGetDatum(last_at));
		counts->updated_snapshots++;
	}
	else
	{
		/* no snapshot and no tombstone: nobody else writes snapshots (lock) */
		snap_datums_add(&w->insert_users, u->user_text);
		snap_datums_add(&w->insert_ids, record_text);
		snap_datums_add(&w->insert_records, JsonbPGetDatum(result));
		snap_datums_add(&w->insert_last, TimestampTzGetDatum(last_at));
		counts->new_snapshots++;
	}
}

/* Fold order: user, kind, record_id bytewise (COLLATE "C"), created_at, id. */
static int
rowref_cmp(const void *a, const void *b)
{
	const RowRef *x = *(RowRef *const *) a;
	const RowRef *y = *(RowRef *const *) b;
	int			c;

	c = strcmp(x->user_id, y->user_id);
	if (c != 0)
		return c;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	c = strcmp(x->record_id, y->record_id);
	if (c != 0)
		return c;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return memcmp(DatumGetUUIDP(x->id), DatumGetUUIDP(y->id), UUID_LEN);
}

/* Grow *arr (allocated in cxt) to hold at least need elements of size. */
static void *
ensure_capacity(void *arr, uint64 *cap, uint64 need, Size size, MemoryContext cxt)
{
	if (need <= *cap)
		return arr;
	*cap = Max(need, *cap * 2);
	return arr ? repalloc_huge(arr, size * *cap) : MemoryContextAllocHuge(cxt, size * *cap);
}

/* One user's rows (a sorted run of the batch's): queue its records for the stored-state load. */
static void
add_user(Batch *b, RowRef *refs, uint64 nrows)
{
	uint64		cap = b->users_cap;
	UserRows   *u;
	uint64		start = 0;

	b->users = ensure_capacity(b->users, &cap, b->nusers + 1, sizeof(UserRows), b->keep_cxt);
	b->users_cap = cap;
	u = &b->users[b->nusers];
	u->user_id = refs[0].user_id;
	u->user_text = CStringGetTextDatum(u->user_id);
	u->refs = refs;

	for (uint64 i = 1; i <= nrows; i++)
	{
		if (i == nrows || refs[i].kind != refs[start].kind ||
			strcmp(refs[i].record_id, refs[start].record_id) != 0)
		{
			RecordGroup *g;
			int			kind = refs[start].kind;

			cap = b->groups_cap;
			b->groups = ensure_capacity(b->groups, &cap, b->ngroups + 1, sizeof(RecordGroup),
										b->keep_cxt);
			b->groups_cap = cap;
			g = &b->groups[b->ngroups++];
			g->user = b->nusers;
			g->kind = kind;
			g->from = start;
			g->to = i;
			g->slot = b->load_ids[kind].n;
			snap_datums_add(&b->load_users[kind], u->user_text);
			snap_datums_add(&b->load_ids[kind], CStringGetTextDatum(refs[start].record_id));
			start = i;
		}
	}
	b->nusers++;
}

/* Take the rows of t apart into the batch's refs (the columns of snap_rows_sql). */
static void
add_rows(Batch *b, SPITupleTable *t, uint64 n)
{
	uint64		cap = b->ntuples_cap;
	RowRef	   *refs;

	b->tuples = ensure_capacity(b->tuples, &cap, b->ntuples + 1, sizeof(SPITupleTable *),
								b->keep_cxt);
	b->ntuples_cap = cap;
	b->tuples[b->ntuples++] = t;
	b->refs = ensure_capacity(b->refs, &b->refs_cap, b->nrows + n, sizeof(RowRef), b->keep_cxt);
	refs = &b->refs[b->nrows];
	for (uint64 i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8];
		RowRef	   *r = &refs[i];

		heap_deform_tuple(t->vals[i], t->tupdesc, values, nulls);
		r->id = values[0];
		r->user_id = TextDatumGetCString(values[1]);
		r->record_id = TextDatumGetCString(values[2]);
		r->op = TextDatumGetCString(values[3]);
		r->data = nulls[4] ? NULL : DatumGetJsonbP(values[4]);
		r->stamps = nulls[5] ? NULL : DatumGetJsonbP(values[5]);
		r->created_at = DatumGetTimestampTz(values[6]);
		r->kind = DatumGetBool(values[7]) ? 1 : 0;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	b->nrows += n;
}

/*
 * Put the batch's refs in fold order: sort pointers (cheaper to swap than
 * the refs), then lay the refs out in that order once.
 */
static void
sort_rows(Batch *b)
{
	RowRef	  **order;
	RowRef	   *sorted;

	if (b->nrows < 2)
		return;
	order = palloc(sizeof(RowRef *) * b->nrows);
	for (uint64 i = 0; i < b->nrows; i++)
		order[i] = &b->refs[i];
	qsort(order, b->nrows, sizeof(RowRef *), rowref_cmp);
	b->sorted = ensure_capacity(b->sorted, &b->sorted_cap, b->nrows, sizeof(RowRef), b->keep_cxt);
	sorted = b->sorted;
	for (uint64 i = 0; i < b->nrows; i++)
		sorted[i] = *order[i];
	/* the two arrays swap roles: the next batch fills the other one */
	b->sorted = b->refs;
	b->refs = sorted;
	{
		uint64		cap = b->sorted_cap;

		b->sorted_cap = b->refs_cap;
		b->refs_cap = cap;
	}
	pfree(order);
}

/*
 * Read the new rows of the batch's users, put them in fold order and
 * queue their records for the stored-state load.  batched: in one
 * statement through mana_ai.snapshot_rows_of, each row's user being the
 * user_id the row itself carries; otherwise (a catalog older than 0.2.0,
 * before ALTER EXTENSION UPDATE) one statement per user under that
 * user's scope.
 */
void
snap_read_batch(Batch *b, TimestampTz since[NKINDS], bool any_applied, bool batched)
{
	MemoryContext old = MemoryContextSwitchTo(b->batch_cxt);
	Oid			types[3] = {TEXTARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[3];
	uint64		start = 0;

	args[1] = TimestampTzGetDatum(since[0]);
	args[2] = TimestampTzGetDatum(since[1]);
	if (batched)
	{
		args[0] = snap_text_array(&b->user_ids);
		snap_run(any_applied ? snap_rows_unapplied_sql : snap_rows_sql, 3, types, args,
				 SPI_OK_SELECT);
		add_rows(b, SPI_tuptable, SPI_processed);
	}
	else
	{
		types[0] = TEXTOID;
		for (int i = 0; i < b->user_ids.n; i++)
		{
			char	   *user_id = TextDatumGetCString(b->user_ids.vals[i]);
			int			nest = mana_ai_enter_user_scope(user_id);

			args[0] = b->user_ids.vals[i];
			snap_run(snap_user_rows_sql(any_applied), 3, types,
					 args, SPI_OK_SELECT);
			mana_ai_leave_user_scope(nest);
			add_rows(b, SPI_tuptable, SPI_processed);
			CHECK_FOR_INTERRUPTS();
		}
	}
	sort_rows(b);

	for (uint64 i = 1; i <= b->nrows; i++)
	{
		if (i == b->nrows || strcmp(b->refs[i].user_id, b->refs[start].user_id) != 0)
		{
			add_user(b, &b->refs[start], i - start);
			start = i;
			CHECK_FOR_INTERRUPTS();
		}
	}
	MemoryContextSwitchTo(old);
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
		args[0] = snap_text_array(&b->load_users[k]);
		args[1] = snap_text_array(&b->load_ids[k]);
		snap_run(snap_kind_defs[k].load_sql, 2, types, args, SPI_OK_SELECT);
		t = SPI_tuptable;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int64		n = DatumGetInt64(snap_tuple_datum(t, i, 1, &isnull));
			StoredSlot *s;

			if (n < 1 || n > nslots)
				elog(ERROR, "mana_ai refresh: stored state for an unknown record (%lld)",
					 (long long) n);
			s = &b->stored[k][n - 1];
			s->found = true;
			s->record = snap_row_jsonb(t, i, 2);
			if (s->record != NULL)
				s->last_applied_at = snap_row_timestamptz(t, i, 3);
			s->tombstoned = DatumGetBool(snap_tuple_datum(t, i, 4, &isnull));
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
		const KindDef *def = &snap_kind_defs[k];
		KindWrites *w = &b->writes[k];
		Datum		kind = CStringGetTextDatum(def->kind);

		if (w->insert_ids.n > 0)
		{
			Oid			types[4] = {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[4] = {snap_text_array(&w->insert_users), snap_text_array(&w->insert_ids),
				snap_jsonb_array(&w->insert_records), snap_timestamptz_array(&w->insert_last)};

			snap_run(def->insert_sql, 4, types, args, SPI_OK_INSERT);
		}
		if (w->update_ids.n > 0)
		{
			Oid			types[4] = {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[4] = {snap_text_array(&w->update_users), snap_text_array(&w->update_ids),
				snap_jsonb_array(&w->update_records), snap_timestamptz_array(&w->update_last)};

			snap_run(def->update_sql, 4, types, args, SPI_OK_UPDATE);
		}
		if (w->delete_ids.n > 0)
		{
			Oid			types[2] = {TEXTARRAYOID, TEXTARRAYOID};
			Datum		args[2] = {snap_text_array(&w->delete_users), snap_text_array(&w->delete_ids)};

			snap_run(def->delete_sql, 2, types, args, SPI_OK_DELETE);
		}
		if (w->tomb_ids.n > 0)
		{
			Oid			types[3] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
			Datum		args[3] = {kind, snap_text_array(&w->tomb_users), snap_text_array(&w->tomb_ids)};

			snap_run(snap_add_tombstones_sql, 3, types, args, SPI_OK_INSERT);
		}
		if (w->applied_ids.n > 0)
		{
			Oid			types[4] = {TEXTOID, UUIDARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[4] = {kind, snap_uuid_array(&w->applied_ids),
				snap_text_array(&w->applied_users), snap_timestamptz_array(&w->applied_at)};

			snap_run(snap_add_applied_sql, 4, types, args, SPI_OK_INSERT);
		}
	}
}

/* Fold and write one batch of users. */
void
snap_run_batch(Batch *b, TimestampTz horizon[NKINDS], bool any_stored[NKINDS],
			   RefreshCounts counts[NKINDS])
{
	MemoryContext old = MemoryContextSwitchTo(b->batch_cxt);

	load_stored(b, any_stored);
	for (int i = 0; i < b->ngroups; i++)
	{
		RecordGroup *g = &b->groups[i];

		refresh_record(b, g, horizon[g->kind], &counts[g->kind]);
		CHECK_FOR_INTERRUPTS();
	}
	flush_writes(b);
	MemoryContextSwitchTo(old);
}

/* Every list of the batch, to point them at keep_cxt or empty them. */
static void
batch_lists(Batch *b, void (*fn) (DatumList *l, MemoryContext cxt))
{
	fn(&b->user_ids, b->keep_cxt);
	for (int k = 0; k < NKINDS; k++)
	{
		DatumList  *w = (DatumList *) &b->writes[k];

		StaticAssertStmt(sizeof(KindWrites) % sizeof(DatumList) == 0,
						 "KindWrites holds DatumLists only");
		fn(&b->load_users[k], b->keep_cxt);
		fn(&b->load_ids[k], b->keep_cxt);
		for (size_t i = 0; i < sizeof(KindWrites) / sizeof(DatumList); i++)
			fn(&w[i], b->keep_cxt);
	}
}

static void
list_keep_in(DatumList *l, MemoryContext cxt)
{
	l->cxt = cxt;
}

static void
list_empty(DatumList *l, MemoryContext cxt)
{
	l->n = 0;
}

/*
 * A batch for one refresh, in the current memory context.  batch_cxt's
 * and record_cxt's first blocks are sized to what one batch and one
 * record usually need, so a reset keeps them.
 */
Batch *
snap_batch_create(void)
{
	Batch	   *b = palloc0(sizeof(Batch));

	b->keep_cxt = AllocSetContextCreate(CurrentMemoryContext, "mana_ai refresh arrays",
										ALLOCSET_DEFAULT_SIZES);
	b->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "mana_ai refresh batch",
										 4 * 1024 * 1024, 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
	b->record_cxt = AllocSetContextCreate(CurrentMemoryContext, "mana_ai refresh record",
										  64 * 1024, 64 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
	batch_lists(b, list_keep_in);
	return b;
}

void
snap_batch_add_user(Batch *b, const char *user_id)
{
	MemoryContext old = MemoryContextSwitchTo(b->batch_cxt);

	snap_datums_add(&b->user_ids, CStringGetTextDatum(user_id));
	MemoryContextSwitchTo(old);
}

/* Forget one batch, keeping the arrays and the first blocks for the next. */
void
snap_batch_clear(Batch *b)
{
	for (int k = 0; k < NKINDS; k++)
	{
		if (b->loaded[k])
			SPI_freetuptable(b->loaded[k]);
		b->loaded[k] = NULL;
		b->stored[k] = NULL;
	}
	/* newest first: SPI keeps its tuple tables in a list, newest at the head */
	for (int i = b->ntuples - 1; i >= 0; i--)
		SPI_freetuptable(b->tuples[i]);
	b->ntuples = 0;
	batch_lists(b, list_empty);
	b->nusers = 0;
	b->nrows = 0;
	b->ngroups = 0;
	MemoryContextReset(b->batch_cxt);
}

void
snap_batch_free(Batch *b)
{
	snap_batch_clear(b);
	MemoryContextDelete(b->record_cxt);
	MemoryContextDelete(b->batch_cxt);
	MemoryContextDelete(b->keep_cxt);
	pfree(b);
}
