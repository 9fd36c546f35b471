/*
 * snapshot.h: incremental refresh of mission_snapshots / agent_snapshots
 * from sync_changes (SPEC 3).
 */
#ifndef MANA_AI_SNAPSHOT_H
#define MANA_AI_SNAPSHOT_H

#include "postgres.h"

typedef struct RefreshCounts
{
	int64		rows_applied;	/* rows folded into a snapshot (or tombstone) */
	int32		new_snapshots;
	int32		updated_snapshots;
	int32		deleted_snapshots;
	int64		skipped_rows;	/* malformed rows skipped */
} RefreshCounts;

/*
 * Refresh both snapshot tables.  Call inside a transaction (any role that
 * has the GRANTs listed in docs/projections.md; no BYPASSRLS needed).
 * Does its own SPI_connect/SPI_finish, counts the metrics, and blocks on
 * a transaction-level advisory lock while another refresh runs.
 * Either argument may be NULL.
 */
extern void mana_ai_refresh_snapshots_run(RefreshCounts *missions,
										  RefreshCounts *agents);

#endif
