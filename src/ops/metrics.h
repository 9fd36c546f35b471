/*
 * metrics.h: the counters and histograms of SPEC 10, in shared memory.
 *
 * Every call is a no-op when the library was not preloaded (no shared
 * memory): SELECT mana_ai_tick() still works, it just is not counted.
 */
#ifndef MANA_AI_METRICS_H
#define MANA_AI_METRICS_H

#include "postgres.h"

typedef enum ManaAiCounter
{
	MC_TICKS,
	MC_PLANS_PRODUCED,
	MC_PLANS_WRITTEN_BACK,
	MC_PARSE_FAILURES,
	MC_MISSION_ERRORS,
	MC_SNAPSHOTS_NEW,
	MC_SNAPSHOTS_UPDATED,
	MC_SNAPSHOT_ROWS_APPLIED,
	MC_LOCK_TIMEOUTS,			/* refresh lock waits that timed out */
	MC_LLM_RATE_LIMITED,		/* 429 answers, retried ones included */
	MC_NUM_COUNTERS
} ManaAiCounter;

typedef enum ManaAiLabeledCounter
{
	ML_DECRYPTS,				/* {table} */
	ML_GRANT_SCOPE_VIOLATIONS,	/* {table} */
	ML_GRANT_SKIPS,				/* {reason} */
	ML_AGENT_DECISIONS,			/* {decision} */
	ML_TOOL_CALLS,				/* {tool, outcome}: two labels */
	ML_LLM_ERRORS,				/* {model, kind} */
	ML_LLM_FALLBACKS,			/* {from, to} */
	ML_MODEL_BREAKER_OPEN,		/* {model} */
	ML_INJECTION_FLAGS,			/* {tool}: a catalog tool name or "other" */
	ML_LLM_TOKENS,				/* {model, direction}: sent, received */
	ML_LLM_LIMIT_WAIT,			/* {reason}: microseconds, shown as seconds */
	ML_NUM_FAMILIES
} ManaAiLabeledCounter;

typedef enum ManaAiHistogram
{
	MH_TICK_DURATION,
	MH_PLANNER_REQUEST_DURATION,
	MH_PLANNER_ROUNDS,			/* rounds per planner conversation, not seconds */
	MH_NUM_HISTOGRAMS
} ManaAiHistogram;

typedef enum ManaAiGauge
{
	MG_LLM_IN_FLIGHT,			/* planner requests in flight now */
	MG_NUM_GAUGES
} ManaAiGauge;

extern Size mana_ai_metrics_shmem_size(void);
extern void mana_ai_metrics_shmem_attach(void);

extern void mana_ai_metric_inc(ManaAiCounter counter, uint64 n);
extern void mana_ai_metric_inc_labeled(ManaAiLabeledCounter family,
									   const char *label, uint64 n);
/* For the two-label families: label values in the order of the comment. */
extern void mana_ai_metric_inc_labeled2(ManaAiLabeledCounter family,
										const char *label1, const char *label2,
										uint64 n);
extern void mana_ai_metric_set(ManaAiGauge gauge, uint64 value);
extern void mana_ai_metric_observe(ManaAiHistogram histogram, double value);

#endif
