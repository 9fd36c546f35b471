/*
 * llm_client.c: chat-completion calls in parallel on libcurl's multi
 * interface (SPEC 8), Postgres-free.
 *
 * Owns the per-call state machine (idle -> queued -> running -> waiting
 * for a retry -> ... -> done, and queued again for a conversation's next
 * round); what a finished transfer brought back is judged in
 * llm_client_answer.c, how a call ends (and the retry policy) is
 * llm_call.c's, the JSON of a request and an answer llm_chat.c's.  Every call has its own deadline, counted from its first
 * attempt or given by the caller, that bounds all its attempts and
 * backoff waits; a retry waits in the "waiting" state so it never blocks
 * the other transfers.  Must never follow a redirect, never accept an
 * answer past the size cap, and never copy the bearer key anywhere but
 * the header list it wipes on free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llm_call.h"
#include "llm_client.h"
#include "llm_client_answer.h"

/* The release, from mana_ai.control (Makefile); unit and fuzz builds say "dev". */
#ifndef MANA_AI_VERSION
#define MANA_AI_VERSION "dev"
#endif

#define MAX_POLL_MS 100			/* abort latency bound of llm_client_run */

static bool global_init_done = false;

bool
llm_client_global_init(void)
{
	if (!global_init_done)
		global_init_done = (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
	return global_init_done;
}

/*
 * curl_easy_setopt on h; on failure name the option in call's error and
 * leave the function (a transfer missing an option, say the size cap or
 * "no redirects", must not run).
 */
#define EASY_SETOPT(h, opt, val) \
	do { \
		CURLcode	setopt_rc_ = curl_easy_setopt((h), (opt), (val)); \
		if (setopt_rc_ != CURLE_OK) \
		{ \
			snprintf(call->req->error, LLM_ERROR_LEN, "could not set %s on the transfer: %s", \
					 #opt, curl_easy_strerror(setopt_rc_)); \
			goto setopt_failed; \
		} \
	} while (0)

/* NULL with call->req->error set when the handle cannot be set up. */
static CURL *
new_easy_handle(LlmBatch *b, Call *call)
{
	CURL	   *h = curl_easy_init();

	if (h == NULL)
	{
		snprintf(call->req->error, LLM_ERROR_LEN, "out of memory preparing the request");
		return NULL;
	}
	EASY_SETOPT(h, CURLOPT_URL, b->endpoint);
	EASY_SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
	EASY_SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	EASY_SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	EASY_SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	EASY_SETOPT(h, CURLOPT_POST, 1L);
	EASY_SETOPT(h, CURLOPT_POSTFIELDS, call->body);
	EASY_SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(call->body));
	EASY_SETOPT(h, CURLOPT_HTTPHEADER, b->headers);
	EASY_SETOPT(h, CURLOPT_USERAGENT, "mana_ai/" MANA_AI_VERSION);
	EASY_SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) b->max_response_bytes);
	EASY_SETOPT(h, CURLOPT_WRITEFUNCTION, llm_collect_answer);
	EASY_SETOPT(h, CURLOPT_WRITEDATA, call);
	EASY_SETOPT(h, CURLOPT_PRIVATE, call);
	return h;

setopt_failed:
	curl_easy_cleanup(h);
	return NULL;
}

/* The per-attempt timeouts; false (call's error set) when one is refused. */
static bool
set_attempt_timeouts(LlmBatch *b, Call *call, long remaining_ms)
{
	EASY_SETOPT(call->easy, CURLOPT_TIMEOUT_MS, remaining_ms);
	EASY_SETOPT(call->easy, CURLOPT_CONNECTTIMEOUT_MS,
				remaining_ms < b->connect_timeout_ms ? remaining_ms : b->connect_timeout_ms);
	return true;

setopt_failed:
	return false;
}

/* Start (or restart) one attempt; false when it finished the call instead. */
static bool
start_attempt(LlmBatch *b, Call *call, double now)
{
	long		remaining_ms;

	if (call->state == CS_WAITING)
		b->waiting--;
	if (call->req->attempts == 0)
	{
		call->started = now;
		call->deadline = call->req->deadline > 0 ? call->req->deadline :
			now + b->timeout_ms / 1000.0;
		call->body = call->req->body ? strdup(call->req->body) :
			llm_build_chat_request(b->model, b->temperature,
								   call->req->system, call->req->user);
		if (call->body == NULL)
			snprintf(call->req->error, LLM_ERROR_LEN, "out of memory preparing the request");
		call->easy = call->body ? new_easy_handle(b, call) : NULL;
		if (call->easy == NULL)
		{
			call->req->error_kind = LLM_ERR_OTHER;
			llm_call_finish(b, call, false);
			return false;
		}
	}
	remaining_ms = (long) ((call->deadline - now) * 1000.0);
	if (remaining_ms <= 0)
	{
		llm_call_fail(b, call, LLM_ERR_TIMEOUT,
					  call->req->attempts == 0 ? "deadline passed before the call could start" :
					  "deadline passed before the retry");
		return false;
	}
	call->answer_len = 0;
	call->too_large = false;
	if (!set_attempt_timeouts(b, call, remaining_ms))
	{
		call->req->error_kind = LLM_ERR_OTHER;
		llm_call_finish(b, call, false);
		return false;
	}
	if (curl_multi_add_handle(b->multi, call->easy) != CURLM_OK)
	{
		llm_call_fail(b, call, LLM_ERR_OTHER, "could not start the transfer");
		return false;
	}
	call->req->attempts++;
	call->req->bytes_sent += strlen(call->body);
	call->state = CS_RUNNING;
	b->running++;
	return true;
}

/*
 * Whether the provider's limits let call start now (then its tokens are
 * debited); when not, b->gate_wait says when to look again.
 */
static bool
limit_admits(LlmBatch *b, Call *call, double now)
{
	double		wait = 0;

	if (b->limit == NULL)
		return true;
	if (call->tokens <= 0)
	{
		const LlmRequest *r = call->req;
		size_t		bytes = call->body ? strlen(call->body) : r->body ? strlen(r->body) :
			(r->system ? strlen(r->system) : 0) + (r->user ? strlen(r->user) : 0) + 128;

		call->tokens = (double) bytes / LLM_BYTES_PER_TOKEN + 1;
	}
	if (!llm_rl_admit(b->limit, now, b->running, call->tokens, &wait))
	{
		b->gate_wait = wait;
		return false;
	}
	llm_rl_sent(b->limit, now, call->tokens);
	return true;
}

/* Retries first (they hold a running deadline), then queued calls in order. */
static void
start_ready_calls(LlmBatch *b)
{
	double		now = llm_monotonic_seconds();
	bool		blocked = false;
	int			i;

	b->gate_wait = 0;
	for (i = 0; b->waiting > 0 && i < b->ncalls && b->running < b->max_parallel && !blocked; i++)
	{
		Call	   *call = &b->calls[i];

		if (call->state == CS_WAITING && call->retry_at <= now)
		{
			if (!limit_admits(b, call, now))
				blocked = true;
			else
				start_attempt(b, call, now);
		}
	}
	while (!blocked && b->running < b->max_parallel && b->queue_len > 0)
	{
		Call	   *call = &b->calls[b->queue[b->queue_head]];

		if (!limit_admits(b, call, now))
			break;
		b->queue_head = (b->queue_head + 1) % b->ncalls;
		b->queue_len--;
		start_attempt(b, call, now);
	}
	if (b->limit && b->gate_wait == 0)
		llm_rl_unblocked(b->limit, now);
}

static void
enqueue(LlmBatch *b, int i)
{
	b->queue[(b->queue_head + b->queue_len) % b->ncalls] = i;
	b->queue_len++;
	b->calls[i].state = CS_QUEUED;
}

LlmBatch *
llm_batch_create(const LlmClientConfig *cfg, LlmRequest *reqs, int n,
				 char *errbuf, size_t errlen)
{
	LlmBatch   *b;
	size_t		ulen;
	CURLMcode	mrc;
	int			i;

	if (!llm_client_global_init())
	{
		snprintf(errbuf, errlen, "could not initialize libcurl");
		return NULL;
	}
	if (cfg->url == NULL || (strncmp(cfg->url, "http://", 7) != 0 &&
							 strncmp(cfg->url, "https://", 8) != 0))
	{
		snprintf(errbuf, errlen, "LLM URL must start with http:// or https://");
		return NULL;
	}
	b = calloc(1, sizeof(LlmBatch));
	if (b == NULL)
		goto oom;
	b->calls = calloc(n > 0 ? n : 1, sizeof(Call));
	b->queue = calloc(n > 0 ? n : 1, sizeof(int));
	ulen = strlen(cfg->url);
	while (ulen > 0 && cfg->url[ulen - 1] == '/')
		ulen--;
	b->endpoint = malloc(ulen + sizeof(LLM_CHAT_PATH));
	b->model = strdup(cfg->model ? cfg->model : "");
	b->multi = curl_multi_init();
	if (!b->calls || !b->queue || !b->endpoint || !b->model || !b->multi)
		goto oom;
	memcpy(b->endpoint, cfg->url, ulen);
	memcpy(b->endpoint + ulen, LLM_CHAT_PATH, sizeof(LLM_CHAT_PATH));

	b->headers = curl_slist_append(NULL, "Content-Type: application/json");
	b->headers = curl_slist_append(b->headers, "Expect:");
	if (cfg->api_key && cfg->api_key[0])
	{
		size_t		hlen = strlen(cfg->api_key) + sizeof("Authorization: Bearer ");
		char	   *line = malloc(hlen);
		struct curl_slist *with_key;

		if (line == NULL)
			goto oom;
		snprintf(line, hlen, "Authorization: Bearer %s", cfg->api_key);
		with_key = curl_slist_append(b->headers, line);
		explicit_bzero(line, hlen);
		free(line);
		if (with_key == NULL)
			goto oom;
		b->headers = with_key;
	}
	if (b->headers == NULL)
		goto oom;

	b->temperature = cfg->temperature;
	b->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
	b->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 60000;
	b->max_response_bytes = cfg->max_response_bytes > 0 ? cfg->max_response_bytes : 1024 * 1024;
	b->max_parallel = cfg->max_parallel > 0 ? cfg->max_parallel : 1;
	b->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : LLM_DEFAULT_MAX_ATTEMPTS;
	b->limit = cfg->limit;
	b->rng = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32) ^ (uintptr_t) b;
	if (b->rng == 0)
		b->rng = 88172645463325252ULL;
	/* Reuse connections but keep at most max_parallel of them busy. */
	mrc = curl_multi_setopt(b->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) b->max_parallel);
	if (mrc != CURLM_OK)
	{
		snprintf(errbuf, errlen, "could not set CURLMOPT_MAX_TOTAL_CONNECTIONS: %s",
				 curl_multi_strerror(mrc));
		llm_batch_free(b);
		return NULL;
	}

	b->ncalls = n;
	for (i = 0; i < n; i++)
	{
		reqs[i].content = NULL;
		llm_request_clear(&reqs[i]);
		b->calls[i].req = &reqs[i];
		b->calls[i].state = CS_IDLE;
		b->calls[i].answer_limit = b->max_response_bytes;
		if (!cfg->manual_submit)
			enqueue(b, i);
	}
	return b;

oom:
	snprintf(errbuf, errlen, "out of memory preparing the LLM batch");
	llm_batch_free(b);
	return NULL;
}

void
llm_batch_submit(LlmBatch *b, int i)
{
	Call	   *call;

	if (i < 0 || i >= b->ncalls)
		return;
	call = &b->calls[i];
	if (call->state != CS_IDLE && call->state != CS_DONE)
		return;
	llm_request_clear(call->req);
	call->tokens = 0;
	enqueue(b, i);
}

bool
llm_batch_call_done(LlmBatch *b, int i)
{
	return i >= 0 && i < b->ncalls && b->calls[i].state == CS_DONE;
}

static bool
batch_idle(LlmBatch *b)
{
	return b->queue_len == 0 && b->running == 0 && b->waiting == 0;
}

bool
llm_batch_step(LlmBatch *b, int max_wait_ms)
{
	int			still = 0;
	int			wait_ms = max_wait_ms;
	double		now;
	int			i;

	start_ready_calls(b);
	if (batch_idle(b))
		return true;

	/* Wake up in time for the earliest retry, or when the limit admits. */
	now = llm_monotonic_seconds();
	if (b->gate_wait > 0 && b->gate_wait * 1000.0 + 1 < wait_ms)
		wait_ms = (int) (b->gate_wait * 1000.0) + 1;
	for (i = 0; b->waiting > 0 && i < b->ncalls; i++)
		/* a retry already due but held by the limit waits for the limit */
		if (b->calls[i].state == CS_WAITING &&
			(b->gate_wait == 0 || b->calls[i].retry_at > now))
		{
			int			until = (int) ((b->calls[i].retry_at - now) * 1000.0) + 1;

			if (until < wait_ms)
				wait_ms = until < 0 ? 0 : until;
		}

	curl_multi_perform(b->multi, &still);
	llm_collect_finished(b);
	if (batch_idle(b))
		return true;
	if (b->running > 0)
		curl_multi_poll(b->multi, NULL, 0, wait_ms, NULL);
	else if (wait_ms > 0)
	{
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	curl_multi_perform(b->multi, &still);
	llm_collect_finished(b);
	start_ready_calls(b);
	return batch_idle(b);
}

void
llm_batch_free(LlmBatch *b)
{
	struct curl_slist *h;
	int			i;

	if (b == NULL)
		return;
	for (i = 0; b->calls && i < b->ncalls; i++)
	{
		Call	   *call = &b->calls[i];

		if (call->state == CS_RUNNING)
			curl_multi_remove_handle(b->multi, call->easy);
		if (call->state != CS_DONE && call->req != NULL)
		{
			if (call->req->attempts == 0)
				call->started = llm_monotonic_seconds();
			llm_call_fail(b, call, LLM_ERR_ABORTED, "aborted");
		}
	}
	if (b->multi)
		curl_multi_cleanup(b->multi);
	/* The Authorization line lives in this list: wipe before freeing. */
	for (h = b->headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(b->headers);
	free(b->calls);
	free(b->queue);
	free(b->endpoint);
	free(b->model);
	free(b);
}

int
llm_client_run(const LlmClientConfig *cfg, LlmRequest *reqs, int n,
			   LlmAbortCallback abort_cb, void *abort_arg)
{
	char		err[LLM_ERROR_LEN];
	LlmBatch   *b = llm_batch_create(cfg, reqs, n, err, sizeof(err));
	bool		finished = false;
	int			i;

	if (b == NULL)
	{
		for (i = 0; i < n; i++)
		{
			reqs[i].content = NULL;
			llm_request_clear(&reqs[i]);
			snprintf(reqs[i].error, LLM_ERROR_LEN, "%s", err);
		}
		return -1;
	}
	while (!finished)
	{
		if (abort_cb && abort_cb(abort_arg))
			break;
		finished = llm_batch_step(b, MAX_POLL_MS);
	}
	llm_batch_free(b);
	return finished ? 0 : 1;
}
