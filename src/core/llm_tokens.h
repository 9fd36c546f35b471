/*
 * llm_tokens.h: the bounds on the token counts a model reports, and the
 * saturating arithmetic that keeps them bounded, Postgres-free.
 *
 * Owns the one rule for usage numbers: they are untrusted input from the
 * network.  A round counts at most LLM_MAX_TOKENS_PER_ROUND, a mission at
 * most LLM_MAX_TOKENS_PER_MISSION, and a sum never wraps.  A model that
 * answers usage 3e18 would otherwise wrap the loop's sum negative (and
 * escape the agent's budget) or, stored as is, overflow the 24 h sum that
 * every user's selection shares.  Must never include a PostgreSQL header.
 */
#ifndef MANA_AI_LLM_TOKENS_H
#define MANA_AI_LLM_TOKENS_H

#include <stdint.h>

/* No real chat round costs 10 million tokens (context windows are ~1M). */
#define LLM_MAX_TOKENS_PER_ROUND INT64_C(10000000)
/* 100 rounds at the round bound; far above mana_ai.planner_max_rounds. */
#define LLM_MAX_TOKENS_PER_MISSION INT64_C(1000000000)

/* One round's reported count, clamped; -1 (absent) stays -1. */
static inline int64_t
llm_tokens_clamp_round(int64_t tokens)
{
	if (tokens < 0)
		return -1;
	return tokens > LLM_MAX_TOKENS_PER_ROUND ? LLM_MAX_TOKENS_PER_ROUND : tokens;
}

/* a + b for non-negative counts, saturating at limit. */
static inline int64_t
llm_tokens_add(int64_t a, int64_t b, int64_t limit)
{
	if (a < 0)
		a = 0;
	if (b < 0)
		b = 0;
	if (a >= limit || b >= limit - a)
		return limit;
	return a + b;
}

/* budget - spent, saturating at INT64_MIN (spent is non-negative). */
static inline int64_t
llm_tokens_spend(int64_t budget, int64_t spent)
{
	if (spent <= 0)
		return budget;
	if (budget < INT64_MIN + spent)
		return INT64_MIN;
	return budget - spent;
}

#endif
