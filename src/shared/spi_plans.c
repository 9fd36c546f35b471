/*
 * spi_plans.c: per-process kept SPI plans for every statement mana_ai
 * runs again and again (the tick's per-mission statements, the
 * refresh's, the tool catalog).
 *
 * The worker and mana_ai_tick() run from long-lived backends, where
 * preparing and planning a statement anew on every call would cost more
 * than a quiet refresh itself.  Owns nothing but the preparing and the
 * table of kept plans: one per statement text, in CacheMemoryContext for
 * the life of the process, so memory does not grow with ticks; and the
 * checked SPI_connect/SPI_finish every file uses.  Must only ever be
 * given constant SQL text.
 */
#include "postgres.h"

#include "executor/spi.h"

#include "shared/spi_plans.h"

/* More statements than mana_ai has; past it, plans are simply not kept. */
#define MAX_KEPT_PLANS 64

static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			kept[MAX_KEPT_PLANS];
static int	n_kept = 0;

SPIPlanPtr
mana_ai_kept_plan(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan;

	for (int i = 0; i < n_kept; i++)
		if (kept[i].sql == sql)
			return kept[i].plan;
	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);
	if (plan == NULL)
		elog(ERROR, "mana_ai: could not prepare a statement (%s): %s",
			 SPI_result_code_string(SPI_result), sql);
	if (n_kept < MAX_KEPT_PLANS)
	{
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "mana_ai: could not keep a prepared statement: %s", sql);
		kept[n_kept].sql = sql;
		kept[n_kept].plan = plan;
		n_kept++;
	}
	return plan;
}

void
mana_ai_run_kept(const char *sql, int nargs, Oid *argtypes, int cursor_options,
				 Datum *args, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(mana_ai_kept_plan(sql, nargs, argtypes, cursor_options),
									  args, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "mana_ai: statement failed (%s): %s", SPI_result_code_string(rc), sql);
}

void
mana_ai_spi_connect(void)
{
	int			rc = SPI_connect();

	if (rc != SPI_OK_CONNECT)
		elog(ERROR, "mana_ai: SPI_connect failed: %s", SPI_result_code_string(rc));
}

void
mana_ai_spi_finish(void)
{
	int			rc = SPI_finish();

	if (rc != SPI_OK_FINISH)
		elog(ERROR, "mana_ai: SPI_finish failed: %s", SPI_result_code_string(rc));
}
