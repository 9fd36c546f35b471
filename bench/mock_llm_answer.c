/*
 * mock_llm_answer.c: what bench/mock_llm.c answers to one chat request,
 * in the two planner protocols (see mock_llm.c's header comment).
 *
 * Owns finding the few things an answer needs in a request body without
 * parsing it whole (the model, the round = 1 + assistant messages, the
 * one function entry it calls), building the answer, and the tokens per
 * conversation (keyed by a hash of its user message).  Must never parse
 * more of a request than that: it runs on the mock's hot path.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "mock_llm.h"

/* The value of "key":"..." after from (compact JSON as mana_ai sends it). */
bool
mock_find_string(const char *body, const char *key, char *out, size_t len)
{
	const char *p = strstr(body, key);
	size_t		i = 0;

	if (p == NULL)
		return false;
	p += strlen(key);
	while (*p && *p != '"' && i + 1 < len)
		out[i++] = *p++;
	out[i] = '\0';
	return true;
}

static int
count(const char *hay, const char *needle)
{
	int			n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* A valid arguments object for one function entry (required ones only). */
static json_object *
valid_args(json_object *entry)
{
	json_object *fn, *params, *props, *req, *args = json_object_new_object();

	if (json_object_object_get_ex(entry, "function", &fn) &&
		json_object_object_get_ex(fn, "parameters", &params) &&
		json_object_object_get_ex(params, "required", &req) &&
		json_object_object_get_ex(params, "properties", &props))
		for (size_t k = 0; k < json_object_array_length(req); k++)
		{
			const char *name = json_object_get_string(json_object_array_get_idx(req, k));
			json_object *prop = NULL, *en, *ty;
			const char *type = "string";

			json_object_object_get_ex(props, name, &prop);
			if (json_object_object_get_ex(prop, "type", &ty))
				type = json_object_get_string(ty);
			if (json_object_object_get_ex(prop, "enum", &en) && json_object_array_length(en) > 0)
				json_object_object_add(args, name, json_object_get(json_object_array_get_idx(en, 0)));
			else if (!strcmp(type, "number") || !strcmp(type, "integer"))
				json_object_object_add(args, name, json_object_new_int(1));
			else if (!strcmp(type, "boolean"))
				json_object_object_add(args, name, json_object_new_boolean(1));
			else if (!strcmp(type, "array"))
				json_object_object_add(args, name, json_object_new_array());
			else if (!strcmp(type, "object"))
				json_object_object_add(args, name, json_object_new_object());
			else
				json_object_object_add(args, name, json_object_new_string("Mock-Wert"));
		}
	json_object_object_add(args, "rationale",
						   json_object_new_string("Mock: dieser Schritt bringt die Mission voran."));
	return args;
}

/* The one function entry the mock calls: create_task if offered, else the first. */
static json_object *
chosen_function(const char *tools)
{
	const char *at = strstr(tools, "{\"type\":\"function\",\"function\":{\"name\":\"create_task\"");
	json_tokener *tok;
	json_object *entry;

	if (at == NULL)
		at = strchr(tools, '{');
	if (at == NULL)
		return NULL;
	tok = json_tokener_new();
	entry = json_tokener_parse_ex(tok, at, (int) strlen(at));
	json_tokener_free(tok);
	return entry;
}

char *
mock_chat_answer(const char *body, const char *model, int prompt_tokens)
{
	const char *tools = strstr(body, "\"tools\":[");
	int			round = 1 + count(body, "\"role\":\"assistant\"");
	json_object *root = json_object_new_object(), *choice = json_object_new_object();
	json_object *msg = json_object_new_object(), *usage = json_object_new_object();
	json_object *choices = json_object_new_array();
	const char *finish = "stop";
	char	   *out;

	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	if (tools && round == 1)
	{
		json_object *entry = chosen_function(tools + 8);
		json_object *fn = NULL, *name = NULL, *calls = json_object_new_array();
		json_object *call = json_object_new_object(), *f = json_object_new_object();
		json_object *args = entry ? valid_args(entry) : json_object_new_object();

		json_object_object_get_ex(entry, "function", &fn);
		json_object_object_get_ex(fn, "name", &name);
		json_object_object_add(f, "name", json_object_new_string(name ? json_object_get_string(name) : "none"));
		json_object_object_add(f, "arguments", json_object_new_string(json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN)));
		json_object_object_add(call, "id", json_object_new_string("call_1_0"));
		json_object_object_add(call, "type", json_object_new_string("function"));
		json_object_object_add(call, "function", f);
		json_object_array_add(calls, call);
		json_object_object_add(msg, "content", NULL);
		json_object_object_add(msg, "tool_calls", calls);
		json_object_put(args);
		json_object_put(entry);
		finish = "tool_calls";
	}
	else if (tools)
		json_object_object_add(msg, "content",
							   json_object_new_string("Mock-Plan: die Vorschläge liegen zur Prüfung bereit."));
	else
		json_object_object_add(msg, "content", json_object_new_string(
			"Hier ist der Plan:\n```json\n{\"summary\": \"Eine Aufgabe für die Mission anlegen\", \"steps\": "
			"[{\"summary\": \"Aufgabe anlegen\", \"toolName\": \"create_task\", \"params\": "
			"{\"title\": \"Nächsten Schritt der Mission erledigen\"}, \"rationale\": "
			"\"Die Mission braucht einen konkreten nächsten Schritt.\"}]}\n```\n"));
	json_object_object_add(choice, "index", json_object_new_int(0));
	json_object_object_add(choice, "finish_reason", json_object_new_string(finish));
	json_object_object_add(choice, "message", msg);
	json_object_array_add(choices, choice);
	json_object_object_add(root, "id", json_object_new_string("chatcmpl-cmock"));
	json_object_object_add(root, "object", json_object_new_string("chat.completion"));
	json_object_object_add(root, "model", json_object_new_string(model));
	json_object_object_add(root, "choices", choices);
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	/* completion tokens: the answer's bytes / 4, the same approximation */
	json_object_object_add(usage, "prompt_tokens", json_object_new_int(prompt_tokens));
	json_object_object_add(usage, "completion_tokens", json_object_new_int((int) (strlen(out) / BYTES_PER_TOKEN)));
	json_object_object_add(usage, "total_tokens", json_object_new_int(prompt_tokens + (int) (strlen(out) / BYTES_PER_TOKEN)));
	json_object_object_add(root, "usage", usage);
	free(out);
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}


/* Tokens per conversation, keyed by a hash of its user message. */
#define CONV_SLOTS 65536
static struct
{
	uint64_t	key;
	double		in, out;
} conv[CONV_SLOTS];

void
mock_conv_add(const char *body, double in, double out)
{
	const char *u = strstr(body, "{\"role\":\"user\",\"content\":\"");
	uint64_t	h = 1469598103934665603ULL;

	if (u == NULL)
		return;
	for (u += 28; *u && !(*u == '"' && u[-1] != '\\'); u++)
		h = (h ^ (unsigned char) *u) * 1099511628211ULL;
	if (h == 0)
		h = 1;
	for (uint64_t k = 0; k < CONV_SLOTS; k++)
	{
		uint64_t	i = (h + k) % CONV_SLOTS;

		if (conv[i].key == 0 || conv[i].key == h)
		{
			conv[i].key = h;
			conv[i].in += in;
			conv[i].out += out;
			return;
		}
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* mean and 95th percentile of the conversations' in (which 0) or out (1) */
void
mock_conv_summary(int which, double *mean, double *p95, long *n)
{
	static double v[CONV_SLOTS];
	double		sum = 0;

	*n = 0;
	for (int i = 0; i < CONV_SLOTS; i++)
		if (conv[i].key)
			sum += v[(*n)++] = which ? conv[i].out : conv[i].in;
	qsort(v, *n, sizeof(double), cmp_double);
	*mean = *n ? sum / *n : 0;
	*p95 = *n ? v[(long) ((*n - 1) * 0.95)] : 0;
}

void
mock_conv_reset(void)
{
	memset(conv, 0, sizeof(conv));
}
