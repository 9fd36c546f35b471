/*
 * plan_parse.c: the strict planner-answer parser of SPEC 7.4.
 *
 * Owns extracting the JSON from the LLM's text (first ```json or ```
 * fenced block, else the whole text when it is a bare {...} object) and
 * validating it against the tool catalog.  The answer is hostile input:
 * its size is capped before scanning, its nesting by json-c's tokener
 * (which keeps its own fixed-size stack, so depth never recurses), and
 * every string must be valid UTF-8 without NUL so the plan can become a
 * jsonb.  Must never include a PostgreSQL header or trust a length.
 */
#include "plan_parse.h"
#include "json_strict.h"
#include "tool_calls.h"
#include "tool_schema.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fail(PlanParseResult *out, const char *code, int step,
				 const char *detail);
static const char *find_fence(const char *p, const char *end);
static int	extract_json_text(const char *s, size_t len,
							  const char **start, size_t *blen);
static json_object *tokenize(const char *text, size_t len,
							 PlanParseResult *out);
static const PlanTool *find_tool(const PlanTool *tools, size_t n,
								 const char *name);
static json_object *validate_step(json_object *step, int i,
								  const PlanTool *tools, size_t n_tools,
								  PlanParseResult *out);
static bool optional_string(json_object *obj, const char *key,
							const char **value);

enum
{
	EXTRACT_OK,
	EXTRACT_NONE,
	EXTRACT_UNTERMINATED
};

/* Record a rejection: code, "code@steps[i]" when a step is at fault. */
static void
fail(PlanParseResult *out, const char *code, int step, const char *detail)
{
	size_t		n;

	out->ok = false;
	out->step = step;
	if (step >= 0)
		snprintf(out->reason, sizeof(out->reason), "%s@steps[%d]", code, step);
	else
		snprintf(out->reason, sizeof(out->reason), "%s", code);
	snprintf(out->detail, sizeof(out->detail), "%s", detail ? detail : "");
	/* Never leave half a UTF-8 sequence where snprintf cut the detail. */
	n = strlen(out->detail);
	if (n == sizeof(out->detail) - 1)
	{
		while (n > 0 && ((unsigned char) out->detail[n - 1] & 0xC0) == 0x80)
			n--;
		if (n > 0 && ((unsigned char) out->detail[n - 1] & 0x80))
			n--;
		out->detail[n] = '\0';
	}
}

/* The next "```" in [p, end), or NULL. */
static const char *
find_fence(const char *p, const char *end)
{
	for (; p + 3 <= end; p++)
		if (p[0] == '`' && p[1] == '`' && p[2] == '`')
			return p;
	return NULL;
}

/*
 * Find the JSON text: the first fenced block labelled json or unlabelled
 * (blocks in another language are skipped), else the trimmed whole text
 * when it is {...}.
 */
static int
extract_json_text(const char *s, size_t len, const char **start, size_t *blen)
{
	const char *end = s + len;
	const char *p = s;
	const char *open;

	while ((open = find_fence(p, end)) != NULL)
	{
		const char *lang = open + 3;
		const char *q = lang;
		const char *close;
		size_t		lang_len;

		while (q < end && (isalnum((unsigned char) *q) || *q == '_' ||
						   *q == '-' || *q == '+'))
			q++;
		lang_len = q - lang;
		close = find_fence(q, end);
		if (close == NULL)
			return EXTRACT_UNTERMINATED;
		if (lang_len == 0 || (lang_len == 4 && strncasecmp(lang, "json", 4) == 0))
		{
			*start = q;
			*blen = close - q;
			return EXTRACT_OK;
		}
		p = close + 3;
	}

	while (s < end && isspace((unsigned char) *s))
		s++;
	while (end > s && isspace((unsigned char) end[-1]))
		end--;
	if (end - s >= 2 && s[0] == '{' && end[-1] == '}')
	{
		*start = s;
		*blen = end - s;
		return EXTRACT_OK;
	}
	return EXTRACT_NONE;
}

/* Parse one complete JSON value with the depth cap; NULL after fail(). */
static json_object *
tokenize(const char *text, size_t len, PlanParseResult *out)
{
	json_tokener *tok = json_tokener_new_ex(PLAN_PARSE_MAX_DEPTH);
	json_object *obj;
	enum json_tokener_error err;
	size_t		used;

	if (tok == NULL)
	{
		fail(out, "out-of-memory", -1, NULL);
		return NULL;
	}
	json_tokener_set_flags(tok, json_strict_flags());
	obj = NULL;
	used = 0;
	if ((err = json_strict_check(text, len, PLAN_PARSE_MAX_DEPTH, &used)) == json_tokener_success)
	{
		obj = json_tokener_parse_ex(tok, text, (int) len);
		err = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);

	if (err == json_tokener_error_depth)
		fail(out, "nesting-too-deep", -1, "the answer nests deeper than 64 levels");
	else if (err == json_tokener_error_parse_utf8_string)
		fail(out, "invalid-utf8", -1, "the answer is not valid UTF-8");
	else if (err == json_tokener_continue)
		fail(out, "invalid-json", -1, "the JSON text ends early");
	else if (err != json_tokener_success || obj == NULL)
		fail(out, "invalid-json", -1, json_tokener_error_desc(err));
	else
	{
		for (; used < len; used++)
			if (!isspace((unsigned char) text[used]))
				break;
		if (used == len)
			return obj;
		fail(out, "invalid-json", -1, "text follows the JSON value");
	}
	json_object_put(obj);
	return NULL;
}

static const PlanTool *
find_tool(const PlanTool *tools, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (tools[i].name && strcmp(tools[i].name, name) == 0)
			return &tools[i];
	return NULL;
}

/*
 * A key that may be absent or null (-> *value = "") or a string; false
 * when it is present with another type.
 */
static bool
optional_string(json_object *obj, const char *key, const char **value)
{
	json_object *v = NULL;

	*value = "";
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return true;
	if (!json_object_is_type(v, json_type_string))
		return false;
	*value = json_object_get_string(v);
	return true;
}

/* Check one step; the normalized copy, or NULL after fail(). */
static json_object *
validate_step(json_object *step, int i, const PlanTool *tools, size_t n_tools,
			  PlanParseResult *out)
{
	json_object *name_obj = NULL;
	json_object *rationale_obj = NULL;
	json_object *params = NULL;
	const char *name;
	const char *summary;
	const PlanTool *tool;
	json_object *norm;
	char		detail[128];

	if (!json_object_is_type(step, json_type_object))
	{
		fail(out, "step-not-object", i, "each step must be a JSON object");
		return NULL;
	}

	if (!json_object_object_get_ex(step, "toolName", &name_obj) || name_obj == NULL)
	{
		fail(out, "tool-name-missing", i, "the step has no toolName");
		return NULL;
	}
	if (!json_object_is_type(name_obj, json_type_string))
	{
		fail(out, "tool-name-not-string", i, "toolName must be a string");
		return NULL;
	}
	name = json_object_get_string(name_obj);
	if (name[0] == '\0')
	{
		fail(out, "tool-name-missing", i, "toolName is empty");
		return NULL;
	}
	tool = find_tool(tools, n_tools, name);
	if (tool == NULL || tool->denied)
	{
		snprintf(detail, sizeof(detail), "%s tool \"%.80s\"",
				 tool ? "the agent's policy denies" : "no such", name);
		fail(out, tool ? "tool-denied" : "unknown-tool", i, detail);
		return NULL;
	}

	if (!json_object_object_get_ex(step, "rationale", &rationale_obj) ||
		rationale_obj == NULL)
	{
		fail(out, "rationale-missing", i, "the step has no rationale");
		return NULL;
	}
	if (!json_object_is_type(rationale_obj, json_type_string))
	{
		fail(out, "rationale-not-string", i, "rationale must be a string");
		return NULL;
	}
	if (text_is_blank(json_object_get_string(rationale_obj)))
	{
		fail(out, "rationale-missing", i, "rationale is empty");
		return NULL;
	}

	if (json_object_object_get_ex(step, "params", &params) && params != NULL &&
		!json_object_is_type(params, json_type_object))
	{
		fail(out, "params-not-object", i, "params must be a JSON object");
		return NULL;
	}
	if (!optional_string(step, "summary", &summary))
	{
		fail(out, "summary-not-string", i, "summary must be a string");
		return NULL;
	}

	norm = json_object_new_object();
	json_object_object_add(norm, "summary", json_object_new_string(summary));
	json_object_object_add(norm, "toolName", json_object_new_string(name));
	json_object_object_add(norm, "params",
						   params ? json_object_get(params) : json_object_new_object());
	json_object_object_add(norm, "rationale", json_object_get(rationale_obj));
	return norm;
}

/* Note a dropped step and clear the failure it left in out. */
static void
drop_step(PlanParseResult *out, int i, const char *tool, const char *code,
		  const char *error)
{
	json_object *d = json_object_new_object();
	char		c[64];

	snprintf(c, sizeof(c), "%s", code);
	c[strcspn(c, "@")] = '\0';
	if (out->dropped == NULL)
		out->dropped = json_object_new_array();
	json_object_object_add(d, "step", json_object_new_int(i));
	json_object_object_add(d, "toolName", json_object_new_string(tool ? tool : ""));
	json_object_object_add(d, "code", json_object_new_string(c));
	json_object_object_add(d, "error", json_object_new_string(error));
	json_object_array_add(out->dropped, d);
	out->reason[0] = out->detail[0] = '\0';
	out->step = -1;
}

/*
 * A normalized step as a tool call: its params with the nulls gone, or
 * NULL when dropped.  Then the injection policy on what is left.
 */
static json_object *
check_step(const PlanParseCheck *check, json_object *norm, int i, PlanParseResult *out)
{
	const char *name = json_object_get_string(json_object_object_get(norm, "toolName"));
	json_object *params = json_object_object_get(norm, "params");
	json_object *args = json_object_new_object();
	const char *marker;
	ToolCall	call;
	char		why[200];

	/* a params key "rationale" would pass as the call's own */
	if (json_object_object_get_ex(params, TOOL_RATIONALE_ARG, NULL))
	{
		json_object_put(args);
		drop_step(out, i, name, "unexpected-argument",
				  "unexpected argument \"rationale\" in params: give it beside them");
		return NULL;
	}
	{
		json_object_object_foreach(params, key, val)
			json_object_object_add(args, key, json_object_get(val));
	}
	json_object_object_add(args, TOOL_RATIONALE_ARG,
						   json_object_get(json_object_object_get(norm, "rationale")));
	tool_call_judge(check->offered, name, args, &call);
	json_object_put(args);
	if (!call.ok)
	{
		drop_step(out, i, name, call.code, call.error);
		tool_call_clear(&call);
		return NULL;
	}
	json_object_object_add(norm, "params", call.params);
	call.params = NULL;
	tool_call_clear(&call);
	params = json_object_object_get(norm, "params");
	if (check->injection == INJECTION_OFF || (marker = injection_marker(params)) == NULL)
		return norm;
	{
		json_object *f = json_object_new_object();

		if (out->flags == NULL)
			out->flags = json_object_new_array();
		json_object_object_add(f, "toolName", json_object_new_string(name));
		json_object_object_add(f, "marker", json_object_new_string(marker));
		json_object_object_add(f, "refused",
							   json_object_new_boolean(check->injection == INJECTION_REFUSE));
		json_object_array_add(out->flags, f);
	}
	if (check->injection != INJECTION_REFUSE)
		return norm;
	snprintf(why, sizeof(why), "the parameters hold a prompt-injection marker (%s); "
			 "the step was not planned", marker);
	drop_step(out, i, name, "injection-marker", why);
	return NULL;
}

bool
plan_parse(const char *answer, size_t len, const PlanTool *tools,
		   size_t n_tools, PlanParseResult *out)
{
	return plan_parse_checked(answer, len, tools, n_tools, NULL, out);
}

bool
plan_parse_checked(const char *answer, size_t len, const PlanTool *tools,
				   size_t n_tools, const PlanParseCheck *check, PlanParseResult *out)
{
	const char *text = NULL;
	size_t		text_len = 0;
	json_object *root;
	json_object *steps = NULL;
	json_object *norm_steps;
	const char *summary = "";
	const char *code;
	size_t		n;

	memset(out, 0, sizeof(*out));
	out->step = -1;

	/* The cap comes first: a caller may pass only the length of a huge answer. */
	if (len > PLAN_PARSE_MAX_ANSWER)
	{
		fail(out, "answer-too-large", -1, "the answer exceeds 1 MiB");
		return false;
	}
	if (answer == NULL)
		len = 0;
	switch (extract_json_text(answer ? answer : "", len, &text, &text_len))
	{
		case EXTRACT_NONE:
			fail(out, "no-json-found", -1,
				 "no ```json block and the answer is not a JSON object");
			return false;
		case EXTRACT_UNTERMINATED:
			fail(out, "unterminated-fence", -1, "a ``` block is never closed");
			return false;
	}

	root = tokenize(text, text_len, out);
	if (root == NULL)
		return false;

	if (!json_object_is_type(root, json_type_object))
		fail(out, "not-an-object", -1, "the plan must be a JSON object");
	else if (!json_object_object_get_ex(root, "steps", &steps) || steps == NULL)
		fail(out, "steps-missing", -1, "the plan has no steps array");
	else if (!json_object_is_type(steps, json_type_array))
		fail(out, "steps-not-array", -1, "steps must be a JSON array");
	else if (json_object_array_length(steps) > PLAN_PARSE_MAX_STEPS)
		fail(out, "too-many-steps", -1, "a plan has at most 20 steps");
	else if (!optional_string(root, "summary", &summary))
		fail(out, "summary-not-string", -1, "summary must be a string");
	if (out->reason[0] != '\0')
	{
		json_object_put(root);
		return false;
	}

	n = json_object_array_length(steps);
	norm_steps = json_object_new_array_ext((int) n);
	for (size_t i = 0; i < n; i++)
	{
		json_object *step = json_object_array_get_idx(steps, i);
		json_object *norm = validate_step(step, (int) i, tools, n_tools, out);

		if (norm == NULL && check != NULL)
		{
			json_object *tn = json_object_is_type(step, json_type_object) ?
				json_object_object_get(step, "toolName") : NULL;
			char		code[64];
			char		detail[160];

			snprintf(code, sizeof(code), "%s", out->reason);
			snprintf(detail, sizeof(detail), "%s", out->detail);
			drop_step(out, (int) i, json_object_is_type(tn, json_type_string) ?
					  json_object_get_string(tn) : NULL, code, detail);
			continue;
		}
		if (norm == NULL)
		{
			json_object_put(norm_steps);
			json_object_put(root);
			return false;
		}
		if (check != NULL && check_step(check, norm, (int) i, out) == NULL)
		{
			json_object_put(norm);
			continue;
		}
		json_object_array_add(norm_steps, norm);
	}
	if (check != NULL && n > 0 && json_object_array_length(norm_steps) == 0)
	{
		char		detail[160];

		snprintf(detail, sizeof(detail), "no valid step: %s", json_object_get_string(
			json_object_object_get(json_object_array_get_idx(out->dropped, 0), "error")));
		json_object_put(norm_steps);
		json_object_put(root);
		fail(out, "no-valid-step", -1, detail);
		return false;
	}

	out->plan = json_object_new_object();
	json_object_object_add(out->plan, "summary", json_object_new_string(summary));
	json_object_object_add(out->plan, "steps", norm_steps);
	json_object_put(root);

	if ((code = json_strict_unstorable(out->plan, PLAN_PARSE_MAX_DEPTH)) != NULL)
	{
		json_object_put(out->plan);
		out->plan = NULL;
		fail(out, code, -1, "a value cannot be stored as jsonb");
		return false;
	}
	out->ok = true;
	return true;
}

char *
plan_parse_result_json(const PlanParseResult *res)
{
	json_object *obj = json_object_new_object();
	char	   *text;

	json_object_object_add(obj, "ok", json_object_new_boolean(res->ok));
	if (res->ok)
		json_object_object_add(obj, "plan", json_object_get(res->plan));
	else
	{
		json_object_object_add(obj, "reason", json_object_new_string(res->reason));
		if (res->step >= 0)
			json_object_object_add(obj, "step", json_object_new_int(res->step));
		json_object_object_add(obj, "detail", json_object_new_string(res->detail));
	}
	if (res->dropped)
		json_object_object_add(obj, "dropped", json_object_get(res->dropped));
	if (res->flags)
		json_object_object_add(obj, "flags", json_object_get(res->flags));
	text = strdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
												 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
	return text;
}

void
plan_parse_result_free(PlanParseResult *res)
{
	if (res->plan)
		json_object_put(res->plan);
	json_object_put(res->dropped);
	json_object_put(res->flags);
	res->plan = NULL;
	res->dropped = NULL;
	res->flags = NULL;
}
