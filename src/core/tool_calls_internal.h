/*
 * tool_calls_internal.h: what tool_calls.c and tool_response.c share;
 * not an API for anyone else.
 */
#ifndef MANA_AI_TOOL_CALLS_INTERNAL_H
#define MANA_AI_TOOL_CALLS_INTERNAL_H

#include "tool_calls.h"

/* A fresh, ok result with no tokens known. */
extern void tool_response_init(ToolResponse *out);

/* Mark the whole answer refused with a reason code and a human detail. */
extern void tool_response_fail(ToolResponse *out, const char *reason, const char *detail);

/* Check every entry of a message's tool_calls (NULL: none) into out. */
extern bool tool_calls_check_all(json_object *tool_calls, json_object *offered,
								 ToolResponse *out);

#endif
