/*
 * llm_chat.c: the JSON of one chat completion (SPEC 8), Postgres-free:
 * the request body sent and the answer read back.
 *
 * Owns turning {model, temperature, system, user} into an
 * OpenAI-compatible request and an answer into its content and token
 * count.  The answer is untrusted bytes from the network: parsed with a
 * bounded depth, exactly one JSON value.  Must never accept trailing
 * garbage, never return content it did not find as a string at
 * choices[0].message.content, and never allocate what the caller cannot
 * free().
 */
#include "llm_chat.h"
#include "llm_tokens.h"

#include <json-c/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX_DEPTH 64

char *
llm_build_chat_request(const char *model, double temperature,
					   const char *system, const char *user)
{
	json_object *root = json_object_new_object();
	json_object *messages = json_object_new_array();
	json_object *msg;
	char		temp[32];
	char	   *out = NULL;

	/* A short decimal, not 0.29999999999999999. */
	snprintf(temp, sizeof(temp), "%.6g", temperature);
	json_object_object_add(root, "model", json_object_new_string(model ? model : ""));
	json_object_object_add(root, "temperature",
						   json_object_new_double_s(temperature, temp));

	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("system"));
	json_object_object_add(msg, "content", json_object_new_string(system ? system : ""));
	json_object_array_add(messages, msg);
	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("user"));
	json_object_object_add(msg, "content", json_object_new_string(user ? user : ""));
	json_object_array_add(messages, msg);
	json_object_object_add(root, "messages", messages);

	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
												JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return out;
}

bool
llm_parse_chat_response(const char *body, size_t len, char **content,
						int64_t *total_tokens, char *errbuf, size_t errlen)
{
	json_tokener *tok = json_tokener_new_ex(ANSWER_MAX_DEPTH);
	json_object *root;
	json_object *choices,
			   *first,
			   *message,
			   *text,
			   *usage,
			   *tokens;
	size_t		end;
	bool		result = false;

	*content = NULL;
	*total_tokens = -1;
	if (tok == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	root = json_tokener_parse_ex(tok, body, (int) len);
	end = json_tokener_get_parse_end(tok);
	while (end < len && strchr(" \t\r\n", body[end]) != NULL && body[end] != '\0')
		end++;
	if (root == NULL || json_tokener_get_error(tok) != json_tokener_success || end != len)
		snprintf(errbuf, errlen, "answer is not JSON");
	else if (!json_object_is_type(root, json_type_object))
		snprintf(errbuf, errlen, "answer is not a JSON object");
	else if (!json_object_object_get_ex(root, "choices", &choices) ||
			 !json_object_is_type(choices, json_type_array) ||
			 json_object_array_length(choices) < 1)
		snprintf(errbuf, errlen, "answer has no choices");
	else if ((first = json_object_array_get_idx(choices, 0)) == NULL ||
			 !json_object_object_get_ex(first, "message", &message) ||
			 !json_object_object_get_ex(message, "content", &text) ||
			 !json_object_is_type(text, json_type_string))
		snprintf(errbuf, errlen, "answer has no choices[0].message.content");
	else
	{
		*content = strdup(json_object_get_string(text));
		if (*content == NULL)
			snprintf(errbuf, errlen, "out of memory");
		else
			result = true;
		if (json_object_object_get_ex(root, "usage", &usage) &&
			json_object_object_get_ex(usage, "total_tokens", &tokens) &&
			json_object_is_type(tokens, json_type_int) &&
			json_object_get_int64(tokens) >= 0)
			*total_tokens = llm_tokens_clamp_round(json_object_get_int64(tokens));
	}
	if (root)
		json_object_put(root);
	json_tokener_free(tok);
	return result;
}
