/*
 * llm_call.h: a call of the LLM client and the batch it runs in, as
 * llm_client.c (the state machine), llm_client_answer.c (reading what a
 * transfer brought back) and llm_call.c (how a call ends) share them.
 * Not for other files: they use llm_client.h.
 */
#ifndef MANA_AI_LLM_CALL_H
#define MANA_AI_LLM_CALL_H

#include <curl/curl.h>

#include "llm_ratelimit.h"
#include "llm_request.h"

typedef enum CallState
{
	CS_IDLE,					/* manual_submit: not submitted yet */
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
	double		tokens;			/* estimated, for the limit; 0: not yet */
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
	int		   *queue;			/* FIFO of queued call indexes (ring of ncalls) */
	int			queue_head;
	int			queue_len;
	int			running;
	int			waiting;
	uint64_t	rng;
	LlmRateLimit *limit;		/* borrowed; NULL: no pacing */
	double		gate_wait;		/* s until the limit may admit; 0: none */
};

/* llm_call.c */
extern void llm_call_finish(LlmBatch *b, Call *call, bool ok);
extern void llm_call_fail(LlmBatch *b, Call *call, LlmErrorKind kind,
						  const char *reason);
extern void llm_call_retry(LlmBatch *b, Call *call, LlmErrorKind kind,
						   const char *what, long retry_after_s);

#endif
