/*
 * sync_format.c: tells the two sync_changes formats apart from the
 * catalog (SPEC 1.1 and 11.1).
 *
 * Owns the one rule: a jsonb field_timestamps and no field_meta is the
 * seed format; a jsonb field_meta with text origin and space_id and no
 * field_timestamps is the current format; anything else is refused with
 * an errcode and a hint naming both.  Reads attributes through the
 * syscache, which DDL invalidates, so nothing here is cached by hand and
 * an ALTER TABLE done in place is seen from the next statement on; the
 * callers pick one constant statement text per format, so the kept plans
 * (spi_plans.c) of the other format are simply no longer used.  Must
 * never be a setting: an operator cannot get it wrong.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "projection/sync_format.h"

PG_FUNCTION_INFO_V1(mana_ai_sync_format_sql);

/* The column's type, InvalidOid when absent (or dropped). */
static Oid
column_type(Oid relid, const char *name)
{
	AttrNumber	att = get_attnum(relid, name);

	return att == InvalidAttrNumber ? InvalidOid : get_atttype(relid, att);
}

Oid
mana_ai_sync_changes_relid(void)
{
	Oid			nsp = get_namespace_oid("public", true);

	return OidIsValid(nsp) ? get_relname_relid("sync_changes", nsp) : InvalidOid;
}

SyncFormat
mana_ai_sync_format(void)
{
	Oid			relid = mana_ai_sync_changes_relid();
	Oid			stamps;
	Oid			meta;
	Oid			origin;
	Oid			space;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"public.sync_changes\" does not exist"),
				 errhint("mana_ai runs inside the sync server's database, which owns public.sync_changes.")));
	stamps = column_type(relid, "field_timestamps");
	meta = column_type(relid, "field_meta");
	origin = column_type(relid, "origin");
	space = column_type(relid, "space_id");

	if (stamps == JSONBOID && !OidIsValid(meta))
		return SYNC_FORMAT_SEED;
	if (meta == JSONBOID && !OidIsValid(stamps) && origin == TEXTOID && space == TEXTOID)
		return SYNC_FORMAT_CURRENT;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("public.sync_changes matches neither sync format mana_ai reads"),
			 errdetail("Columns found: field_timestamps %s, field_meta %s, origin %s, space_id %s.",
					   OidIsValid(stamps) ? format_type_be(stamps) : "absent",
					   OidIsValid(meta) ? format_type_be(meta) : "absent",
					   OidIsValid(origin) ? format_type_be(origin) : "absent",
					   OidIsValid(space) ? format_type_be(space) : "absent"),
			 errhint("mana_ai reads the seed format (a jsonb column field_timestamps) or the current format "
					 "(a jsonb column field_meta and text columns origin and space_id, no field_timestamps); "
					 "finish the sync server's migration of the table.")));
	return SYNC_FORMAT_SEED;	/* keep the compiler quiet */
}

bool
mana_ai_slot_state_installed(SyncFormat format)
{
	Oid			nsp = get_namespace_oid("mana_ai", true);
	bool		installed = OidIsValid(nsp) &&
		OidIsValid(get_relname_relid("mission_slots", nsp));

	if (!installed && format == SYNC_FORMAT_CURRENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the current sync format needs mana_ai 0.3.0's catalog"),
				 errdetail("public.sync_changes is in the current format (field_meta), whose next slots mana_ai keeps in mana_ai.mission_slots."),
				 errhint("Run ALTER EXTENSION mana_ai UPDATE.")));
	return installed;
}

/* SQL: mana_ai.sync_format() → 'seed' | 'current' */
Datum
mana_ai_sync_format_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(mana_ai_sync_format() == SYNC_FORMAT_CURRENT ?
									 "current" : "seed"));
}
