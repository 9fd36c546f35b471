/*
 * llm_client.c: chat-completion calls in parallel on libcurl's multi
 * interface (SPEC 8), Postgres-free.
 *
 * Owns the per-call state machine (queued -> running -> waiting for a
 * retry -> ... -> done) and the retry policy; the JSON of a request and
 * an answer is llm_chat.c's.  Every
 * call has its own deadline, counted from its first attempt, that bounds
 * all its attempts and backoff waits; a retry waits in the "waiting"
 * state so it never blocks the other transfers.  Must never follow a
 * redirect, never accept an answer past the size cap, and never copy the
 * bearer key anywhere but the header list it wipes on free.
 */
#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llm_client.h"

#define MAX_POLL_MS 100			/* abort latency bound of llm_client_run */
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 8000

typedef enum CallState
{
	CS_QUEUED,
	CS_RUNNING,
	CS_WAITING,					/* for a retry at retry_at */
	CS_DONE
} CallState;

typedef struct Call
{
	LlmRequest *req;
	CallState	state;
	CURL	   *easy;
	char	   *body;
	char	   *answer;
	size_t		answer_len;
	size_t		answer_cap;
	size_t		answer_limit;
	bool		too_large;
	double		started;		/* monotonic seconds of the first attempt */
	double		deadline;
	double		retry_at;
} Call;

struct LlmBatch
{
	CURLM	   *multi;
	struct curl_slist *headers;
	char	   *endpoint;
	char	   *model;
	double		temperature;
	long		connect_timeout_ms;
	long		timeout_ms;
	size_t		max_response_bytes;
	int			max_parallel;
	int			max_attempts;
	Call	   *calls;
	int			ncalls;
	int			next_queued;
	int			running;
	int			done;
	uint64_t	rng;
};

static bool global_init_done = false;

static double
monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

bool
llm_client_global_init(void)
{
	if (!global_init_done)
		global_init_done = (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
	return global_init_done;
}

void
llm_request_clear(LlmRequest *req)
{
	free(req->content);
	req->content = NULL;
	req->ok = false;
	req->total_tokens = -1;
	req->http_status = 0;
	req->attempts = 0;
	req->seconds = 0;
	req->error[0] = '\0';
}

/* Collect the answer, refusing (and so aborting the transfer) past the cap. */
static size_t
collect_answer(char *data, size_t size, size_t nmemb, void *arg)
{
	Call	   *call = arg;
	size_t		n = size * nmemb;

	if (n > call->answer_limit - call->answer_len)
	{
		call->too_large = true;
		return 0;
	}
	if (call->answer_len + n + 1 > call->answer_cap)
	{
		size_t		cap = call->answer_cap ? call->answer_cap : 16384;
		char	   *grown;

		while (cap < call->answer_len + n + 1)
			cap *= 2;
		grown = realloc(call->answer, cap);
		if (grown == NULL)
			return 0;
		call->answer = grown;
		call->answer_cap = cap;
	}
	memcpy(call->answer + call->answer_len, data, n);
	call->answer_len += n;
	call->answer[call->answer_len] = '\0';
	return n;
}

static void
finish_call(LlmBatch *b, Call *call, bool ok)
{
	call->req->ok = ok;
	call->req->seconds = monotonic_seconds() - call->started;
	call->state = CS_DONE;
	b->done++;
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

static void
fail_call(LlmBatch *b, Call *call, const char *fmt_reason)
{
	snprintf(call->req->error, LLM_ERROR_LEN, "%s", fmt_reason);
	finish_call(b, call, false);
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
	EASY_SETOPT(h, CURLOPT_USERAGENT, "mana_ai/0.1");
	EASY_SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) b->max_response_bytes);
	EASY_SETOPT(h, CURLOPT_WRITEFUNCTION, collect_answer);
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

	if (call->req->attempts == 0)
	{
		call->started = now;
		call->deadline = now + b->timeout_ms / 1000.0;
		call->body = llm_build_chat_request(b->model, b->temperature,
											call->req->system, call->req->user);
		if (call->body == NULL)
			snprintf(call->req->error, LLM_ERROR_LEN, "out of memory preparing the request");
		call->easy = call->body ? new_easy_handle(b, call) : NULL;
		if (call->easy == NULL)
		{
			finish_call(b, call, false);
			return false;
		}
	}
	remaining_ms = (long) ((call->deadline - now) * 1000.0);
	if (remaining_ms <= 0)
	{
		fail_call(b, call, "deadline passed before the retry");
		return false;
	}
	call->answer_len = 0;
	call->too_large = false;
	if (!set_attempt_timeouts(b, call, remaining_ms))
	{
		finish_call(b, call, false);
		return false;
	}
	if (curl_multi_add_handle(b->multi, call->easy) != CURLM_OK)
	{
		fail_call(b, call, "could not start the transfer");
		return false;
	}
	call->req->attempts++;
	call->state = CS_RUNNING;
	b->running++;
	return true;
}

/* Retries first (they hold a running deadline), then queued calls. */
static void
start_ready_calls(LlmBatch *b)
{
	double		now = monotonic_seconds();
	int			i;

	for (i = 0; i < b->ncalls && b->running < b->max_parallel; i++)
	{
		Call	   *call = &b->calls[i];

		if (call->state == CS_WAITING && call->retry_at <= now)
			start_attempt(b, call, now);
	}
	while (b->running < b->max_parallel && b->next_queued < b->ncalls)
		start_attempt(b, &b->calls[b->next_queued++], now);
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
 * or fail the call when attempts or time are used up.
 */
static void
schedule_retry(LlmBatch *b, Call *call, const char *what, long retry_after_s)
{
	double		now = monotonic_seconds();
	double		delay_ms;
	int			shift = call->req->attempts - 1;

	delay_ms = BACKOFF_BASE_MS * (double) (1L << (shift > 10 ? 10 : shift));
	if (delay_ms > BACKOFF_CAP_MS)
		delay_ms = BACKOFF_CAP_MS;
	/* Jitter in [delay/2, delay): calls failing together spread out. */
	delay_ms = delay_ms / 2 + (next_random(b) % 1000) / 1000.0 * delay_ms / 2;
	if (retry_after_s > 0)
		delay_ms = retry_after_s * 1000.0;

	if (call->req->attempts >= b->max_attempts)
	{
		snprintf(call->req->error, LLM_ERROR_LEN, "%s after %d attempts",
				 what, call->req->attempts);
		finish_call(b, call, false);
	}
	else if (now + delay_ms / 1000.0 >= call->deadline)
	{
		snprintf(call->req->error, LLM_ERROR_LEN,
				 "%s; no time left for a retry%s", what,
				 retry_after_s > 0 ? " (Retry-After beyond the deadline)" : "");
		finish_call(b, call, false);
	}
	else
	{
		call->state = CS_WAITING;
		call->retry_at = now + delay_ms / 1000.0;
	}
}

/* Describe a refused redirect by its target's scheme only. */
static void
refuse_redirect(LlmBatch *b, Call *call, long status)
{
	char	   *target = NULL;
	char		scheme[16] = "?";
	size_t		i;

	curl_easy_getinfo(call->easy, CURLINFO_REDIRECT_URL, &target);
	if (target)
	{
		for (i = 0; i + 1 < sizeof(scheme) && target[i] &&
			 ((target[i] >= 'a' && target[i] <= 'z') ||
			  (target[i] >= 'A' && target[i] <= 'Z') ||
			  (target[i] >= '0' && target[i] <= '9') || target[i] == '+' ||
			  target[i] == '-' || target[i] == '.'); i++)
			scheme[i] = target[i];
		scheme[i] = '\0';
	}
	snprintf(call->req->error, LLM_ERROR_LEN,
			 "redirect refused: HTTP %ld to %s:// (only http and https, and redirects are not followed)",
			 status, scheme);
	finish_call(b, call, false);
}

static void
handle_transport_error(LlmBatch *b, Call *call, CURLcode rc)
{
	char		reason[LLM_ERROR_LEN];

	if (call->too_large || rc == CURLE_FILESIZE_EXCEEDED)
	{
		snprintf(reason, sizeof(reason), "answer larger than %zu bytes refused",
				 b->max_response_bytes);
		fail_call(b, call, reason);
	}
	else if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		snprintf(reason, sizeof(reason), "timed out after %.1f s (%s)",
				 monotonic_seconds() - call->started,
				 monotonic_seconds() >= call->deadline - 0.05 ? "deadline" : "connect timeout");
		fail_call(b, call, reason);
	}
	else if (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
			 rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE)
	{
		/* The server dropped the connection: transient, worth a retry. */
		snprintf(reason, sizeof(reason), "connection dropped (%s)", curl_easy_strerror(rc));
		schedule_retry(b, call, reason, 0);
	}
	else
	{
		snprintf(reason, sizeof(reason), "transport error: %s", curl_easy_strerror(rc));
		fail_call(b, call, reason);
	}
}

static void
handle_http_answer(LlmBatch *b, Call *call, long status)
{
	char		reason[LLM_ERROR_LEN];

	if (status >= 200 && status < 300)
	{
		if (llm_parse_chat_response(call->answer ? call->answer : "", call->answer_len,
									&call->req->content, &call->req->total_tokens,
									call->req->error, LLM_ERROR_LEN))
			finish_call(b, call, true);
		else
			finish_call(b, call, false);
	}
	else if (status >= 300 && status < 400)
		refuse_redirect(b, call, status);
	else if (status == 429 || status >= 500)
	{
		curl_off_t	retry_after = 0;

		if (status == 429)
			curl_easy_getinfo(call->easy, CURLINFO_RETRY_AFTER, &retry_after);
		snprintf(reason, sizeof(reason), "HTTP %ld%s", status,
				 status == 429 ? " (rate limited)" : "");
		schedule_retry(b, call, reason, (long) retry_after);
	}
	else
	{
		snprintf(reason, sizeof(reason), "HTTP %ld from the LLM endpoint", status);
		fail_call(b, call, reason);
	}
}

static void
collect_finished(LlmBatch *b)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(b->multi, &left)) != NULL)
	{
		Call	   *call = NULL;
		CURLcode	rc = msg->data.result;
		long		status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &call);
		curl_multi_remove_handle(b->multi, msg->easy_handle);
		b->running--;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		call->req->http_status = (int) status;
		if (rc != CURLE_OK)
			handle_transport_error(b, call, rc);
		else
			handle_http_answer(b, call, status);
	}
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
	ulen = strlen(cfg->url);
	while (ulen > 0 && cfg->url[ulen - 1] == '/')
		ulen--;
	b->endpoint = malloc(ulen + sizeof(LLM_CHAT_PATH));
	b->model = strdup(cfg->model ? cfg->model : "");
	b->multi = curl_multi_init();
	if (!b->calls || !b->endpoint || !b->model || !b->multi)
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
		b->calls[i].state = CS_QUEUED;
		b->calls[i].answer_limit = b->max_response_bytes;
	}
	return b;

oom:
	snprintf(errbuf, errlen, "out of memory preparing the LLM batch");
	llm_batch_free(b);
	return NULL;
}

bool
llm_batch_step(LlmBatch *b, int max_wait_ms)
{
	int			still = 0;
	int			wait_ms = max_wait_ms;
	double		now;
	int			i;

	start_ready_calls(b);
	if (b->done == b->ncalls)
		return true;

	/* Wake up in time for the earliest retry. */
	now = monotonic_seconds();
	for (i = 0; i < b->ncalls; i++)
		if (b->calls[i].state == CS_WAITING)
		{
			int			until = (int) ((b->calls[i].retry_at - now) * 1000.0) + 1;

			if (until < wait_ms)
				wait_ms = until < 0 ? 0 : until;
		}

	curl_multi_perform(b->multi, &still);
	collect_finished(b);
	if (b->done == b->ncalls)
		return true;
	if (b->running > 0)
		curl_multi_poll(b->multi, NULL, 0, wait_ms, NULL);
	else if (wait_ms > 0)
	{
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	curl_multi_perform(b->multi, &still);
	collect_finished(b);
	start_ready_calls(b);
	return b->done == b->ncalls;
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
		if (call->state != CS_DONE)
		{
			if (call->req->attempts == 0)
				call->started = monotonic_seconds();
			snprintf(call->req->error, LLM_ERROR_LEN, "aborted");
			finish_call(b, call, false);
		}
	}
	if (b->multi)
		curl_multi_cleanup(b->multi);
	/* The Authorization line lives in this list: wipe before freeing. */
	for (h = b->headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(b->headers);
	free(b->calls);
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
