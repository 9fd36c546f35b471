/*
 * retention.c: keeps tick_runs, mission_runs, decrypt_audit, the token
 * ledger and the retry state of deleted missions from growing without
 * bound (SPEC 9a).
 *
 * Owns the only DELETEs the append-only guard of decrypt_audit and
 * mission_runs lets through: it lifts the guard for its own statement and
 * always puts it back.  Must never
 * delete an audit row younger than mana_ai.audit_retention.
 */
#include "postgres.h"

#include "executor/spi.h"

#include "crypto/audit_guard.h"
#include "ops/guc.h"
#include "shared/spi_plans.h"
#include "tick/retention.h"
#include "tick/tick.h"

/* One purge of an append-only table, with the guard lifted for it alone. */
static void
purge_guarded(const char *sql, int keep_minutes, const char *what)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(keep_minutes)};

	mana_ai_audit_guard_lift(true);
	PG_TRY();
	{
		if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "mana_ai retention: could not %s", what);
	}
	PG_FINALLY();
	{
		mana_ai_audit_guard_lift(false);
	}
	PG_END_TRY();
}

/* Delete what is older than each retention; caller provides the transaction. */
void
mana_ai_run_retention(void)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];

	mana_ai_spi_connect();
	values[0] = Int32GetDatum(mana_ai_tick_runs_retention);
	if (SPI_execute_with_args("DELETE FROM mana_ai.tick_runs"
							  " WHERE started_at < now() - make_interval(mins => $1)"
							  "   AND status <> 'running'",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "mana_ai retention: could not delete old tick runs");
	/* mission_runs has row-level security: its SECURITY DEFINER purge reaches every user's rows. */
	if (mana_ai_mission_runs_installed())
	{
		/* append-only like the audit (0.3.0): lifted for this DELETE only */
		purge_guarded("SELECT mana_ai.purge_mission_runs($1)", mana_ai_mission_runs_retention,
					  "purge old mission runs");
	}
	if (SPI_execute("DELETE FROM mana_ai.token_usage WHERE ts < now() - interval '25 hours'",
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "mana_ai retention: could not delete old token usage");
	/* Retry state of a mission that is gone (deleted) would stay forever. */
	if (SPI_execute("DELETE FROM mana_ai.mission_attempts a WHERE NOT EXISTS"
					" (SELECT 1 FROM mana_ai.mission_snapshots s"
					"   WHERE s.user_id = a.user_id AND s.mission_id = a.mission_id)",
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "mana_ai retention: could not delete the retry state of gone missions");

	purge_guarded("SELECT mana_ai.purge_decrypt_audit($1)", mana_ai_audit_retention,
				  "purge old decrypt audit rows");
	mana_ai_spi_finish();
}
