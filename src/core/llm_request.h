/*
 * llm_request.h: one request of the LLM client and how it ended, the
 * vocabulary that the client's files (llm_client.c, llm_call.c,
 * llm_client_answer.c) and their callers share; Postgres-free.
 *
 * Owns the request and its results, the kinds of failure, and the clock
 * deadlines are measured on.  Must never hold the bearer key: an error
 * text is what a log or a result may show.
 */
#ifndef MANA_AI_LLM_REQUEST_H
#define MANA_AI_LLM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LLM_ERROR_LEN 160

/* Why a call failed, for metrics and for the model fallback. */
typedef enum LlmErrorKind
{
	LLM_ERR_NONE,
	LLM_ERR_CONNECT,			/* refused, unresolvable, dropped after retries */
	LLM_ERR_TIMEOUT,			/* the call's deadline (or the connect timeout) */
	LLM_ERR_HTTP_429,			/* rate limited, after the retries */
	LLM_ERR_HTTP_5XX,			/* server error, after the retries */
	LLM_ERR_TOO_LARGE,			/* answer over max_response_bytes */
	LLM_ERR_BAD_JSON,			/* a 2xx whose body is not a usable answer */
	LLM_ERR_OTHER,				/* 4xx, refused redirect, out of memory */
	LLM_ERR_ABORTED				/* llm_batch_free() while in flight */
} LlmErrorKind;

/* The metric label of a kind: "connect", "timeout", "http_429", ... */
extern const char *llm_error_kind_name(LlmErrorKind kind);

/* True for the kinds after which the next model of a chain is tried. */
extern bool llm_error_kind_falls_back(LlmErrorKind kind);

typedef struct LlmRequest
{
	const char *system;			/* must live until the batch is freed */
	const char *user;
	const char *body;			/* prebuilt request body; NULL: built from
								 * system and user.  Copied when sent. */
	bool		raw;			/* ok: content is the whole answer body */
	double		deadline;		/* llm_monotonic_seconds() the call must end
								 * by; 0: timeout_ms from its first attempt */
	/* results */
	bool		ok;
	char	   *content;		/* malloc'd on success; llm_request_clear() frees */
	int64_t		total_tokens;	/* -1 when the answer has no usage.total_tokens */
	int			http_status;	/* of the last attempt; 0 when none was received */
	int			attempts;
	double		seconds;		/* first attempt start to final result */
	int64_t		bytes_sent;		/* request bodies over all attempts */
	int64_t		bytes_received; /* answer bodies over all attempts */
	char		error[LLM_ERROR_LEN];	/* "" on success; never holds the key */
	LlmErrorKind error_kind;	/* LLM_ERR_NONE on success */
} LlmRequest;

/* The batch that runs requests: opaque outside the client (llm_client.h). */
typedef struct LlmBatch LlmBatch;

/* The clock deadlines are measured on (CLOCK_MONOTONIC, seconds). */
extern double llm_monotonic_seconds(void);

/* Free a request's content and reset its results. */
extern void llm_request_clear(LlmRequest *req);

#endif
