/*
 * llm.h: the planner's LLM calls from inside PostgreSQL (SPEC 8).
 *
 * The PostgreSQL side of src/core/llm_client.c: configuration from the
 * mana_ai.llm_* GUCs, the bearer key from mana_ai.llm_key_file,
 * interrupts, metrics, results in palloc'd memory.
 */
#ifndef MANA_AI_LLM_H
#define MANA_AI_LLM_H

#include "postgres.h"

typedef struct LlmCall
{
	const char *system;			/* inputs: the prompt (SPEC 7.3) */
	const char *user;
	/* results */
	bool		ok;
	char	   *content;		/* the answer's message content (NULL unless ok) */
	int64		total_tokens;	/* usage.total_tokens, -1 when absent */
	int			http_status;	/* of the last attempt, 0 when none */
	int			attempts;
	double		seconds;		/* first attempt to final result, retries included */
	char	   *error;			/* short reason (NULL when ok); never holds the key */
} LlmCall;

/*
 * Run all calls concurrently (at most mana_ai.llm_max_parallel in flight)
 * with the mana_ai.llm_* settings; results are palloc'd in
 * CurrentMemoryContext.  A failed call is a result (ok = false, error
 * set), not an ERROR: the tick isolates failures per mission.
 *
 * The worker must call this with NO transaction open (SPEC 4: no snapshot
 * held while waiting for the LLM); it needs no catalog access.  Inside a
 * transaction it works as well (SELECT mana_ai_tick(), llm_test_call()).
 *
 * Interrupts: CHECK_FOR_INTERRUPTS() runs at least every 100 ms; a query
 * cancel or SIGTERM aborts every call still in flight (connections
 * closed, nothing returned) and raises as usual.  Raises ERROR only for
 * interrupts and for an unusable mana_ai.llm_key_file.
 */
extern void mana_ai_llm_complete(LlmCall *calls, int ncalls);

#endif
