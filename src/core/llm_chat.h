/*
 * llm_chat.h: the JSON of one chat completion (SPEC 8), Postgres-free.
 */
#ifndef MANA_AI_LLM_CHAT_H
#define MANA_AI_LLM_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Read choices[0].message.content and usage.total_tokens from an answer
 * body.  On success *content is malloc'd.  Exposed for tests
 * and fuzzing.
 */
extern bool llm_parse_chat_response(const char *body, size_t len,
									char **content, int64_t *total_tokens,
									char *errbuf, size_t errlen);

/* Build the request body {model, temperature, messages}; malloc'd or NULL. */
extern char *llm_build_chat_request(const char *model, double temperature,
									const char *system, const char *user);

#endif
