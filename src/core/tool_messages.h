/*
 * tool_messages.h: the messages and request body of one tools-protocol
 * round, Postgres-free.
 *
 * Owns the conversation the loop sends back to the model:
 *   [{role:"system"}, {role:"user"},
 *    {role:"assistant", content, tool_calls:[{id, type:"function",
 *                                  function:{name, arguments}}]},
 *    {role:"tool", tool_call_id, content}, ...]
 * and the body {model, temperature, messages, tools, tool_choice:"auto"}.
 * The assistant message is rebuilt from the validated calls, never copied
 * from the answer, and every call of it gets exactly one tool message.
 * Never includes a PostgreSQL header.
 */
#ifndef MANA_AI_TOOL_MESSAGES_H
#define MANA_AI_TOOL_MESSAGES_H

#include <stdbool.h>

#include <json-c/json.h>

#include "tool_calls.h"

/* [{role:"system", content}, {role:"user", content}]; new reference. */
extern json_object *tool_messages_initial(const char *system, const char *user);

/* {role:"assistant", content (null when none), tool_calls?}; new reference. */
extern json_object *tool_message_assistant(const ToolResponse *res);

/*
 * {role:"tool", tool_call_id, content}: TOOL_CALLS_RECORDED for a valid
 * call, its error text for an invalid one; new reference.
 */
extern json_object *tool_message_reply(const ToolCall *call);

/*
 * Append the assistant message and one tool message per call to the
 * messages array.  false when messages is not an array.
 */
extern bool tool_messages_append_round(json_object *messages,
									   const ToolResponse *res);

/*
 * The request body as malloc'd JSON text: model, temperature (a short
 * decimal, as llm_build_chat_request writes it), messages, and - when
 * tools is a non-empty array - tools with tool_choice "auto" (an empty
 * tools array is refused by OpenAI, so it is left out).  The arrays are
 * not consumed.  NULL when out of memory.
 */
extern char *tool_request_body(const char *model, double temperature,
							   json_object *messages, json_object *tools);

/*
 * tool_request_body with the tools given also as their JSON text (valid
 * JSON of that same array, e.g. the text it was parsed from), which is
 * sent as it is instead of being serialised again.
 */
extern char *tool_request_body_text(const char *model, double temperature,
									json_object *messages, json_object *tools,
									const char *tools_text);

#endif
