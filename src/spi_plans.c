/*
 * spi_plans.c: per-process saved SPI plans for the statements the tick
 * runs once per mission (replay, catalog, write-back).
 *
 * Owns nothing but the preparing: each caller keeps its plan in a static
 * slot.  A kept plan lives in CacheMemoryContext for the life of the
 * process, one per statement, so memory does not grow with ticks.  Must
 * only ever be given constant SQL text.
 */
#include "postgres.h"

#include "executor/spi.h"

#include "spi_plans.h"

SPIPlanPtr
mana_ai_kept_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	if (*slot != NULL)
		return *slot;
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "mana_ai: could not prepare a statement: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "mana_ai: could not keep a prepared statement");
	*slot = plan;
	return plan;
}
