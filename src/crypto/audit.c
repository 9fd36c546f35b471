/*
 * audit.c: the decrypt audit trail (SPEC 5.4): writing rows.
 *
 * Owns mana_ai.audit_decrypt() and the never-failing writer the
 * resolvers use.  Rows are inserted under the row's own user's RLS scope
 * (the table's INSERT policy); reading is mana_ai.read_decrypt_audit in
 * sql/install/30_crypto.sql.  Must never put key or plaintext bytes into
 * a row: reasons are short fixed strings.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/resowner.h"

#include "crypto/audit.h"
#include "projection/replay.h"
#include "shared/spi_plans.h"

#define AUDIT_INSERT \
	"INSERT INTO mana_ai.decrypt_audit " \
	"(user_id, mission_id, iteration_id, table_name, record_id, status, reason) " \
	"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"

static void
check_status(const char *status)
{
	if (strcmp(status, "ok") != 0 && strcmp(status, "failed") != 0 &&
		strcmp(status, "scope-violation") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid decrypt audit status \"%s\"", status),
				 errhint("Use ok, failed or scope-violation.")));
}

/* Insert one row; may throw. */
static int64
audit_insert(const char *user_id, const char *mission_id, const char *iteration_id,
			 const char *table_name, const char *record_id, const char *status,
			 const char *reason)
{
	Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *args[7] = {user_id, mission_id, iteration_id, table_name, record_id, status, reason};
	int			nest;
	int64		id;
	bool		isnull;
	int			i;

	check_status(status);
	for (i = 0; i < 7; i++)
	{
		if (args[i] == NULL)
			nulls[i] = 'n';
		else
			values[i] = CStringGetTextDatum(args[i]);
	}
	nest = mana_ai_enter_user_scope(user_id);
	mana_ai_spi_connect();
	if (SPI_execute_with_args(AUDIT_INSERT, 7, types, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "decrypt_audit insert returned no row");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	mana_ai_spi_finish();
	mana_ai_leave_user_scope(nest);
	return id;
}

/*
 * The audit must never fail the tick or the decrypt it records: run the
 * insert in an internal subtransaction and turn an error into a WARNING.
 * A query cancel or statement_timeout is not the audit's failure: it is
 * re-thrown, so the statement (or tick) ends as the canceller asked.
 */
int64
mana_ai_audit_write(const char *user_id, const char *mission_id, const char *iteration_id,
					const char *table_name, const char *record_id, const char *status,
					const char *reason)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int64 id = -1;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		id = audit_insert(user_id, mission_id, iteration_id, table_name,
						  record_id, status, reason);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		/* A cancel (or a pending one) ends the statement, as in the tick. */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || QueryCancelPending || ProcDiePending)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not write a mana_ai.decrypt_audit row: %s", edata->message),
				 errdetail("The decrypt attempt (status %s) went on without its audit row.", status)));
		FreeErrorData(edata);
		id = -1;
	}
	PG_END_TRY();
	return id;
}

static char *
text_arg_or_null(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

PG_FUNCTION_INFO_V1(mana_ai_audit_decrypt);
Datum
mana_ai_audit_decrypt(PG_FUNCTION_ARGS)
{
	int			i;

	/* Everything but iteration_id (2) and reason (6) is required. */
	for (i = 0; i < 6; i++)
		if (i != 2 && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("mana_ai.audit_decrypt: only iteration_id and reason may be null")));

	PG_RETURN_INT64(audit_insert(text_arg_or_null(fcinfo, 0), text_arg_or_null(fcinfo, 1),
								 text_arg_or_null(fcinfo, 2), text_arg_or_null(fcinfo, 3),
								 text_arg_or_null(fcinfo, 4), text_arg_or_null(fcinfo, 5),
								 text_arg_or_null(fcinfo, 6)));
}
