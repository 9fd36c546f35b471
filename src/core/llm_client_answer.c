/*
 * llm_client_answer.c: what one finished transfer of the LLM client
 * brought back (SPEC 8), Postgres-free.
 *
 * Owns collecting the answer under its size cap, judging a transfer's
 * outcome (a 2xx answer, a refused redirect, a status worth a retry, a
 * transport error) and the kind of each failure, for the metrics and the
 * model fallback (llm_request.c names them).  The state machine that
 * calls it is llm_client.c's; it ends each call through llm_call.c.  Must
 * never accept an answer past the cap, never echo a redirect target
 * beyond its scheme, and never put the bearer key into an error text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_call.h"
#include "llm_chat.h"
#include "llm_client_answer.h"

/* Collect the answer, refusing (and so aborting the transfer) past the cap. */
size_t
llm_collect_answer(char *data, size_t size, size_t nmemb, void *arg)
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

/* Describe a refused redirect by its target's scheme only. */
static void
refuse_redirect(LlmBatch *b, Call *call, long status)
{
	char	   *target = NULL;
	char		scheme[16] = "?";
	char		reason[LLM_ERROR_LEN];
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
	snprintf(reason, sizeof(reason),
			 "redirect refused: HTTP %ld to %s:// (only http and https, and redirects are not followed)",
			 status, scheme);
	llm_call_fail(b, call, LLM_ERR_OTHER, reason);
}

static void
handle_transport_error(LlmBatch *b, Call *call, CURLcode rc)
{
	char		reason[LLM_ERROR_LEN];
	double		now = llm_monotonic_seconds();

	if (call->too_large || rc == CURLE_FILESIZE_EXCEEDED)
	{
		snprintf(reason, sizeof(reason), "answer larger than %zu bytes refused",
				 b->max_response_bytes);
		llm_call_fail(b, call, LLM_ERR_TOO_LARGE, reason);
	}
	else if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		snprintf(reason, sizeof(reason), "timed out after %.1f s (%s)",
				 now - call->started,
				 now >= call->deadline - 0.05 ? "deadline" : "connect timeout");
		llm_call_fail(b, call, LLM_ERR_TIMEOUT, reason);
	}
	else if (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
			 rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE)
	{
		/* The server dropped the connection: transient, worth a retry. */
		snprintf(reason, sizeof(reason), "connection dropped (%s)", curl_easy_strerror(rc));
		llm_call_retry(b, call, LLM_ERR_CONNECT, reason, 0);
	}
	else
	{
		snprintf(reason, sizeof(reason), "transport error: %s", curl_easy_strerror(rc));
		llm_call_fail(b, call, rc == CURLE_OUT_OF_MEMORY ? LLM_ERR_OTHER : LLM_ERR_CONNECT,
					  reason);
	}
}

/* A 2xx: the raw body, or its content as llm_chat.c reads it. */
static void
take_answer(LlmBatch *b, Call *call)
{
	LlmRequest *req = call->req;

	if (req->raw)
	{
		req->content = call->answer;
		call->answer = NULL;
		call->answer_len = call->answer_cap = 0;
		if (req->content == NULL)
			req->content = strdup("");
		if (req->content == NULL)
			llm_call_fail(b, call, LLM_ERR_OTHER, "out of memory reading the answer");
		else
			llm_call_finish(b, call, true);
	}
	else if (llm_parse_chat_response(call->answer ? call->answer : "", call->answer_len,
									 &req->content, &req->total_tokens,
									 req->error, LLM_ERROR_LEN))
		llm_call_finish(b, call, true);
	else
	{
		req->error_kind = LLM_ERR_BAD_JSON;
		llm_call_finish(b, call, false);
	}
}

/* A rate-limit header's value as a number (durations in seconds); -1: none. */
static double
limit_header(Call *call, const char *name, bool duration)
{
	struct curl_header *h = NULL;
	char	   *end;
	double		v;

	if (curl_easy_header(call->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || h == NULL)
		return -1;
	if (duration)
		return llm_rl_parse_duration(h->value);
	v = strtod(h->value, &end);
	return end != h->value ? v : -1;
}

/* What the answer says about the provider's limits (any status). */
static double
read_limits(LlmBatch *b, Call *call, double now)
{
	double		reset_req = limit_header(call, "x-ratelimit-reset-requests", true);
	double		reset_tok = limit_header(call, "x-ratelimit-reset-tokens", true);

	llm_rl_announce(b->limit, now,
					limit_header(call, "x-ratelimit-limit-requests", false),
					limit_header(call, "x-ratelimit-limit-tokens", false),
					limit_header(call, "x-ratelimit-remaining-requests", false),
					limit_header(call, "x-ratelimit-remaining-tokens", false),
					reset_req, reset_tok);
	return reset_req > reset_tok ? reset_req : reset_tok;
}

static void
handle_http_answer(LlmBatch *b, Call *call, long status)
{
	char		reason[LLM_ERROR_LEN];
	double		reset = -1;

	if (b->limit)
	{
		reset = read_limits(b, call, llm_monotonic_seconds());
		if (status >= 200 && status < 300)
			llm_rl_success(b->limit);
	}

	if (status >= 200 && status < 300)
		take_answer(b, call);
	else if (status >= 300 && status < 400)
		refuse_redirect(b, call, status);
	else if (status == 429 || status >= 500)
	{
		curl_off_t	retry_after = 0;

		if (status == 429)
			curl_easy_getinfo(call->easy, CURLINFO_RETRY_AFTER, &retry_after);
		/* With a limit, every call waits for its pause; the retry then
		 * goes through the buckets, one after the other. */
		if (status == 429 && b->limit)
			retry_after = (curl_off_t) ceil(llm_rl_rate_limited(b->limit, llm_monotonic_seconds(),
																(double) retry_after, reset));
		snprintf(reason, sizeof(reason), "HTTP %ld%s", status,
				 status == 429 ? " (rate limited)" : "");
		llm_call_retry(b, call, status == 429 ? LLM_ERR_HTTP_429 : LLM_ERR_HTTP_5XX,
					   reason, (long) retry_after);
	}
	else
	{
		snprintf(reason, sizeof(reason), "HTTP %ld from the LLM endpoint", status);
		llm_call_fail(b, call, LLM_ERR_OTHER, reason);
	}
}

void
llm_collect_finished(LlmBatch *b)
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
		call->req->bytes_received += call->answer_len;
		if (rc != CURLE_OK)
			handle_transport_error(b, call, rc);
		else
			handle_http_answer(b, call, status);
	}
}
