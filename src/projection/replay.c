/*
 * replay.c: mana_ai.replay_record(user_id, app_id, table_name, record_id).
 *
 * Owns reading one record's whole history from sync_changes and folding
 * it with the LWW rules (lww.c), always with app.current_user_id set to
 * that user so row-level security scopes the read even for a role that
 * does not bypass it.  Must never read without a user scope, never build
 * SQL from data (parameters only), and never leave the scope changed for
 * the caller after it returns.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "projection/lww.h"
#include "projection/replay.h"
#include "projection/runner_fields.h"
#include "projection/sync_format.h"
#include "shared/spi_plans.h"

#define USER_GUC "app.current_user_id"

int
mana_ai_enter_user_scope(const char *user_id)
{
	int			nest;

	if (user_id == NULL || user_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user id must not be empty"),
				 errdetail("Every read or write of sync_changes runs as exactly one user."),
				 errhint("Pass the id of the user whose rows to read; row-level security scopes the read to app.current_user_id.")));
	nest = NewGUCNestLevel();
	(void) set_config_option(USER_GUC, user_id, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

void
mana_ai_leave_user_scope(int nest_level)
{
	AtEOXact_GUC(true, nest_level);
}

/* One text per sync format (sync_format.c), each with its kept plan. */
#define REPLAY_SQL(STAMPS, KEEP) \
	"SELECT op, " RUNNER_FIELDS_SQL("data", KEEP) ", " RUNNER_FIELDS_SQL(STAMPS, KEEP) ", created_at" \
	"  FROM public.sync_changes" \
	" WHERE user_id = $1 AND app_id = $2 AND table_name = $3 AND record_id = $4" \
	" ORDER BY created_at, id"

Jsonb *
mana_ai_replay_record(const char *user_id, const char *app_id,
					  const char *table_name, const char *record_id)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext fold_cxt;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];
	LwwState   *state;
	Jsonb	   *merged;
	Jsonb	   *result = NULL;
	int			nest;

	nest = mana_ai_enter_user_scope(user_id);
	args[0] = CStringGetTextDatum(user_id);
	args[1] = CStringGetTextDatum(app_id);
	args[2] = CStringGetTextDatum(table_name);
	args[3] = CStringGetTextDatum(record_id);

	fold_cxt = AllocSetContextCreate(caller_cxt, "mana_ai replay",
									 ALLOCSET_DEFAULT_SIZES);
	state = lww_state_create(fold_cxt, record_id);

	mana_ai_spi_connect();
	if (SPI_execute_plan(mana_ai_kept_plan(SYNC_FORMAT_SQL(REPLAY_SQL("field_timestamps", RUNNER_KEEP_SEED),
													   REPLAY_SQL("field_meta", RUNNER_KEEP_CURRENT)), 4, argtypes, 0),
						 args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the history of record %s", record_id);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		char	   *op;
		Jsonb	   *data = NULL;
		Jsonb	   *stamps = NULL;

		op = SPI_getvalue(tup, desc, 1);
		d = SPI_getbinval(tup, desc, 2, &isnull);
		if (!isnull)
			data = DatumGetJsonbP(d);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		if (!isnull)
			stamps = DatumGetJsonbP(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		lww_fold_row(state, op, data, stamps, DatumGetTimestampTz(d));
		CHECK_FOR_INTERRUPTS();
	}
	merged = lww_state_result(state);
	if (merged != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(caller_cxt);

		result = (Jsonb *) palloc(VARSIZE(merged));
		memcpy(result, merged, VARSIZE(merged));
		MemoryContextSwitchTo(old);
	}
	mana_ai_spi_finish();
	MemoryContextDelete(fold_cxt);
	mana_ai_leave_user_scope(nest);
	return result;
}

PG_FUNCTION_INFO_V1(mana_ai_replay_record_sql);

/* SQL: mana_ai.replay_record(user_id, app_id, table_name, record_id) → jsonb */
Datum
mana_ai_replay_record_sql(PG_FUNCTION_ARGS)
{
	Jsonb	   *res;

	if (PG_ARGISNULL(0))
		mana_ai_enter_user_scope(NULL);	/* raises the empty-user error */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	res = mana_ai_replay_record(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								text_to_cstring(PG_GETARG_TEXT_PP(1)),
								text_to_cstring(PG_GETARG_TEXT_PP(2)),
								text_to_cstring(PG_GETARG_TEXT_PP(3)));
	if (res == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(res);
}
