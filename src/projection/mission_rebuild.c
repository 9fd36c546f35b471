/*
 * mission_rebuild.c: the fresh mission record the write-back appends to
 * (SPEC 11.2: rebuilt from the freshest state of the log in the
 * transaction of the insert), in memory bounded by the record's size.
 *
 * Owns two things.  The rebuild: the mission's stored snapshot
 * (mana_ai.mission_snapshots) plus only the log rows it does not reflect
 * yet (at or above the missions' refresh horizon and not remembered in
 * mana_ai.snapshot_applied), read in one statement so the snapshot, the
 * horizon and the applied ids are one consistent view even while a
 * refresh commits.  A row older than what the snapshot holds (a late
 * commit), or no snapshot at all, makes it fold the whole history
 * instead, as the refresh does: the same answer as mana_ai.replay_record,
 * always.  Both folds stream the rows through a cursor and compact the
 * fold state when it grows (its result reloaded), so a mission whose
 * every row carries every earlier iteration never costs the square of its
 * age.  And the trim of mana_ai.max_iterations_kept.
 * Must never read sync_changes outside the user's scope, never build SQL
 * from data, and never answer differently from a full replay.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "projection/lww.h"
#include "projection/mission_rebuild.h"
#include "projection/replay.h"
#include "projection/runner_fields.h"
#include "projection/sync_format.h"
#include "shared/spi_plans.h"

/* Rows fetched from the cursor at a time: each may be as large as the record. */
#define FETCH_ROWS 8
/* Compact the fold state once it holds this much over COMPACT_FACTOR records. */
#define COMPACT_SLACK ((Size) 4 * 1024 * 1024)
#define COMPACT_FACTOR 3

/*
 * The snapshot (part 0: its record as data, last_applied_at as created_at)
 * and the rows it does not reflect (part 1), in fold order.  One statement:
 * one MVCC snapshot for all three tables.
 */
#define DELTA_SQL(STAMPS, KEEP) \
	"SELECT 0 AS part, NULL::text AS op, s.record AS data, NULL::jsonb AS stamps," \
	"       s.last_applied_at AS created_at, NULL::uuid AS id" \
	"  FROM mana_ai.mission_snapshots s" \
	" WHERE s.user_id = $1 AND s.mission_id = $2" \
	" UNION ALL " \
	"SELECT 1, c.op, " RUNNER_FIELDS_SQL("c.data", KEEP) ", " RUNNER_FIELDS_SQL("c." STAMPS, KEEP) "," \
	"       c.created_at, c.id" \
	"  FROM public.sync_changes c, mana_ai.snapshot_horizon h" \
	" WHERE h.kind = 'missions'" \
	"   AND c.user_id = $1 AND c.app_id = 'ai' AND c.table_name = 'aiMissions'" \
	"   AND c.record_id = $2 AND c.created_at >= h.horizon" \
	"   AND NOT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied a" \
	"                    WHERE a.kind = 'missions' AND a.row_id = c.id)" \
	" ORDER BY 1, 5, 6"

#define HISTORY_SQL(STAMPS, KEEP) \
	"SELECT 1 AS part, op, " RUNNER_FIELDS_SQL("data", KEEP) ", " RUNNER_FIELDS_SQL(STAMPS, KEEP) "," \
	"       created_at, id FROM public.sync_changes" \
	" WHERE user_id = $1 AND app_id = 'ai' AND table_name = 'aiMissions' AND record_id = $2" \
	" ORDER BY created_at, id"

/* A fold that keeps its memory near the size of its result. */
typedef struct Fold
{
	MemoryContext cxt;			/* the state's; reset on compaction */
	MemoryContext rows_cxt;		/* one fetch's detoasted rows */
	LwwState   *state;
	const char *record_id;
	Size		compact_at;
} Fold;

static void
fold_start(Fold *f, MemoryContext parent, const char *record_id)
{
	f->cxt = AllocSetContextCreate(parent, "mana_ai rebuild", ALLOCSET_DEFAULT_SIZES);
	f->rows_cxt = AllocSetContextCreate(parent, "mana_ai rebuild rows", ALLOCSET_DEFAULT_SIZES);
	f->record_id = record_id;
	f->state = lww_state_create(f->cxt, record_id);
	f->compact_at = COMPACT_SLACK;
}

/* The state's result copied into cxt, or NULL. */
static Jsonb *
fold_result(Fold *f, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(f->cxt);
	Jsonb	   *res = lww_state_result(f->state);
	Jsonb	   *copy = NULL;

	if (res != NULL)
	{
		copy = MemoryContextAlloc(cxt, VARSIZE(res));
		memcpy(copy, res, VARSIZE(res));
	}
	MemoryContextSwitchTo(old);
	return copy;
}

/*
 * Start the state over from its own result: values replaced by later rows
 * are dropped.  The same rule the refresh's snapshot relies on (a state
 * loaded from a result folds later rows exactly as the state it came from).
 */
static void
fold_compact(Fold *f)
{
	Jsonb	   *res;
	Size		size;

	if (f->state->tombstoned || !f->state->started ||
		MemoryContextMemAllocated(f->cxt, true) < f->compact_at)
		return;
	res = fold_result(f, f->rows_cxt);
	MemoryContextReset(f->cxt);
	f->state = lww_state_create(f->cxt, f->record_id);
	lww_state_load(f->state, res);
	size = VARSIZE(res);
	f->compact_at = COMPACT_SLACK + (Size) COMPACT_FACTOR * size;
}

static void
fold_end(Fold *f)
{
	MemoryContextDelete(f->rows_cxt);
	MemoryContextDelete(f->cxt);
}

/*
 * Fold the rows of the kept plan sql.  With the snapshot statement, false
 * when it cannot answer (no snapshot, or a row older than the snapshot's
 * last applied row): the caller folds the whole history then.
 */
static bool
fold_rows(Fold *f, const char *sql, Datum *args, bool from_snapshot)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Portal		portal;
	bool		have_snapshot = false;
	TimestampTz last_applied = 0;
	bool		ok = true;

	portal = SPI_cursor_open(NULL, mana_ai_kept_plan(sql, 2, types, 0), args, NULL, true);
	for (;;)
	{
		uint64		n;

		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		n = SPI_processed;
		if (n == 0)
			break;
		for (uint64 i = 0; i < n && ok; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int32		part = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			MemoryContext old = MemoryContextSwitchTo(f->rows_cxt);
			Datum		d;
			Jsonb	   *data = NULL;
			Jsonb	   *stamps = NULL;
			TimestampTz at;

			d = SPI_getbinval(tup, desc, 3, &isnull);
			if (!isnull)
				data = DatumGetJsonbP(d);
			d = SPI_getbinval(tup, desc, 4, &isnull);
			if (!isnull)
				stamps = DatumGetJsonbP(d);
			at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
			if (part == 0)
			{
				have_snapshot = data != NULL;
				last_applied = at;
				if (have_snapshot)
					lww_state_load(f->state, data);
			}
			else if (from_snapshot && (!have_snapshot || at <= last_applied))
				ok = false;		/* no snapshot, or a late row: replay it all */
			else
				lww_fold_row(f->state, SPI_getvalue(tup, desc, 2), data, stamps, at);
			MemoryContextSwitchTo(old);
			MemoryContextReset(f->rows_cxt);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_freetuptable(SPI_tuptable);
		if (!ok)
			break;
		fold_compact(f);
	}
	SPI_cursor_close(portal);
	return ok && (!from_snapshot || have_snapshot);
}

Jsonb *
mana_ai_rebuild_mission(const char *user_id, const char *mission_id, bool full)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[2];
	int			nest = mana_ai_enter_user_scope(user_id);
	Fold		f;
	Jsonb	   *result;

	args[0] = CStringGetTextDatum(user_id);
	args[1] = CStringGetTextDatum(mission_id);
	mana_ai_spi_connect();
	fold_start(&f, caller, mission_id);
	if (full || !fold_rows(&f, SYNC_FORMAT_SQL(DELTA_SQL("field_timestamps", RUNNER_KEEP_SEED),
											   DELTA_SQL("field_meta", RUNNER_KEEP_CURRENT)), args, true))
	{
		fold_end(&f);
		fold_start(&f, caller, mission_id);
		(void) fold_rows(&f, SYNC_FORMAT_SQL(HISTORY_SQL("field_timestamps", RUNNER_KEEP_SEED),
											 HISTORY_SQL("field_meta", RUNNER_KEEP_CURRENT)), args, false);
	}
	result = fold_result(&f, caller);
	fold_end(&f);
	mana_ai_spi_finish();
	MemoryContextSwitchTo(caller);
	mana_ai_leave_user_scope(nest);
	return result;
}

/*
 * mana_ai.max_iterations_kept: of the iterations the write-back appends
 * to ($2 - 1 of them, the new one makes $2), the newest, plus every older
 * one with a step still planned.
 */
static const char *trim_sql =
	"SELECT jsonb_set($1, '{iterations}', coalesce(("
	"  SELECT jsonb_agg(a.e ORDER BY a.i)"
	"    FROM jsonb_array_elements($1 -> 'iterations') WITH ORDINALITY AS a(e, i)"
	"   WHERE a.i > jsonb_array_length($1 -> 'iterations') - ($2 - 1)"
	"      OR (jsonb_typeof(a.e -> 'plan') = 'array'"
	"          AND EXISTS (SELECT 1 FROM jsonb_array_elements(a.e -> 'plan') p"
	"                       WHERE jsonb_typeof(p) = 'object' AND p ->> 'status' = 'planned'))),"
	"  '[]'::jsonb))";

Jsonb *
mana_ai_trim_iterations(Jsonb *record)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[2] = {JSONBOID, INT4OID};
	Datum		values[2];
	JsonbValue	v;
	JsonbValue *its;
	bool		isnull;
	Jsonb	   *trimmed = record;

	if (mana_ai_max_iterations_kept <= 0 || record == NULL)
		return record;
	its = getKeyJsonValueFromContainer(&record->root, "iterations", strlen("iterations"), &v);
	if (its == NULL || its->type != jbvBinary || !JsonContainerIsArray(its->val.binary.data) ||
		JsonContainerSize(its->val.binary.data) < (uint32) mana_ai_max_iterations_kept)
		return record;			/* nothing to drop */
	values[0] = JsonbPGetDatum(record);
	values[1] = Int32GetDatum(mana_ai_max_iterations_kept);
	mana_ai_spi_connect();
	mana_ai_run_kept(trim_sql, 2, types, 0, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);

			trimmed = DatumGetJsonbPCopy(d);
			MemoryContextSwitchTo(spi);
		}
	}
	mana_ai_spi_finish();
	MemoryContextSwitchTo(caller);
	return trimmed;
}

PG_FUNCTION_INFO_V1(mana_ai_rebuild_mission_sql);

/*
 * (user_id text, mission_id text, full bool) → jsonb, for tests and
 * bench/writeback, which declare it themselves: not part of the
 * extension's SQL surface.  full: fold the whole history.
 */
Datum
mana_ai_rebuild_mission_sql(PG_FUNCTION_ARGS)
{
	Jsonb	   *res;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	res = mana_ai_rebuild_mission(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  text_to_cstring(PG_GETARG_TEXT_PP(1)),
								  !PG_ARGISNULL(2) && PG_GETARG_BOOL(2));
	if (res == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(res);
}
