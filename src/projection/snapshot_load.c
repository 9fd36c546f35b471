/*
 * snapshot_load.c: one stored snapshot record by its key, for the SQL
 * functions that start from a mission (build_prompt, decrypt_input,
 * resolve_inputs).
 *
 * Owns the two lookups of mission_snapshots and agent_snapshots by
 * (user_id, id).  Reads mana_ai's own tables only, which carry no
 * row-level security: the caller is trusted with the user id.  Must never
 * write, and never read sync_changes (replay.c does, under the user's
 * scope).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "projection/snapshot_load.h"
#include "shared/spi_plans.h"

/* The record column of the one row sql ($1 user, $2 id) finds, or NULL. */
static Jsonb *
load_record(const char *sql, const char *user_id, const char *id)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(user_id), CStringGetTextDatum(id)};
	Jsonb	   *record = NULL;

	mana_ai_spi_connect();
	if (SPI_execute_with_args(sql, 2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "snapshot lookup failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);

			record = DatumGetJsonbPCopy(d);
			MemoryContextSwitchTo(spi);
		}
	}
	mana_ai_spi_finish();
	return record;
}

Jsonb *
mana_ai_load_mission(const char *user_id, const char *mission_id)
{
	return load_record("SELECT record FROM mana_ai.mission_snapshots"
					   " WHERE user_id = $1 AND mission_id = $2",
					   user_id, mission_id);
}

Jsonb *
mana_ai_load_agent(const char *user_id, const char *agent_id)
{
	return load_record("SELECT record FROM mana_ai.agent_snapshots"
					   " WHERE user_id = $1 AND agent_id = $2",
					   user_id, agent_id);
}

/*
 * The mission named by a SQL function's first two arguments (user_id
 * text, mission_id text), or NULL; ERROR for an empty user id.
 */
Jsonb *
mana_ai_load_mission_args(FunctionCallInfo fcinfo, char **user_id, char **mission_id)
{
	*user_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	*mission_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if ((*user_id)[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user_id must not be empty"),
				 errhint("Pass the id of the user who owns the mission.")));
	return mana_ai_load_mission(*user_id, *mission_id);
}
