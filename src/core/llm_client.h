/*
 * llm_client.h: a batch of OpenAI-compatible chat-completion calls on
 * libcurl's multi interface, Postgres-free.
 *
 * Owns the HTTP side of SPEC 8: many calls in flight at once (bounded),
 * connect timeout and a per-call deadline that includes retries, a cap on
 * the answer size, http/https only and no redirects, retries with backoff
 * on 429 (Retry-After honoured) and 5xx, the bearer header, and reading
 * choices[0].message.content and usage.total_tokens from the answer.
 * Never blocks longer than the wait the caller asks for, never prints, and
 * never puts the key into an error string; the header holding it is wiped
 * when the batch is freed.
 *
 * Two ways to drive it:
 *   llm_client_run()              all at once, polling an abort callback
 *                                 at least every 100 ms;
 *   llm_batch_create/step/free    the caller loops over step() and may
 *                                 leave at any time through free(), which
 *                                 aborts whatever is still in flight
 *                                 (the PostgreSQL glue does this so that
 *                                 CHECK_FOR_INTERRUPTS can run in between).
 * A conversation of several rounds (planner_loop.h) creates the batch with
 * manual_submit, sends prebuilt bodies, reads raw answers, and submits a
 * call again for its next round into the same multi handle.
 */
#ifndef MANA_AI_LLM_CLIENT_H
#define MANA_AI_LLM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm_chat.h"
#include "llm_ratelimit.h"
#include "llm_request.h"

#define LLM_DEFAULT_MAX_ATTEMPTS 5
#define LLM_CHAT_PATH "/v1/chat/completions"

typedef struct LlmClientConfig
{
	const char *url;			/* base URL (http or https); LLM_CHAT_PATH is appended */
	const char *model;
	double		temperature;
	const char *api_key;		/* NULL or "": no Authorization header */
	long		connect_timeout_ms;
	long		timeout_ms;		/* per call, from its first attempt, retries included */
	size_t		max_response_bytes;
	int			max_parallel;	/* transfers in flight at once (>= 1) */
	int			max_attempts;	/* per call; 0 = LLM_DEFAULT_MAX_ATTEMPTS */
	bool		manual_submit;	/* calls start idle until llm_batch_submit() */
	LlmRateLimit *limit;		/* NULL: no pacing; else borrowed, may outlive
								 * the batch (llm_ratelimit.h) */
} LlmClientConfig;

/* curl_global_init once per process; returns false when it failed. */
extern bool llm_client_global_init(void);

/*
 * Prepare a batch over reqs[0..n-1] (results are reset).  Copies the
 * configuration (and the key into the header list); the caller may wipe
 * its own key right after.  NULL on failure, with the reason in errbuf.
 */
extern LlmBatch *llm_batch_create(const LlmClientConfig *cfg,
								  LlmRequest *reqs, int n,
								  char *errbuf, size_t errlen);

/*
 * Start what may start, wait up to max_wait_ms for network activity or a
 * retry becoming due, and collect finished transfers.  Returns true when
 * no request is queued, running or waiting for a retry.
 */
extern bool llm_batch_step(LlmBatch *batch, int max_wait_ms);

/*
 * Queue reqs[i] (again): it must be idle (manual_submit) or finished.  Its
 * results are cleared; body, raw and deadline are read anew.  Queued calls
 * start in submission order as the max_parallel bound allows.
 */
extern void llm_batch_submit(LlmBatch *batch, int i);

/* True when reqs[i] has its final result (and was not submitted since). */
extern bool llm_batch_call_done(LlmBatch *batch, int i);

/* Abort what is still in flight (error "aborted"), wipe the key, free. */
extern void llm_batch_free(LlmBatch *batch);

typedef bool (*LlmAbortCallback) (void *arg);

/*
 * Run the whole batch.  abort_cb (may be NULL) is polled at least every
 * 100 ms; when it returns true everything still pending is aborted.
 * Returns 0 when every request finished, 1 when aborted, -1 when the batch
 * could not be set up (every request then carries the reason).
 */
extern int	llm_client_run(const LlmClientConfig *cfg, LlmRequest *reqs, int n,
						   LlmAbortCallback abort_cb, void *abort_arg);

#endif
