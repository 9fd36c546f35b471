/*
 * llm_ratelimit.h: keeping a provider's rate limits (requests and tokens
 * per minute), Postgres-free.
 *
 * Owns the pacing of the LLM client: two token buckets (requests, tokens)
 * whose sizes come from the configured caps (mana_ai.llm_requests_per_minute,
 * mana_ai.llm_tokens_per_minute; 0 = unknown) and from what the provider
 * announces (x-ratelimit-limit-*, -remaining-*, -reset-*), the lower one
 * winning (when neither is known, a 429 sets it to the rate sent over the
 * last minute, lowered by 30 % on a further 429 (once a second at most), grown by
 * 5 % a minute, and forgotten once a minute has passed with neither a
 * 429 nor a call it held back: a fault must not throttle later ticks); a window of requests in flight that halves on a 429 (at most
 * once a second) and grows by one per window of answers; and a pause after
 * a 429 until its Retry-After (or the announced reset) plus a jitter, so
 * the calls it held back start one by one as the buckets refill, never all
 * at once.  It only decides and counts: the client asks before starting a
 * transfer and reports what came back.  Never sleeps, never allocates,
 * never includes a PostgreSQL header.  The state is the caller's and may
 * outlive a batch (the worker keeps one for its lifetime).
 */
#ifndef MANA_AI_LLM_RATELIMIT_H
#define MANA_AI_LLM_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a transfer waits; the closed set of the wait metric's labels. */
typedef enum LlmLimitReason
{
	LLM_LIMIT_NONE = -1,
	LLM_LIMIT_REQUESTS = 0,		/* the requests-per-minute bucket is empty */
	LLM_LIMIT_TOKENS,			/* the tokens-per-minute bucket is short */
	LLM_LIMIT_CONCURRENCY,		/* the window of requests in flight is full */
	LLM_LIMIT_RETRY_AFTER,		/* paused after a 429 */
	LLM_LIMIT_N_REASONS
} LlmLimitReason;

/* Tokens of a request, estimated from its body: bytes / 4. */
#define LLM_BYTES_PER_TOKEN 4

typedef struct LlmRateLimit
{
	double		cfg_rpm;		/* configured caps; 0 = unknown */
	double		cfg_tpm;
	double		ann_rpm;		/* announced by the provider; 0 = not yet */
	double		ann_tpm;
	double		learnt_rpm;		/* neither known: learnt from 429s; 0 = not yet */
	double		learnt_tpm;
	double		ring_req[60];	/* sent per second of the last minute */
	double		ring_tok[60];
	int64_t		ring_sec;		/* the second last written */
	double		ring_since;		/* when the ring began to fill (< 60 s: a
								 * rate is scaled up from it) */
	double		req;			/* what the buckets hold at `at` */
	double		tok;
	double		at;
	double		window;			/* requests in flight allowed (>= 1) */
	int			max_parallel;
	double		pause_until;	/* after a 429: nothing starts before */
	double		last_decrease;	/* when the window last halved */
	double		last_429;		/* when the last 429 came */
	double		last_bound;		/* when a learnt limit last held a call back */
	LlmLimitReason blocked;		/* why the last admit said no */
	double		blocked_since;
	double		wait_seconds[LLM_LIMIT_N_REASONS];	/* summed, for metrics */
	int64_t		rate_limited;	/* 429 answers seen */
	uint64_t	rng;
	bool		initialized;
} LlmRateLimit;

/*
 * (Re)apply the configuration; the first call fills the buckets.  Keeps
 * what was learnt from the provider.
 */
extern void llm_rl_configure(LlmRateLimit *rl, double rpm, double tpm,
							 int max_parallel, double now);

/*
 * May a request of `tokens` start now, with `in_flight` running?  When not,
 * *wait_s is how long until it may (at most 1 s, to look again) and the
 * time blocked is counted under its reason.
 */
extern bool llm_rl_admit(LlmRateLimit *rl, double now, int in_flight,
						 double tokens, double *wait_s);

/* A request of `tokens` starts: debit the buckets. */
extern void llm_rl_sent(LlmRateLimit *rl, double now, double tokens);

/*
 * What an answer announced; a negative value was not sent.  reset_*_s are
 * seconds until the provider's bucket is full again.
 */
extern void llm_rl_announce(LlmRateLimit *rl, double now,
							double limit_req, double limit_tok,
							double remaining_req, double remaining_tok,
							double reset_req_s, double reset_tok_s);

/* Nothing is waiting to start: stop counting the time blocked. */
extern void llm_rl_unblocked(LlmRateLimit *rl, double now);

/* A 2xx answer: the window grows by 1/window. */
extern void llm_rl_success(LlmRateLimit *rl);

/*
 * A 429: halve the window (once a second at most), empty the buckets the
 * provider limits, pause until retry_after_s (or reset_s, or 1 s) plus a
 * jitter of up to a quarter of it.  Returns the pause in seconds: a call
 * retried after it is paced by the buckets, not sent at once.
 */
extern double llm_rl_rate_limited(LlmRateLimit *rl, double now,
								  double retry_after_s, double reset_s);

/* The effective limits (0 = none known). */
extern double llm_rl_rpm(const LlmRateLimit *rl);
extern double llm_rl_tpm(const LlmRateLimit *rl);

/* The label of a reason: "requests", "tokens", "concurrency", "retry_after". */
extern const char *llm_rl_reason_name(LlmLimitReason reason);

/*
 * A duration as OpenAI sends it ("20ms", "1.5s", "6m0s", "1h2m", or plain
 * seconds "12"); -1 when it is not one.
 */
extern double llm_rl_parse_duration(const char *text);

#endif
