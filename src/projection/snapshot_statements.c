/*
 * snapshot_statements.c: every statement of the snapshot refresh and
 * the arrays its batched statements take.
 *
 * Owns the SQL text (one set of statements per kind: missions, agents),
 * the growable Datum lists that become text[], jsonb[], timestamptz[] and
 * uuid[] arguments, and reading columns out of the result tuples.  Plans
 * are kept for the life of the backend (spi_plans.c).  Must never build
 * SQL from data: values travel as parameters, whole batches as arrays.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "projection/runner_fields.h"
#include "projection/snapshot_internal.h"
#include "projection/sync_format.h"
#include "shared/spi_plans.h"

/* snap_kind_defs[0] is missions, [1] agents: the order of snap_rows_sql's is_agent. */
const KindDef snap_kind_defs[NKINDS] = {
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
 * The new rows of a batch of users ($1), both kinds ($2 missions' horizon,
 * $3 agents'), through the SECURITY DEFINER mana_ai.snapshot_rows_of (the
 * refresh's one cross-user read of rows, see there); or, while the
 * catalog is older than 0.2.0, of one user ($1) under that user's scope.
 * Both give the same columns.  Unordered: snap_read_batch() sorts them by
 * user, kind, record and LWW order on pointers, cheaper than a sort node
 * copying every wide row.  The variants with the anti-join are used only
 * while snapshot_applied holds ids (rows applied inside the window);
 * otherwise they have nothing to exclude.
 */
#define ROWS_COLUMNS \
	"SELECT r.id, r.user_id, r.record_id, r.op, r.data, r.field_timestamps, r.created_at, r.is_agent"
#define ROWS_OF_SELECT ROWS_COLUMNS \
	"  FROM mana_ai.snapshot_rows_of($1, $2, $3) AS r"
/* STAMPS: the stamps column of the format (sync_format.c), named field_timestamps here */
#define USER_ROWS_SELECT(STAMPS, KEEP) ROWS_COLUMNS \
	"  FROM (SELECT s.id, s.user_id, s.record_id, s.op, " RUNNER_FIELDS_SQL("s.data", KEEP) " AS data," \
	"               " RUNNER_FIELDS_SQL("s." STAMPS, KEEP) " AS field_timestamps," \
	"               s.created_at, s.table_name = 'agents' AS is_agent" \
	"          FROM public.sync_changes s" \
	"         WHERE s.user_id = $1 AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents')" \
	"           AND s.created_at >= LEAST($2, $3)" \
	"           AND s.created_at >= CASE s.table_name WHEN 'agents' THEN $3 ELSE $2 END) AS r"
#define NOT_APPLIED \
	" WHERE NOT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied a" \
	"                    WHERE a.kind = CASE WHEN r.is_agent THEN 'agents' ELSE 'missions' END" \
	"                      AND a.row_id = r.id)"

/* snapshot_rows_of picks the format's column itself (10_projections.sql) */
const char *const snap_rows_sql = ROWS_OF_SELECT;
const char *const snap_rows_unapplied_sql = ROWS_OF_SELECT NOT_APPLIED;

/* One text per format, so each keeps its own plan (spi_plans.c). */
const char *
snap_user_rows_sql(bool unapplied)
{
	if (unapplied)
		return SYNC_FORMAT_SQL(USER_ROWS_SELECT("field_timestamps", RUNNER_KEEP_SEED) NOT_APPLIED,
							   USER_ROWS_SELECT("field_meta", RUNNER_KEEP_CURRENT) NOT_APPLIED);
	return SYNC_FORMAT_SQL(USER_ROWS_SELECT("field_timestamps", RUNNER_KEEP_SEED),
						   USER_ROWS_SELECT("field_meta", RUNNER_KEEP_CURRENT));
}

bool
snap_rows_of_installed(void)
{
	Oid			types[3] = {TEXTARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};

	return OidIsValid(LookupFuncName(list_make2(makeString("mana_ai"),
												makeString("snapshot_rows_of")),
									 3, types, true));
}

#define HISTORY_SQL(STAMPS, KEEP) \
	"SELECT op, " RUNNER_FIELDS_SQL("data", KEEP) ", " RUNNER_FIELDS_SQL(STAMPS, KEEP) ", created_at" \
	"  FROM public.sync_changes" \
	" WHERE table_name = $1 AND record_id = $2 AND user_id = $3 AND app_id = 'ai'" \
	" ORDER BY created_at, id"

const char *
snap_history_sql(void)
{
	return SYNC_FORMAT_SQL(HISTORY_SQL("field_timestamps", RUNNER_KEEP_SEED), HISTORY_SQL("field_meta", RUNNER_KEEP_CURRENT));
}

const char *const snap_add_tombstones_sql =
	"INSERT INTO mana_ai.snapshot_tombstones (kind, user_id, record_id)"
	" SELECT $1, u.u, u.r FROM unnest($2::text[], $3::text[]) AS u(u, r)"
	" ON CONFLICT DO NOTHING";

const char *const snap_add_applied_sql =
	"INSERT INTO mana_ai.snapshot_applied (kind, row_id, user_id, created_at)"
	" SELECT $1, u.i, u.u, u.t FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) AS u(i, u, t)"
	" ON CONFLICT DO NOTHING";

/* The driver's statements, in the order refresh_all runs them. */
/* one refresh at a time: row locks only mana_ai's roles can take (snapshot_refresh.c) */
const char *const snap_lock_sql =
	"SELECT kind FROM mana_ai.snapshot_horizon ORDER BY kind DESC FOR UPDATE";

const char *const snap_horizons_sql =
	"SELECT kind, horizon FROM mana_ai.snapshot_horizon FOR UPDATE";

const char *const snap_next_horizon_sql = "SELECT mana_ai.refresh_horizon()";

/* what there is to exclude or load at all (a cold refresh has neither) */
const char *const snap_anything_stored_sql =
	"SELECT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied),"
	" EXISTS (SELECT 1 FROM mana_ai.mission_snapshots)"
	" OR EXISTS (SELECT 1 FROM mana_ai.snapshot_tombstones WHERE kind = 'missions'),"
	" EXISTS (SELECT 1 FROM mana_ai.agent_snapshots)"
	" OR EXISTS (SELECT 1 FROM mana_ai.snapshot_tombstones WHERE kind = 'agents')";

/* the one cross-user step: user ids only (SECURITY DEFINER) */
const char *const snap_users_since_sql =
	"SELECT u FROM mana_ai.snapshot_users_since(NULL, $1) AS u";

/* rows remembered by this refresh are all at or above its horizon */
const char *const snap_forget_applied_sql =
	"DELETE FROM mana_ai.snapshot_applied a"
	" USING unnest($1::text[], $2::timestamptz[]) AS v(k, h)"
	" WHERE a.kind = v.k AND a.created_at < v.h";

const char *const snap_move_horizon_sql =
	"UPDATE mana_ai.snapshot_horizon s SET horizon = v.h"
	" FROM unnest($1::text[], $2::timestamptz[]) AS v(k, h)"
	" WHERE s.kind = v.k";

/*
 * Run one of the statements above.  Generic plans from the start: every
 * statement here has one shape whatever its parameters (one user, or
 * arrays of keys), and custom planning would cost a long-lived backend
 * its first refreshes.  Every name in them is schema-qualified.
 */
void
snap_run(const char *sql, int nargs, Oid *types, Datum *args, int expected)
{
	mana_ai_run_kept(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN, args, NULL, expected);
}

void
snap_datums_add(DatumList *l, Datum d)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->vals = l->vals ? repalloc(l->vals, sizeof(Datum) * l->cap)
			: MemoryContextAlloc(l->cxt ? l->cxt : CurrentMemoryContext, sizeof(Datum) * l->cap);
	}
	l->vals[l->n++] = d;
}

Datum
snap_text_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, TEXTOID, -1, false, TYPALIGN_INT));
}

Datum
snap_jsonb_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, JSONBOID, -1, false, TYPALIGN_INT));
}

Datum
snap_timestamptz_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, TIMESTAMPTZOID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum
snap_uuid_array(DatumList *l)
{
	return PointerGetDatum(construct_array(l->vals, l->n, UUIDOID, UUID_LEN,
										   false, TYPALIGN_CHAR));
}

char *
snap_tuple_text(SPITupleTable *t, uint64 row, int col)
{
	return SPI_getvalue(t->vals[row], t->tupdesc, col);
}

Datum
snap_tuple_datum(SPITupleTable *t, uint64 row, int col, bool *isnull)
{
	return SPI_getbinval(t->vals[row], t->tupdesc, col, isnull);
}

Jsonb *
snap_row_jsonb(SPITupleTable *t, uint64 row, int col)
{
	bool		isnull;
	Datum		d = snap_tuple_datum(t, row, col, &isnull);

	return isnull ? NULL : DatumGetJsonbP(d);
}

TimestampTz
snap_row_timestamptz(SPITupleTable *t, uint64 row, int col)
{
	bool		isnull;

	return DatumGetTimestampTz(snap_tuple_datum(t, row, col, &isnull));
}
