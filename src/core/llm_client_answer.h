/*
 * llm_client_answer.h: reading what a transfer of the LLM client brought
 * back (llm_client_answer.c), for the state machine in llm_client.c.
 * Not for other files: they use llm_client.h.
 */
#ifndef MANA_AI_LLM_CLIENT_ANSWER_H
#define MANA_AI_LLM_CLIENT_ANSWER_H

#include <stddef.h>

#include "llm_request.h"

/* libcurl's write callback: collect the answer under its size cap (arg: the Call). */
extern size_t llm_collect_answer(char *data, size_t size, size_t nmemb, void *arg);

/* Judge every transfer that has finished, and end or retry its call. */
extern void llm_collect_finished(LlmBatch *b);

#endif
