/*
 * tick.h: one tick of the runner (SPEC 4), shared by the worker and
 * SELECT mana_ai_tick().
 */
#ifndef MANA_AI_TICK_H
#define MANA_AI_TICK_H

#include "postgres.h"

/*
 * tick_cycle.c: run the worker's tick if one is due and return how long
 * (ms) the worker may sleep before it should call again.  Called outside any transaction;
 * returns outside any transaction.
 */
extern int	mana_ai_worker_tick_cycle(MemoryContext tick_context);

/* tick_run.c: one tick as the worker runs it (own short transactions). */
extern void mana_ai_worker_run_tick(MemoryContext cxt);

/*
 * tick_mission_runs.c: whether the schema has the run history (0.2.0 on):
 * the library also serves a 0.1.0 schema until ALTER EXTENSION UPDATE.
 * Inside a transaction.
 */
extern bool mana_ai_mission_runs_installed(void);

#endif
