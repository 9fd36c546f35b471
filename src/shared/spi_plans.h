/*
 * spi_plans.h: the one cache of prepared SPI plans kept for the life of
 * the process (the tick's per-mission statements, the refresh's).
 */
#ifndef MANA_AI_SPI_PLANS_H
#define MANA_AI_SPI_PLANS_H

#include "postgres.h"

#include "executor/spi.h"

/*
 * The plan of sql, prepared with cursor_options (0, or
 * CURSOR_OPT_GENERIC_PLAN for statements of one shape whatever their
 * parameters) and kept on first use, inside an SPI connection.  Keyed by
 * the address of sql, so sql must be constant text (a literal or a static
 * string), never one built at run time.  The plan cache re-plans a kept
 * plan after DDL on what it uses, a change of search_path or, with
 * row-level security, of the user.
 */
extern SPIPlanPtr mana_ai_kept_plan(const char *sql, int nargs, Oid *argtypes,
									int cursor_options);

/* SPI_execute_plan of that plan (not read-only); ERROR unless it returns expected. */
extern void mana_ai_run_kept(const char *sql, int nargs, Oid *argtypes,
							 int cursor_options, Datum *args, const char *nulls,
							 int expected);

/* SPI_connect and SPI_finish; ERROR unless SPI answers OK. */
extern void mana_ai_spi_connect(void);
extern void mana_ai_spi_finish(void);

#endif
