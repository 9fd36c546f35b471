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
	const char *tools;			/* tools protocol: the offered functions (a
								 * JSON array, PlannerPrompt.tools) */
	const char *tools_reserve;	/* what more_tools adds (PlannerPrompt) */
	int64	   *token_budget;	/* tokens the agent may still spend, shared by
								 * its missions of the tick; NULL: no limit */
	int64		budget_total;	/* the agent's maxTokensPerDay (0: none), for
								 * the loop's budget reminders */
	/* results */
	bool		ok;				/* json: content is the answer; tools: plan */
	char	   *content;		/* json: the answer's message content */
	char	   *plan;			/* tools: {summary, steps} as JSON text, each
								 * step {summary, toolName, params, rationale} */
	bool		answered;		/* !ok: some round was answered (so the
								 * failure is the answer's, not the call's) */
	int64		total_tokens;	/* summed over the rounds, -1 when none reported */
	char	   *model;			/* the model that answered last, NULL when none */
	int			rounds;			/* answered rounds */
	const char *end;			/* why the loop ended (plan_end_name) */
	int			http_status;	/* of the last attempt, 0 when none */
	int			attempts;		/* over every round and model */
	double		seconds;		/* the whole conversation */
	double		answered_at;	/* mana_ai_llm_now() when it ended */
	char	   *error;			/* short reason (NULL when ok); never holds the key */
	char	   *flags;			/* tools: [{toolName, marker, refused}] the
								 * injection policy flagged, as JSON; NULL none */
} LlmCall;

/*
 * Run every mission's planner conversation at once in one curl multi
 * handle (at most mana_ai.llm_max_parallel calls in flight), in the given
 * protocol (MANA_AI_PROTOCOL_*), with the mana_ai.llm_* settings:
 * mana_ai.llm_model's chain, mana_ai.llm_timeout for each conversation
 * as a whole, mana_ai.planner_max_rounds.  Results are palloc'd in
 * CurrentMemoryContext.  A failed call is a result (ok = false, error
 * set), not an ERROR: the tick isolates failures per mission.  Counts
 * tool calls, rounds, LLM errors, fallbacks and request durations.
 *
 * The worker must call this with NO transaction open (SPEC 4: no snapshot
 * held while waiting for the LLM); it needs no catalog access.  Inside a
 * transaction it works as well (SELECT mana_ai_tick(), llm_test_call()).
 *
 * Interrupts: CHECK_FOR_INTERRUPTS() runs at least every 100 ms; a query
 * cancel or SIGTERM aborts every call still in flight (connections
 * closed, nothing returned but each call's total_tokens: the rounds
 * answered before it) and raises as usual.  Raises ERROR only for
 * interrupts and for an unusable mana_ai.llm_key_file.
 */
extern void mana_ai_llm_complete(LlmCall *calls, int ncalls, int protocol);

/*
 * Called between the loop's waits with the calls that ended since the
 * last call (their results filled in, indices into calls[]; k may be 0),
 * so the caller can commit them while the others are in flight.  It runs
 * outside any wait: it may open and commit transactions, and raise (the
 * calls still in flight are then aborted as on a cancel).  It returns how
 * long, in ms, the loop may wait before calling it again (< 0: no limit).
 */
typedef int (*LlmFinishedFn) (void *arg, const int *done, int k);

/*
 * Called between the loop's waits, when fewer calls than the loop keeps
 * ready wait to be started: fill in the inputs of up to room more calls,
 * calls[next..next+k), and return k (0 is fine: come back later).  Set
 * *closed once there are no more to come.  Like LlmFinishedFn it may open
 * and commit transactions and raise; it should keep each pause short,
 * since no answer is read while it runs.
 */
typedef int (*LlmFeedFn) (void *arg, int next, int room, bool *closed);

typedef struct LlmStreamHooks
{
	LlmFinishedFn finished;		/* NULL: results filled in on return */
	LlmFeedFn	feed;			/* NULL: every call's inputs given already */
	void	   *arg;
} LlmStreamHooks;

/*
 * mana_ai_llm_complete, fed and handing over as it goes: with a feeder,
 * calls[] is room for ncalls and the feeder fills it (a call it never
 * filled is not touched); each call is handed to finished as soon as it
 * has ended; the calls not handed over by the time every call has ended
 * (none, unless finished is NULL) are filled in on return.
 */
extern void mana_ai_llm_complete_stream(LlmCall *calls, int ncalls, int protocol,
										const LlmStreamHooks *hooks);

/* A monotonic clock in seconds, the one answered_at is read on. */
extern double mana_ai_llm_now(void);

#endif
