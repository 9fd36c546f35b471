/*
 * tool_calls.c: check one assistant message's tool calls.
 *
 * Owns the per-call rules against the offered function schemas (the subset
 * tool_schema.c emits: properties with type and enum, required,
 * additionalProperties).  Each invalid call gets every problem found, in
 * schema order, so the model can fix them all in one round.  Must never
 * crash or allocate without bound on hostile input, never keep a value
 * jsonb could not store, and never include a PostgreSQL header.
 */
#include "tool_calls.h"
#include "tool_calls_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_rules.h"
#include "tool_json.h"
#include "tool_schema.h"
#include "json_strict.h"

/* The problems of one call, joined by "; " into call->error. */
typedef struct Problems
{
	ToolCall   *call;
	int			n;
} Problems;

static void
problem(Problems *p, const char *code, const char *text)
{
	char	   *buf = p->call->error;
	size_t		used = strlen(buf);

	if (p->n++ == 0)
		tool_json_setf(p->call->code, sizeof(p->call->code), "%s", code);
	if (used + 2 + strlen(text) >= TOOL_CALLS_ERROR_LEN)
		return;					/* the first problems are the ones shown */
	tool_json_setf(buf + used, TOOL_CALLS_ERROR_LEN - used, "%s%s",
				   used ? "; " : "", text);
}

void
tool_response_fail(ToolResponse *out, const char *reason, const char *detail)
{
	out->ok = false;
	tool_json_setf(out->reason, sizeof(out->reason), "%s", reason);
	tool_json_setf(out->detail, sizeof(out->detail), "%s", detail);
}

/* "a string", "a number", ... for error texts. */
static const char *
describe(json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_string:
			return "a string";
		case json_type_int:
		case json_type_double:
			return "a number";
		case json_type_boolean:
			return "true/false";
		case json_type_array:
			return "an array";
		case json_type_object:
			return "an object";
		default:
			return "null";
	}
}

static bool
type_matches(json_object *v, const char *type)
{
	json_type	t = json_object_get_type(v);

	if (type == NULL)
		return true;
	if (strcmp(type, "string") == 0)
		return t == json_type_string;
	if (strcmp(type, "number") == 0)
		return t == json_type_int || t == json_type_double;
	if (strcmp(type, "integer") == 0)
		return t == json_type_int ||
			(t == json_type_double &&
			 json_object_get_double(v) == trunc(json_object_get_double(v)));
	if (strcmp(type, "boolean") == 0)
		return t == json_type_boolean;
	if (strcmp(type, "array") == 0)
		return t == json_type_array;
	if (strcmp(type, "object") == 0)
		return t == json_type_object;
	return true;				/* a type this validator does not know */
}

static bool
in_enum(json_object *v, json_object *e)
{
	for (size_t i = 0; i < json_object_array_length(e); i++)
	{
		json_object *x = json_object_array_get_idx(e, i);

		if (json_object_is_type(x, json_type_string) &&
			json_object_is_type(v, json_type_string))
		{
			if (strcmp(json_object_get_string(x), json_object_get_string(v)) == 0)
				return true;
		}
		else if ((json_object_is_type(x, json_type_int) ||
				  json_object_is_type(x, json_type_double)) &&
				 (json_object_is_type(v, json_type_int) ||
				  json_object_is_type(v, json_type_double)) &&
				 json_object_get_double(x) == json_object_get_double(v))
			return true;
	}
	return false;
}

/* "low, medium, high" into buf. */
static void
list_values(json_object *arr, bool keys, char *buf, size_t len)
{
	size_t		used = 0;

	buf[0] = '\0';
	if (keys)
	{
		json_object_object_foreach(arr, key, val)
		{
			(void) val;
			tool_json_setf(buf + used, len - used, "%s%s", used ? ", " : "", key);
			used = strlen(buf);
		}
		return;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++)
	{
		tool_json_setf(buf + used, len - used, "%s%s", used ? ", " : "",
					   json_object_get_string(json_object_array_get_idx(arr, i)));
		used = strlen(buf);
	}
}

/* Present and not null: JSON null counts as absent. */
static json_object *
arg_value(json_object *args, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(args, key, &v))
		return NULL;
	return v;
}

static bool
is_required(json_object *schema, const char *name)
{
	json_object *req = NULL;

	if (!json_object_object_get_ex(schema, "required", &req) ||
		!json_object_is_type(req, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(req); i++)
	{
		const char *r = json_object_get_string(json_object_array_get_idx(req, i));

		if (r && strcmp(r, name) == 0)
			return true;
	}
	return false;
}

/* One declared parameter: present when required, type, enum. */
static void
check_property(Problems *p, json_object *schema, const char *name,
			   json_object *prop, json_object *v)
{
	const char *type = tool_json_str(prop, "type");
	json_object *e = NULL;
	char		text[400];
	char		values[256];
	char		clip[81];

	if (v == NULL)
	{
		if (is_required(schema, name))
		{
			tool_json_setf(text, sizeof(text), "missing required argument \"%s\"", name);
			problem(p, "missing-argument", text);
		}
		return;
	}
	if (!type_matches(v, type))
	{
		tool_json_setf(text, sizeof(text), "argument \"%s\" must be %s%s, not %s", name,
					   strcmp(type, "integer") == 0 ? "an " : "a ", type, describe(v));
		problem(p, "wrong-type", text);
	}
	else if (json_object_object_get_ex(prop, "enum", &e) &&
			 json_object_is_type(e, json_type_array) && !in_enum(v, e))
	{
		list_values(e, false, values, sizeof(values));
		tool_json_setf(text, sizeof(text), "argument \"%s\" is %s, not one of: %s",
					   name, tool_json_clip(clip, sizeof(clip),
											json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN)),
					   values);
		problem(p, "not-in-enum", text);
	}
}

/* Arguments the schema does not declare (additionalProperties: false). */
static void
check_unexpected(Problems *p, json_object *schema, json_object *props,
				 json_object *args, const char *tool)
{
	json_object *extra = NULL;
	char		text[400];
	char		names[256];
	char		clip[65];

	if (!json_object_object_get_ex(schema, "additionalProperties", &extra) ||
		!json_object_is_type(extra, json_type_boolean) || json_object_get_boolean(extra))
		return;
	list_values(props, true, names, sizeof(names));
	{
		json_object_object_foreach(args, key, val)
		{
			if (val == NULL || (props && json_object_object_get_ex(props, key, NULL)))
				continue;		/* null counts as absent */
			tool_json_setf(text, sizeof(text), "unexpected argument \"%s\" (%s takes: %s)",
						   tool_json_clip(clip, sizeof(clip), key), tool, names);
			problem(p, "unexpected-argument", text);
		}
	}
}

/* The rationale, whatever the offered schema says: a non-blank string. */
static void
check_rationale(Problems *p, json_object *args)
{
	json_object *v = arg_value(args, TOOL_RATIONALE_ARG);

	if (v == NULL)
		problem(p, "rationale-missing", "missing required argument \"rationale\": "
				"say in one sentence why this step serves the mission");
	else if (!json_object_is_type(v, json_type_string))
		problem(p, "wrong-type", "argument \"rationale\" must be a string");
	else if (text_is_blank(json_object_get_string(v)))
		problem(p, "rationale-empty", "argument \"rationale\" is empty: say in one "
				"sentence why this step serves the mission");
}

static void
check_args(Problems *p, json_object *fn, json_object *args, const char *tool)
{
	json_object *schema = NULL;
	json_object *props = NULL;

	if (json_object_object_get_ex(fn, "parameters", &schema) &&
		json_object_object_get_ex(schema, "properties", &props) &&
		json_object_is_type(props, json_type_object))
	{
		json_object_object_foreach(props, name, prop)
		{
			if (strcmp(name, TOOL_RATIONALE_ARG) != 0)
				check_property(p, schema, name, prop, arg_value(args, name));
		}
	}
	else
		props = NULL;
	check_unexpected(p, schema, props, args, tool);
	check_rationale(p, args);
}

/* The params of a valid call: the arguments without rationale and nulls. */
static void
accept_call(ToolCall *call, json_object *args)
{
	call->params = json_object_new_object();
	{
		json_object_object_foreach(args, key, val)
		{
			if (val != NULL && strcmp(key, TOOL_RATIONALE_ARG) != 0)
				json_object_object_add(call->params, key, json_object_get(val));
		}
	}
	call->rationale = strdup(tool_json_str(args, TOOL_RATIONALE_ARG));
	call->ok = call->params != NULL && call->rationale != NULL;
	if (!call->ok)
	{
		json_object_put(call->params);
		free(call->rationale);
		call->params = NULL;
		call->rationale = NULL;
		tool_json_setf(call->code, sizeof(call->code), "out-of-memory");
		tool_json_setf(call->error, sizeof(call->error), "out of memory");
	}
}

/* Parse the arguments text; NULL after a problem. */
static json_object *
parse_args(Problems *p, const char *text)
{
	size_t		len = strlen(text);
	const char *code = NULL;
	json_object *args;
	char		msg[200];

	if (len > TOOL_CALLS_MAX_ARGS)
	{
		tool_json_setf(msg, sizeof(msg), "arguments are larger than %d bytes",
					   TOOL_CALLS_MAX_ARGS);
		problem(p, "arguments-too-large", msg);
		return NULL;
	}
	if (text_is_blank(text))
		return json_object_new_object();	/* some servers send "" for {} */
	if ((args = tool_json_parse(text, len, &code)) == NULL &&
		strcmp(code, "nul-character") == 0)
		problem(p, code, "arguments hold a value that cannot be stored (nul-character)");
	else if (args == NULL)
	{
		tool_json_setf(msg, sizeof(msg), "arguments are not valid JSON (%s): send "
					   "one JSON object", code);
		problem(p, "arguments-not-json", msg);
	}
	else if (!json_object_is_type(args, json_type_object))
	{
		problem(p, "arguments-not-object", "arguments must be a JSON object");
	}
	else if ((code = tool_json_unstorable(args)) != NULL)
	{
		tool_json_setf(msg, sizeof(msg), "arguments hold a value that cannot be "
					   "stored (%s)", code);
		problem(p, code, msg);
	}
	else
		return args;
	json_object_put(args);
	return NULL;
}

/* name and arguments text of an entry's function (copies, never NULL). */
static bool
read_function(json_object *entry, ToolCall *call)
{
	json_object *fn = NULL;
	json_object *a = NULL;
	const char *name = NULL;

	if (json_object_object_get_ex(entry, "function", &fn) &&
		json_object_is_type(fn, json_type_object))
	{
		name = tool_json_str(fn, "name");
		json_object_object_get_ex(fn, "arguments", &a);
	}
	call->name = strdup(name ? name : "");
	if (a != NULL && json_object_is_type(a, json_type_string))
		call->arguments = strdup(json_object_get_string(a));
	else if (a != NULL)
		call->arguments = tool_json_text(a);	/* an object, or a wrong type */
	else
		call->arguments = strdup("{}");
	return call->name != NULL && call->arguments != NULL;
}

static void judge_args(Problems *p, json_object *offered, json_object *fn,
					   json_object *args);

static void
check_call(json_object *entry, json_object *offered, ToolCall *call)
{
	Problems	p = {call, 0};
	const char *type = tool_json_str(entry, "type");
	json_object *fn;
	json_object *args;
	char		msg[200];

	if (!read_function(entry, call))
		problem(&p, "out-of-memory", "out of memory");
	else if (type != NULL && strcmp(type, "function") != 0)
		problem(&p, "unsupported-call-type", "only calls of type \"function\" are handled");
	else if (call->name[0] == '\0')
		problem(&p, "tool-name-missing", "the call names no function");
	else if ((fn = exec_find_function(offered, call->name)) == NULL)
	{
		char		clip[65];

		tool_json_setf(msg, sizeof(msg), "unknown tool \"%s\": call only the "
					   "functions offered in tools", tool_json_clip(clip, sizeof(clip), call->name));
		problem(&p, "unknown-tool", msg);
	}
	else if ((args = parse_args(&p, call->arguments)) != NULL)
	{
		judge_args(&p, offered, fn, args);
		json_object_put(args);
	}
}

/*
 * The schema's rules, then the web app executor's (SPEC 11.3) as the
 * last word: a call both accept becomes a step.
 */
static void
judge_args(Problems *p, json_object *offered, json_object *fn, json_object *args)
{
	ExecVerdict v;

	check_args(p, fn, args, p->call->name);
	if (p->n == 0 && !exec_check_step(offered, p->call->name, args, false, &v))
		problem(p, v.code, v.error);
	if (p->n == 0)
		accept_call(p->call, args);
}

bool
tool_call_judge(json_object *offered, const char *name, json_object *args, ToolCall *call)
{
	Problems	p = {call, 0};
	json_object *fn = exec_find_function(offered, name);
	char		clip[65];
	char		msg[200];

	memset(call, 0, sizeof(*call));
	if ((call->name = strdup(name ? name : "")) == NULL)
		problem(&p, "out-of-memory", "out of memory");
	else if (fn == NULL)
	{
		tool_json_setf(msg, sizeof(msg), "unknown tool \"%s\": call only the "
					   "functions offered in tools", tool_json_clip(clip, sizeof(clip), name));
		problem(&p, "unknown-tool", msg);
	}
	else if (!json_object_is_type(args, json_type_object))
		problem(&p, "arguments-not-object", "arguments must be a JSON object");
	else
		judge_args(&p, offered, fn, args);
	return call->ok;
}

/* The id of an entry: a non-empty string of bounded size; NULL otherwise. */
static const char *
entry_id(json_object *entry, ToolResponse *out)
{
	const char *id;

	if (!json_object_is_type(entry, json_type_object))
	{
		tool_response_fail(out, "tool-call-not-object", "a tool_calls entry is not an object");
		return NULL;
	}
	id = tool_json_str(entry, "id");
	if (id == NULL || id[0] == '\0')
		tool_response_fail(out, "tool-call-id-missing", "a tool call has no id");
	else if (strlen(id) > TOOL_CALLS_MAX_ID ||
			 tool_json_unstorable(json_object_object_get(entry, "id")) != NULL)
		tool_response_fail(out, "tool-call-id-invalid", "a tool call id is too long or holds \\u0000");
	else
		return id;
	return NULL;
}

/* Ids first: without a usable, unique id a call cannot be answered. */
static bool
read_ids(json_object *tool_calls, int n, ToolResponse *out)
{
	for (int i = 0; i < n; i++)
	{
		const char *id = entry_id(json_object_array_get_idx(tool_calls, i), out);

		if (id == NULL)
			return false;
		for (int j = 0; j < i; j++)
			if (strcmp(out->calls[j].id, id) == 0)
			{
				tool_response_fail(out, "tool-call-id-repeated", "two tool calls share one id");
				return false;
			}
		if ((out->calls[i].id = strdup(id)) == NULL)
		{
			tool_response_fail(out, "out-of-memory", "out of memory");
			return false;
		}
		out->n_calls = i + 1;
	}
	return true;
}

bool
tool_calls_check_all(json_object *tool_calls, json_object *offered, ToolResponse *out)
{
	size_t		n;

	if (tool_calls == NULL)
		return true;
	if (!json_object_is_type(tool_calls, json_type_array))
	{
		tool_response_fail(out, "tool-calls-not-array", "message.tool_calls is not an array");
		return false;
	}
	if ((n = json_object_array_length(tool_calls)) > TOOL_CALLS_MAX_PER_MESSAGE)
	{
		tool_response_fail(out, "too-many-tool-calls", "more than 20 tool calls in one message");
		return false;
	}
	if (n > 0 && (out->calls = calloc(n, sizeof(ToolCall))) == NULL)
	{
		tool_response_fail(out, "out-of-memory", "out of memory");
		return false;
	}
	if (!read_ids(tool_calls, (int) n, out))
		return false;
	for (size_t i = 0; i < n; i++)
	{
		check_call(json_object_array_get_idx(tool_calls, i), offered, &out->calls[i]);
		out->n_valid += out->calls[i].ok;
	}
	return true;
}

void
tool_response_init(ToolResponse *out)
{
	memset(out, 0, sizeof(*out));
	out->ok = true;
	out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
}

bool
tool_calls_check(json_object *tool_calls, json_object *offered, ToolResponse *out)
{
	tool_response_init(out);
	if (!tool_calls_check_all(tool_calls, offered, out))
		return false;
	out->finish = out->n_calls > 0 ? TOOL_FINISH_CALLS : TOOL_FINISH_STOP;
	return true;
}

void
tool_response_reject(ToolResponse *res, int i, const char *code, const char *error)
{
	ToolCall   *call;

	if (res == NULL || i < 0 || i >= res->n_calls)
		return;
	call = &res->calls[i];
	if (call->ok)
		res->n_valid--;
	call->ok = false;
	json_object_put(call->params);
	call->params = NULL;
	free(call->rationale);
	call->rationale = NULL;
	tool_json_setf(call->code, sizeof(call->code), "%s", code ? code : "rejected");
	tool_json_setf(call->error, sizeof(call->error), "%s", error ? error : "rejected");
}

void
tool_call_clear(ToolCall *call)
{
	json_object_put(call->params);
	free(call->rationale);
	free(call->name);
	call->params = NULL;
	call->rationale = NULL;
	call->name = NULL;
}

void
tool_response_free(ToolResponse *res)
{
	for (int i = 0; i < res->n_calls; i++)
	{
		free(res->calls[i].id);
		free(res->calls[i].name);
		free(res->calls[i].arguments);
		free(res->calls[i].rationale);
		json_object_put(res->calls[i].params);
	}
	free(res->calls);
	free(res->content);
	res->calls = NULL;
	res->content = NULL;
	res->n_calls = res->n_valid = 0;
}
