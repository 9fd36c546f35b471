/*
 * mock_llm.h: what the two files of the bench's C mock share.
 */
#ifndef MANA_AI_BENCH_MOCK_LLM_H
#define MANA_AI_BENCH_MOCK_LLM_H

#include <stdbool.h>
#include <stddef.h>

/* Tokens are approximated as bytes / 4 (bench/README.md). */
#define BYTES_PER_TOKEN 4.0

/* The value of the compact JSON string after key ("\"model\":\""). */
extern bool mock_find_string(const char *body, const char *key, char *out, size_t len);

/* The malloc'd answer body to a chat request (json or tools protocol). */
extern char *mock_chat_answer(const char *body, const char *model, int prompt_tokens);

/* Per conversation (its user message): tokens in and out, summed. */
extern void mock_conv_add(const char *body, double in, double out);
/* mean and 95th percentile over conversations of in (which 0) or out (1) */
extern void mock_conv_summary(int which, double *mean, double *p95, long *n);
extern void mock_conv_reset(void);

#endif
