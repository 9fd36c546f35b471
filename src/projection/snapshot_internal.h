/*
 * snapshot_internal.h: what the files of the snapshot refresh share
 * (snapshot_refresh.c, snapshot_fold.c, snapshot_statements.c).  Not for
 * other modules: they use snapshot.h.
 */
#ifndef MANA_AI_SNAPSHOT_INTERNAL_H
#define MANA_AI_SNAPSHOT_INTERNAL_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "projection/snapshot.h"

/*
 * A batch: the users whose new rows are read in one statement (through
 * mana_ai.snapshot_rows_of) before their stored state is loaded and their
 * writes are flushed, all in a few statements.  Sized by rows, so a cold
 * refresh of a big log keeps its memory flat: the next batch takes fewer
 * users when one returned more than BATCH_MAX_ROWS rows, more (up to
 * BATCH_MAX_USERS) when it returned fewer than half.
 */
#define BATCH_START_USERS 100
#define BATCH_MAX_USERS 1000
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

/* snap_kind_defs[0] is missions, [1] agents: the order of rows_sql's is_agent. */
extern const KindDef snap_kind_defs[NKINDS];

/* Growable parallel arrays of Datums for one batched statement. */
typedef struct DatumList
{
	Datum	   *vals;
	int			n;
	int			cap;
	MemoryContext cxt;			/* where vals grows; NULL: the current context */
} DatumList;

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
	char	   *user_id;
	int			kind;			/* index into kind_defs */
	char	   *record_id;
	TimestampTz created_at;
	Datum		id;				/* uuid, points into the tuple */
	char	   *op;
	Jsonb	   *data;			/* NULL: SQL NULL */
	Jsonb	   *stamps;
} RowRef;

/* One user's new rows (a slice of Batch.refs), in fold order. */
typedef struct UserRows
{
	char	   *user_id;
	Datum		user_text;
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

/*
 * The batch and what it keeps from one batch to the next: its arrays keep
 * their capacity (allocated in keep_cxt), everything else of one batch
 * lives in batch_cxt (reset after each batch, its large first block kept)
 * and one record's fold in record_cxt (reset after each record), so a
 * long refresh reuses the same memory instead of handing it back to the
 * operating system and faulting it in again.
 */
typedef struct Batch
{
	MemoryContext keep_cxt;
	MemoryContext batch_cxt;
	MemoryContext record_cxt;
	DatumList	user_ids;		/* the users to read, text */
	SPITupleTable **tuples;		/* the batch's rows: what refs point into */
	int			ntuples;
	uint64		ntuples_cap;
	RowRef	   *refs;
	uint64		refs_cap;
	RowRef	   *sorted;			/* sort_rows()'s second array */
	uint64		sorted_cap;
	UserRows   *users;
	int			nusers;
	int			users_cap;
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

/* snapshot_statements.c: the statements (see there for what each does) */
extern const char *const snap_rows_sql;
extern const char *const snap_rows_unapplied_sql;
/* the format's text (sync_format.c): one user's rows, a record's history */
extern const char *snap_user_rows_sql(bool unapplied);
extern const char *snap_history_sql(void);
extern const char *const snap_add_tombstones_sql;
extern const char *const snap_add_applied_sql;
extern const char *const snap_lock_sql;
extern const char *const snap_horizons_sql;
extern const char *const snap_next_horizon_sql;
extern const char *const snap_anything_stored_sql;
extern const char *const snap_users_since_sql;
extern const char *const snap_forget_applied_sql;
extern const char *const snap_move_horizon_sql;

/* Whether the catalog has mana_ai.snapshot_rows_of (0.2.0 on). */
extern bool snap_rows_of_installed(void);

/* Run one of them with its kept plan; ERROR unless SPI answers expected. */
extern void snap_run(const char *sql, int nargs, Oid *types, Datum *args, int expected);

/* A DatumList and the array argument it becomes. */
extern void snap_datums_add(DatumList *l, Datum d);
extern Datum snap_text_array(DatumList *l);
extern Datum snap_jsonb_array(DatumList *l);
extern Datum snap_timestamptz_array(DatumList *l);
extern Datum snap_uuid_array(DatumList *l);

/* Column col (1-based) of row of a result; NULL/0 for SQL NULL. */
extern char *snap_tuple_text(SPITupleTable *t, uint64 row, int col);
extern Datum snap_tuple_datum(SPITupleTable *t, uint64 row, int col, bool *isnull);
extern Jsonb *snap_row_jsonb(SPITupleTable *t, uint64 row, int col);
extern TimestampTz snap_row_timestamptz(SPITupleTable *t, uint64 row, int col);

/* snapshot_fold.c: the batch fold */
extern Batch *snap_batch_create(void);
extern void snap_batch_add_user(Batch *b, const char *user_id);
extern void snap_read_batch(Batch *b, TimestampTz since[NKINDS], bool any_applied,
							bool batched);
extern void snap_run_batch(Batch *b, TimestampTz horizon[NKINDS], bool any_stored[NKINDS],
						   RefreshCounts counts[NKINDS]);
extern void snap_batch_clear(Batch *b);
extern void snap_batch_free(Batch *b);

#endif
