/*
 * llm_call.c: how a call of the LLM client ends, Postgres-free: done,
 * failed, or waiting for another attempt after a backoff.
 *
 * Owns the retry policy: exponential backoff from 250 ms, capped at 8 s,
 * with jitter so calls failing together spread out, or the server's
 * Retry-After plus up to a quarter of it; no attempt past the call's
 * attempts or its deadline.  Both the state machine (llm_client.c) and
 * the answer's reader (llm_client_answer.c) end calls through here.  Must
 * never put the bearer key into an error text, and never leave a
 * finished call holding its transfer, body or answer.
 */
#include <stdio.h>
#include <stdlib.h>

#include "llm_call.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 8000

void
llm_call_finish(LlmBatch *b, Call *call, bool ok)
{
	call->req->ok = ok;
	call->req->seconds = llm_monotonic_seconds() - call->started;
	call->state = CS_DONE;
	if (call->easy)
	{
		curl_easy_cleanup(call->easy);
		call->easy = NULL;
	}
	free(call->body);
	call->body = NULL;
	free(call->answer);
	call->answer = NULL;
	call->answer_len = call->answer_cap = 0;
}

void
llm_call_fail(LlmBatch *b, Call *call, LlmErrorKind kind, const char *reason)
{
	snprintf(call->req->error, LLM_ERROR_LEN, "%s", reason);
	call->req->error_kind = kind;
	llm_call_finish(b, call, false);
}

static uint64_t
next_random(LlmBatch *b)
{
	/* xorshift64*: jitter only, not security. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ULL;
}

/*
 * Schedule another attempt after a backoff (or the server's Retry-After),
 * or fail the call (as kind) when attempts or time are used up.
 */
void
llm_call_retry(LlmBatch *b, Call *call, LlmErrorKind kind, const char *what,
			   long retry_after_s)
{
	double		now = llm_monotonic_seconds();
	double		delay_ms;
	int			shift = call->req->attempts - 1;

	delay_ms = BACKOFF_BASE_MS * (double) (1L << (shift > 10 ? 10 : shift));
	if (delay_ms > BACKOFF_CAP_MS)
		delay_ms = BACKOFF_CAP_MS;
	/* Jitter in [delay/2, delay): calls failing together spread out. */
	delay_ms = delay_ms / 2 + (next_random(b) % 1000) / 1000.0 * delay_ms / 2;
	/* Never in lockstep: Retry-After plus up to a quarter of it. */
	if (retry_after_s > 0)
		delay_ms = retry_after_s * 1000.0 * (1.0 + (next_random(b) % 1000) / 4000.0);

	call->req->error_kind = kind;
	if (call->req->attempts >= b->max_attempts)
	{
		snprintf(call->req->error, LLM_ERROR_LEN, "%s after %d attempts",
				 what, call->req->attempts);
		llm_call_finish(b, call, false);
	}
	else if (now + delay_ms / 1000.0 >= call->deadline)
	{
		snprintf(call->req->error, LLM_ERROR_LEN,
				 "%s; no time left for a retry%s", what,
				 retry_after_s > 0 ? " (Retry-After beyond the deadline)" : "");
		llm_call_finish(b, call, false);
	}
	else
	{
		call->state = CS_WAITING;
		call->retry_at = now + delay_ms / 1000.0;
		b->waiting++;
	}
}
