/*
 * llm_request.c: one request of the LLM client and how it ended
 * (llm_request.h), Postgres-free.
 *
 * Owns clearing a request's results, the names of the failure kinds (the
 * metric labels) and which of them send a call to the next model of a
 * chain, and the monotonic clock every deadline is measured on.  Must
 * never free what the caller owns: only the content the client
 * allocated.
 */
#include <stdlib.h>
#include <time.h>

#include "llm_request.h"

double
llm_monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
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
	req->bytes_sent = 0;
	req->bytes_received = 0;
	req->error[0] = '\0';
	req->error_kind = LLM_ERR_NONE;
}

const char *
llm_error_kind_name(LlmErrorKind kind)
{
	switch (kind)
	{
		case LLM_ERR_NONE:
			return "none";
		case LLM_ERR_CONNECT:
			return "connect";
		case LLM_ERR_TIMEOUT:
			return "timeout";
		case LLM_ERR_HTTP_429:
			return "http_429";
		case LLM_ERR_HTTP_5XX:
			return "http_5xx";
		case LLM_ERR_TOO_LARGE:
			return "too_large";
		case LLM_ERR_BAD_JSON:
			return "bad_json";
		case LLM_ERR_ABORTED:
			return "aborted";
		case LLM_ERR_OTHER:
			break;
	}
	return "other";
}

bool
llm_error_kind_falls_back(LlmErrorKind kind)
{
	return kind == LLM_ERR_CONNECT || kind == LLM_ERR_TIMEOUT ||
		kind == LLM_ERR_HTTP_429 || kind == LLM_ERR_HTTP_5XX;
}
