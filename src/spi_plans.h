/*
 * spi_plans.h: statements the tick runs for every mission, planned once
 * per process instead of once per call.
 */
#ifndef MANA_AI_SPI_PLANS_H
#define MANA_AI_SPI_PLANS_H

#include "postgres.h"

#include "executor/spi.h"

/*
 * The saved plan in *slot, prepared and kept on first use (inside an SPI
 * connection).  The plan cache re-plans it after DDL on what it uses, a
 * change of search_path or, with row-level security, of the user.
 */
extern SPIPlanPtr mana_ai_kept_plan(SPIPlanPtr *slot, const char *sql,
									int nargs, Oid *argtypes);

#endif
