/*
 * sync_format.h: which of the two sync_changes formats this database has
 * (SPEC 1.1 seed: field_timestamps; SPEC 11.1 current: field_meta,
 * origin, space_id), read from the catalog.
 */
#ifndef MANA_AI_SYNC_FORMAT_H
#define MANA_AI_SYNC_FORMAT_H

#include "postgres.h"

typedef enum SyncFormat
{
	SYNC_FORMAT_SEED,			/* SPEC 1.1: field_timestamps */
	SYNC_FORMAT_CURRENT			/* SPEC 11.1: field_meta, origin, space_id */
} SyncFormat;

/*
 * The format of public.sync_changes as the catalog states it now (the
 * syscache, so a migration in place is seen by the next statement that
 * asks).  ERROR (feature not supported, or undefined table) when the
 * table matches neither format.  Needs a transaction.
 */
/* public.sync_changes, or InvalidOid when there is none. */
extern Oid	mana_ai_sync_changes_relid(void);
extern SyncFormat mana_ai_sync_format(void);

/*
 * Whether the catalog has mana_ai.mission_slots (0.3.0 on): the 0.3.0
 * library also ticks a database still at an older catalog, in the seed
 * format only.  ERROR (with the upgrade as hint) for the current format
 * without it.
 */
extern bool mana_ai_slot_state_installed(SyncFormat format);

/* Pick the statement text for the current format (constant texts only). */
#define SYNC_FORMAT_SQL(seed_sql, current_sql) \
	(mana_ai_sync_format() == SYNC_FORMAT_CURRENT ? (current_sql) : (seed_sql))

#endif
