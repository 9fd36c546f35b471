/*
 * tool_messages.c: build the next round's messages and request body.
 *
 * Owns only the JSON shapes of the tools protocol's requests; what the
 * calls mean is tool_calls.c's business.  Must never echo a call without
 * answering it, never include a PostgreSQL header.
 */
#include "tool_messages.h"

#include <stdio.h>
#include <string.h>

#include "tool_json.h"

static json_object *
message(const char *role, const char *content)
{
	json_object *m = json_object_new_object();

	json_object_object_add(m, "role", json_object_new_string(role));
	json_object_object_add(m, "content",
						   content ? json_object_new_string(content) : NULL);
	return m;
}

json_object *
tool_messages_initial(const char *system, const char *user)
{
	json_object *msgs = json_object_new_array();

	json_object_array_add(msgs, message("system", system ? system : ""));
	json_object_array_add(msgs, message("user", user ? user : ""));
	return msgs;
}

static json_object *
echo_call(const ToolCall *call)
{
	json_object *fn = json_object_new_object();
	json_object *c = json_object_new_object();

	json_object_object_add(fn, "name", json_object_new_string(call->name ? call->name : ""));
	json_object_object_add(fn, "arguments",
						   json_object_new_string(call->arguments ? call->arguments : "{}"));
	json_object_object_add(c, "id", json_object_new_string(call->id ? call->id : ""));
	json_object_object_add(c, "type", json_object_new_string("function"));
	json_object_object_add(c, "function", fn);
	return c;
}

json_object *
tool_message_assistant(const ToolResponse *res)
{
	json_object *m = message("assistant", res->content);
	json_object *calls;

	if (res->n_calls == 0)
		return m;
	calls = json_object_new_array();
	for (int i = 0; i < res->n_calls; i++)
		json_object_array_add(calls, echo_call(&res->calls[i]));
	json_object_object_add(m, "tool_calls", calls);
	return m;
}

json_object *
tool_message_reply(const ToolCall *call)
{
	json_object *m = json_object_new_object();

	json_object_object_add(m, "role", json_object_new_string("tool"));
	json_object_object_add(m, "tool_call_id",
						   json_object_new_string(call->id ? call->id : ""));
	json_object_object_add(m, "content", json_object_new_string(
		call->ok ? TOOL_CALLS_RECORDED : call->error));
	return m;
}

bool
tool_messages_append_round(json_object *messages, const ToolResponse *res)
{
	if (!json_object_is_type(messages, json_type_array))
		return false;
	json_object_array_add(messages, tool_message_assistant(res));
	for (int i = 0; i < res->n_calls; i++)
		json_object_array_add(messages, tool_message_reply(&res->calls[i]));
	return true;
}

char *
tool_request_body(const char *model, double temperature,
				  json_object *messages, json_object *tools)
{
	json_object *root = json_object_new_object();
	char		temp[32];
	char	   *text;

	/* A short decimal, not 0.29999999999999999 (as llm_client.c does). */
	snprintf(temp, sizeof(temp), "%.6g", temperature);
	json_object_object_add(root, "model", json_object_new_string(model ? model : ""));
	json_object_object_add(root, "temperature",
						   json_object_new_double_s(temperature, temp));
	/* The functions before the conversation: the same leading bytes for
	 * every mission offered the same ones (a prompt cache's prefix). */
	if (json_object_is_type(tools, json_type_array) &&
		json_object_array_length(tools) > 0)
	{
		json_object_object_add(root, "tools", json_object_get(tools));
		json_object_object_add(root, "tool_choice", json_object_new_string("auto"));
	}
	json_object_object_add(root, "messages",
						   messages ? json_object_get(messages) : json_object_new_array());
	text = tool_json_text(root);
	json_object_put(root);
	return text;
}

/*
 * The same body with the tools array spliced in as text: a tick sends the
 * same functions in every round of every mission, and serialising 60 of
 * them anew each round cost more than everything else a round does.
 */
char *
tool_request_body_text(const char *model, double temperature,
					   json_object *messages, json_object *tools,
					   const char *tools_text)
{
	char	   *head = tool_request_body(model, temperature, messages, NULL);
	const char *conv;
	size_t		hlen,
				tlen,
				pos;
	char	   *out;

	if (head == NULL || tools_text == NULL ||
		!json_object_is_type(tools, json_type_array) || json_object_array_length(tools) == 0)
		return head;
	/* the first unescaped ,"messages": (a model name's quotes are escaped) */
	conv = strstr(head, ",\"messages\":");
	if (conv == NULL)
	{
		free(head);
		return tool_request_body(model, temperature, messages, tools);
	}
	pos = conv - head;
	hlen = strlen(head);
	tlen = strlen(tools_text);
	out = malloc(hlen + tlen + sizeof(",\"tools\":,\"tool_choice\":\"auto\""));
	if (out != NULL)
	{
		memcpy(out, head, pos);
		sprintf(out + pos, ",\"tools\":%s,\"tool_choice\":\"auto\"%s", tools_text, head + pos);
	}
	free(head);
	return out;
}
