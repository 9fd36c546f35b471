/*
 * planner_breaker.c: the tick-wide model breaker of the planner loop
 * (PlanBreaker in planner_mission.h), Postgres-free.
 *
 * Owns counting each model's consecutive failed calls, opening a model
 * at the threshold, and moving a round past open models.  Must never
 * skip the last model of the chain, never call out (the loop reports an
 * opening through its hook), and never keep state of its own: the
 * caller's PlanBreaker is the tick's state.
 */
#include <stdbool.h>
#include <stddef.h>

#include "planner_mission.h"

void
plan_breaker_skip(PlanBreaker *b, int n_models, int *model)
{
	if (b == NULL || b->threshold <= 0)
		return;
	while (*model + 1 < n_models && *model < PLAN_LOOP_MAX_MODELS && b->open[*model])
		b->skipped[(*model)++]++;
}

bool
plan_breaker_count(PlanBreaker *b, int k, bool failed)
{
	if (b == NULL || b->threshold <= 0 || k < 0 || k >= PLAN_LOOP_MAX_MODELS)
		return false;
	if (!failed)
	{
		b->failures[k] = 0;
		return false;
	}
	if (b->failures[k] < b->threshold)
		b->failures[k]++;
	if (b->failures[k] < b->threshold || b->open[k])
		return false;
	b->open[k] = true;
	return true;
}
