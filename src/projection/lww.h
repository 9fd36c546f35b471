/*
 * lww.h: field-level last-writer-wins fold of sync_changes rows (SPEC 2).
 *
 * One LwwState folds the rows of one record, in (created_at, id) order,
 * straight on jsonb.  Shared by the lww_merge aggregate, replay_record and
 * the snapshot refresh (which starts a state from a stored snapshot and
 * folds only the new rows onto it).
 */
#ifndef MANA_AI_LWW_H
#define MANA_AI_LWW_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* The key under which a merged record carries its field stamps. */
#define LWW_STAMPS_KEY "__fieldTimestamps"

typedef struct LwwField LwwField;

typedef struct LwwState
{
	MemoryContext cxt;			/* everything the state keeps lives here */
	char	   *record_id;
	bool		started;		/* a non-delete row started the record */
	bool		tombstoned;		/* a delete was seen: the result is NULL */
	LwwField   *fields;			/* sorted in jsonb key order */
	int			nfields;
	int64		rows_applied;	/* rows folded (deletes included) */
	int64		rows_skipped;	/* rows skipped: data/stamps not objects */
	int64		bad_stamps;		/* stamps that did not parse */
} LwwState;

/* A new, empty state for record_id, allocated in cxt. */
extern LwwState *lww_state_create(MemoryContext cxt, const char *record_id);

/*
 * Start the state from a merged record (a snapshot, carrying its stamps
 * under __fieldTimestamps) so later rows fold onto it.
 */
extern void lww_state_load(LwwState *state, Jsonb *record);

/*
 * Fold one row.  data and field_timestamps may be NULL (SQL NULL = no
 * fields / no stamps).  op is "insert", "update" or "delete".
 */
extern void lww_fold_row(LwwState *state, const char *op, Jsonb *data,
						 Jsonb *field_timestamps, TimestampTz created_at);

/* Whether lww_fold_row would fold this row (false: skipped as malformed). */
extern bool lww_row_is_wellformed(const char *op, Jsonb *data,
								  Jsonb *field_timestamps, TimestampTz created_at);

/* The merged record with its stamps, or NULL (tombstoned or never started). */
extern Jsonb *lww_state_result(LwwState *state);

#endif
