/*
 * tool_response.c: read one chat-completions answer of the tools protocol.
 *
 * Owns the answer's shape: choices[0].message (content, tool_calls),
 * finish_reason and usage, within a size cap; the calls themselves are
 * checked by tool_calls.c.  Must never crash or allocate without bound on
 * hostile input, never keep a value jsonb could not store, and never
 * include a PostgreSQL header.
 */
#include "tool_calls.h"
#include "tool_calls_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm_tokens.h"
#include "tool_json.h"

static int64_t
usage_count(json_object *usage, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(usage, key, &v) ||
		!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		json_object_get_int64(v) == INT64_MAX)
		return -1;
	return json_object_get_int64(v);
}

static void
read_usage(json_object *root, ToolResponse *out)
{
	json_object *usage = NULL;

	if (!json_object_object_get_ex(root, "usage", &usage) ||
		!json_object_is_type(usage, json_type_object))
		return;
	out->prompt_tokens = llm_tokens_clamp_round(usage_count(usage, "prompt_tokens"));
	out->completion_tokens = llm_tokens_clamp_round(usage_count(usage, "completion_tokens"));
	out->total_tokens = llm_tokens_clamp_round(usage_count(usage, "total_tokens"));
	if (out->total_tokens < 0 && out->prompt_tokens >= 0 && out->completion_tokens >= 0)
		out->total_tokens = llm_tokens_add(out->prompt_tokens, out->completion_tokens,
										   LLM_MAX_TOKENS_PER_ROUND);
}

/* choices[0].message, or NULL after fail(). */
static json_object *
first_message(json_object *root, json_object **choice, ToolResponse *out)
{
	json_object *choices = NULL;
	json_object *msg = NULL;

	if (!json_object_is_type(root, json_type_object))
		tool_response_fail(out, "not-an-object", "the answer is not a JSON object");
	else if (!json_object_object_get_ex(root, "choices", &choices) ||
			 !json_object_is_type(choices, json_type_array) ||
			 json_object_array_length(choices) < 1)
		tool_response_fail(out, "no-choices", "the answer has no choices");
	else if (!json_object_object_get_ex(*choice = json_object_array_get_idx(choices, 0),
										"message", &msg) ||
			 !json_object_is_type(msg, json_type_object))
		tool_response_fail(out, "no-message", "the answer has no choices[0].message");
	return out->reason[0] ? NULL : msg;
}

static bool
read_content(json_object *msg, ToolResponse *out)
{
	json_object *c = NULL;

	if (!json_object_object_get_ex(msg, "content", &c) || c == NULL)
		return true;
	if (!json_object_is_type(c, json_type_string))
		tool_response_fail(out, "content-not-string", "choices[0].message.content is not a string");
	else if (tool_json_unstorable(c) != NULL)
		tool_response_fail(out, "nul-character", "choices[0].message.content holds \\u0000");
	else if ((out->content = strdup(json_object_get_string(c))) == NULL)
		tool_response_fail(out, "out-of-memory", "out of memory");
	return out->reason[0] == '\0';
}

static void
read_finish(json_object *choice, ToolResponse *out)
{
	const char *f = tool_json_str(choice, "finish_reason");

	tool_json_setf(out->finish_reason, sizeof(out->finish_reason), "%s", f ? f : "");
	if (out->n_calls > 0)
		out->finish = TOOL_FINISH_CALLS;	/* some servers say "stop" with calls */
	else if (f == NULL || strcmp(f, "stop") == 0)
		out->finish = TOOL_FINISH_STOP;
	else if (strcmp(f, "length") == 0)
		out->finish = TOOL_FINISH_LENGTH;
	else
		out->finish = TOOL_FINISH_OTHER;
}


bool
tool_response_parse(const char *body, size_t len, json_object *offered,
					ToolResponse *out)
{
	const char *code = NULL;
	json_object *root;
	json_object *choice = NULL;
	json_object *msg;
	json_object *calls = NULL;

	tool_response_init(out);
	if (len > TOOL_CALLS_MAX_ANSWER)
	{
		tool_response_fail(out, "answer-too-large", "the answer exceeds 1 MiB");
		return false;
	}
	if ((root = tool_json_parse(body, len, &code)) == NULL)
	{
		tool_response_fail(out, code, "the answer is not valid JSON");
		return false;
	}
	read_usage(root, out);
	if ((msg = first_message(root, &choice, out)) != NULL && read_content(msg, out))
	{
		json_object_object_get_ex(msg, "tool_calls", &calls);
		if (tool_calls_check_all(calls, offered, out))
			read_finish(choice, out);
	}
	json_object_put(root);
	return out->ok;
}
