/*
 * test_tool_calls.c: a tools-protocol answer checked against the offered
 * functions (tool_calls.h) and the next round's messages and request body
 * (tool_messages.h): every rejection and the happy paths, without
 * PostgreSQL.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_calls.h"
#include "tool_messages.h"
#include "tool_schema.h"
#include "tap.h"

#define str_is(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	ok(same_, __VA_ARGS__); \
	if (!same_) printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

static json_object *offered;
static ToolResponse res;

static void
offer(const char *name, const char *params)
{
	char		err[TOOL_SCHEMA_ERROR_LEN];
	json_object *p = json_tokener_parse(params);
	json_object *e = tool_schema_function(name, "Beschreibung", p, err, sizeof(err));

	if (e == NULL)
		printf("# offer %s: %s\n", name, err);
	json_object_array_add(offered, e);
	json_object_put(p);
}

static void
setup_offered(void)
{
	offered = json_object_new_array();
	offer("create_task", "[{\"name\":\"title\",\"type\":\"string\",\"required\":true},"
		  "{\"name\":\"dueDate\",\"type\":\"string\",\"required\":false},"
		  "{\"name\":\"priority\",\"type\":\"string\",\"required\":false,"
		  "\"enum\":[\"low\",\"medium\",\"high\"]}]");
	offer("log_mood", "[{\"name\":\"level\",\"type\":\"number\",\"required\":true},"
		  "{\"name\":\"count\",\"type\":\"integer\",\"required\":false,\"enum\":[1,2,3]},"
		  "{\"name\":\"isAllDay\",\"type\":\"boolean\",\"required\":false},"
		  "{\"name\":\"lines\",\"type\":\"array\",\"required\":false},"
		  "{\"name\":\"patch\",\"type\":\"object\",\"required\":false}]");
	offer("undo_drink", "[]");
}

/*
 * An answer with the given calls: each call is "id|name|arguments"
 * (arguments sent as the JSON string the protocol uses).
 */
static char *
answer(const char *finish, const char *content, int n, ...)
{
	json_object *root = json_object_new_object();
	json_object *choices = json_object_new_array();
	json_object *choice = json_object_new_object();
	json_object *msg = json_object_new_object();
	json_object *calls = json_object_new_array();
	va_list		ap;
	char	   *text;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
	{
		char	   *spec = strdup(va_arg(ap, const char *));
		char	   *name = strchr(spec, '|');
		char	   *args = strchr(name + 1, '|');
		json_object *c = json_object_new_object();
		json_object *fn = json_object_new_object();

		*name++ = '\0';
		*args++ = '\0';
		json_object_object_add(fn, "name", json_object_new_string(name));
		json_object_object_add(fn, "arguments", json_object_new_string(args));
		json_object_object_add(c, "id", json_object_new_string(spec));
		json_object_object_add(c, "type", json_object_new_string("function"));
		json_object_object_add(c, "function", fn);
		json_object_array_add(calls, c);
		free(spec);
	}
	va_end(ap);
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	json_object_object_add(msg, "content", content ? json_object_new_string(content) : NULL);
	if (n > 0)
		json_object_object_add(msg, "tool_calls", calls);
	else
		json_object_put(calls);
	json_object_object_add(choice, "message", msg);
	if (finish)
		json_object_object_add(choice, "finish_reason", json_object_new_string(finish));
	json_object_array_add(choices, choice);
	json_object_object_add(root, "choices", choices);
	json_object_object_add(root, "usage", json_tokener_parse(
		"{\"prompt_tokens\":30,\"completion_tokens\":12,\"total_tokens\":42}"));
	text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return text;
}

static bool
parse_text(const char *body)
{
	tool_response_free(&res);
	return tool_response_parse(body, strlen(body), offered, &res);
}

/* Parse an answer with one call; the call's code ("" when valid). */
static const char *
one(const char *args)
{
	char	   *spec = malloc(strlen(args) + 32);
	char	   *body;

	sprintf(spec, "call_1|create_task|%s", args);
	body = answer("tool_calls", NULL, 1, spec);
	free(spec);
	parse_text(body);
	free(body);
	if (!res.ok)
		return res.reason;
	return res.calls[0].ok ? "" : res.calls[0].code;
}

/* The same for a call of log_mood. */
static const char *
mood(const char *args)
{
	char	   *spec = malloc(strlen(args) + 32);
	char	   *body;

	sprintf(spec, "call_m|log_mood|%s", args);
	body = answer("tool_calls", NULL, 1, spec);
	free(spec);
	parse_text(body);
	free(body);
	return res.ok ? (res.calls[0].ok ? "" : res.calls[0].code) : res.reason;
}

static const char *
param_json(int i)
{
	return json_object_to_json_string_ext(res.calls[i].params, JSON_C_TO_STRING_PLAIN);
}

static void
test_valid_call(void)
{
	str_is(one("{\"title\":\"Milch kaufen\",\"priority\":\"high\","
			   "\"rationale\":\"Der Kühlschrank ist leer.\"}"), "", "a valid call");
	ok(res.ok && res.n_calls == 1 && res.n_valid == 1, "one call, one valid");
	str_is(res.calls[0].id, "call_1", "id kept");
	str_is(res.calls[0].name, "create_task", "tool name");
	str_is(param_json(0), "{\"title\":\"Milch kaufen\",\"priority\":\"high\"}",
		   "params without rationale");
	str_is(res.calls[0].rationale, "Der Kühlschrank ist leer.", "rationale kept");
	ok(res.finish == TOOL_FINISH_CALLS, "finish: calls");
	str_is(res.finish_reason, "tool_calls", "finish_reason as sent");
	ok(res.prompt_tokens == 30 && res.completion_tokens == 12 && res.total_tokens == 42,
	   "usage read");
	ok(res.content == NULL, "content null");
	str_is(one("{\"title\":\"x\",\"dueDate\":null,\"rationale\":\"r\"}"), "",
		   "null optional argument accepted");
	str_is(param_json(0), "{\"title\":\"x\"}", "null optional argument dropped");
	str_is(one("  {\"rationale\":\"r\",\"title\":\"x\"}  "), "", "whitespace around arguments");
	str_is(mood("{\"level\":3.5,\"count\":2.0,\"isAllDay\":true,\"lines\":[{\"a\":1}],"
				"\"patch\":{\"k\":\"v\"},\"rationale\":\"r\"}"), "",
		   "number, integral double as integer, boolean, array, object");
}

static void
test_call_rejections(void)
{
	str_is(one("{\"title\":\"x\"}"), "rationale-missing", "rationale missing");
	str_is(res.calls[0].error, "missing required argument \"rationale\": say in one "
		   "sentence why this step serves the mission", "rationale error text");
	ok(res.n_valid == 0 && res.calls[0].params == NULL && res.calls[0].rationale == NULL,
	   "an invalid call has no params");
	str_is(one("{\"title\":\"x\",\"rationale\":\"  \\n\"}"), "rationale-empty", "blank rationale");
	str_is(one("{\"title\":\"x\",\"rationale\":\"\"}"), "rationale-empty", "empty rationale");
	str_is(one("{\"title\":\"x\",\"rationale\":null}"), "rationale-missing", "null rationale");
	str_is(one("{\"title\":\"x\",\"rationale\":[\"r\"]}"), "wrong-type", "rationale not a string");
	str_is(one("{\"rationale\":\"r\"}"), "missing-argument", "required argument missing");
	str_is(res.calls[0].error, "missing required argument \"title\"", "missing text");
	str_is(one("{\"title\":null,\"rationale\":\"r\"}"), "missing-argument", "null required");
	str_is(one("{\"title\":5,\"rationale\":\"r\"}"), "wrong-type", "wrong type");
	str_is(res.calls[0].error, "argument \"title\" must be a string, not a number",
		   "wrong type text");
	str_is(one("{\"title\":\"x\",\"priority\":\"urgent\",\"rationale\":\"r\"}"), "not-in-enum",
		   "value outside its enum");
	str_is(res.calls[0].error, "argument \"priority\" is \"urgent\", not one of: low, "
		   "medium, high", "enum text");
	str_is(one("{\"title\":\"x\",\"tags\":[\"a\"],\"rationale\":\"r\"}"), "unexpected-argument",
		   "unexpected argument");
	str_is(res.calls[0].error, "unexpected argument \"tags\" (create_task takes: title, "
		   "dueDate, priority, rationale)", "unexpected text");
	str_is(one("{\"title\":\"x\",\"tags\":null,\"rationale\":\"r\"}"), "",
		   "an unexpected null counts as absent");
	str_is(one("{\"priority\":\"soon\",\"x\":1}"), "missing-argument", "several problems");
	str_is(res.calls[0].error, "missing required argument \"title\"; argument \"priority\" "
		   "is \"soon\", not one of: low, medium, high; unexpected argument \"x\" "
		   "(create_task takes: title, dueDate, priority, rationale); missing required "
		   "argument \"rationale\": say in one sentence why this step serves the mission",
		   "every problem named, schema order");
	str_is(mood("{\"level\":\"3\",\"rationale\":\"r\"}"), "wrong-type", "string for a number");
	str_is(mood("{\"level\":1,\"count\":1.5,\"rationale\":\"r\"}"), "wrong-type",
		   "fraction for an integer");
	str_is(res.calls[0].error, "argument \"count\" must be an integer, not a number",
		   "integer text");
	str_is(mood("{\"level\":1,\"count\":7,\"rationale\":\"r\"}"), "not-in-enum",
		   "integer outside its enum");
	str_is(mood("{\"level\":1,\"isAllDay\":\"yes\",\"rationale\":\"r\"}"), "wrong-type",
		   "string for a boolean");
	str_is(mood("{\"level\":1,\"lines\":{},\"rationale\":\"r\"}"), "wrong-type",
		   "object for an array");
	str_is(mood("{\"level\":1,\"patch\":[],\"rationale\":\"r\"}"), "wrong-type",
		   "array for an object");
}

static void
test_argument_rejections(void)
{
	char	   *big;
	char	   *deep;

	str_is(one("{\"title\":"), "arguments-not-json", "arguments not parseable");
	str_is(res.calls[0].error, "arguments are not valid JSON (invalid-json): send one JSON "
		   "object", "not-JSON text");
	str_is(one("{\"title\":\"x\",\"rationale\":\"r\"} {}"), "arguments-not-json",
		   "two values");
	str_is(one("{'title':'x'}"), "arguments-not-json", "single quotes (strict mode)");
	str_is(one("[1,2]"), "arguments-not-object", "arguments an array");
	str_is(one("\"title\""), "arguments-not-object", "arguments a string");
	str_is(one("42"), "arguments-not-object", "arguments a number");
	str_is(one(""), "missing-argument", "empty arguments count as {}");
	ok(strstr(res.calls[0].error, "\"rationale\"") != NULL, "... and the rationale is missing too");
	str_is(one("{\"title\":\"a\\u0000b\",\"rationale\":\"r\"}"), "nul-character",
		   "\\u0000 in a value");
	str_is(one("{\"title\\u0000x\":\"a\",\"rationale\":\"r\"}"), "nul-character",
		   "\\u0000 in a key (json-c would cut the key short)");
	str_is(one("{\"title\":\"a\\\\u0000\",\"rationale\":\"r\"}"), "",
		   "an escaped backslash before u0000 is no NUL");
	str_is(one("{\"title\":\"x\",\"n\":1e400,\"rationale\":\"r\"}"), "number-out-of-range",
		   "1e400");
	/* json-c up to 0.18 saturates it (caught after the parse), 0.19 refuses it */
	str_is(one("{\"title\":\"x\",\"n\":123456789012345678901234567890,\"rationale\":\"r\"}"),
		   json_c_version_num() >= 0x001300 ? "arguments-not-json" : "number-out-of-range",
		   "a 30-digit integer");
	str_is(one("{\"title\":\"\xff\",\"rationale\":\"r\"}"), "invalid-utf8", "bad UTF-8 inside "
		   "the arguments is refused with the answer");
	big = malloc(TOOL_CALLS_MAX_ARGS + 64);
	strcpy(big, "{\"title\":\"");
	memset(big + 10, 'a', TOOL_CALLS_MAX_ARGS);
	strcpy(big + 10 + TOOL_CALLS_MAX_ARGS, "\",\"rationale\":\"r\"}");
	str_is(one(big), "arguments-too-large", "arguments over 64 KiB");
	free(big);
	deep = malloc(400);
	strcpy(deep, "{\"rationale\":\"r\",\"title\":\"x\",\"d\":");
	for (int i = 0; i < 100; i++)
		strcat(deep, "[");
	str_is(one(deep), "arguments-not-json", "nesting beyond 64 levels");
	str_is(res.calls[0].error, "arguments are not valid JSON (nesting-too-deep): send one "
		   "JSON object", "depth named");
	free(deep);
}

static void
test_call_shapes(void)
{
	const char *b;

	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
		"\"function\":{\"name\":\"launch_rocket\",\"arguments\":\"{}\"}}]}}]}";
	parse_text(b);
	str_is(res.calls[0].code, "unknown-tool", "unknown tool");
	str_is(res.calls[0].error, "unknown tool \"launch_rocket\": call only the functions "
		   "offered in tools", "unknown tool text");
	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":"
		"{\"arguments\":\"{}\"}}]}}]}";
	parse_text(b);
	str_is(res.calls[0].code, "tool-name-missing", "no function name");
	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\"}]}}]}";
	parse_text(b);
	ok(res.ok && res.calls[0].ok == false, "no function at all: an invalid call");
	str_is(res.calls[0].arguments, "{}", "echoed arguments default to {}");
	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\",\"type\":\"retrieval\","
		"\"function\":{\"name\":\"undo_drink\",\"arguments\":\"{}\"}}]}}]}";
	parse_text(b);
	str_is(res.calls[0].code, "unsupported-call-type", "type other than function");
	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":"
		"{\"name\":\"undo_drink\",\"arguments\":{\"rationale\":\"r\"}}}]}}]}";
	parse_text(b);
	ok(res.ok && res.calls[0].ok, "arguments as an object are accepted");
	str_is(res.calls[0].arguments, "{\"rationale\":\"r\"}", "and echoed as a string");
	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":"
		"{\"name\":\"undo_drink\",\"arguments\":7}}]}}]}";
	parse_text(b);
	str_is(res.calls[0].code, "arguments-not-object", "arguments a number value");
	b = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":"
		"{\"name\":\"undo_drink\",\"arguments\":\"{\\\"rationale\\\":\\\"r\\\"}\"}}]}}]}";
	parse_text(b);
	ok(res.ok && res.calls[0].ok && json_object_object_length(res.calls[0].params) == 0,
	   "a tool without parameters: empty params");
}

static void
test_several_calls(void)
{
	char	   *b = answer("tool_calls", "Ich lege drei Dinge an.", 4,
						   "a|create_task|{\"title\":\"Eins\",\"rationale\":\"r1\"}",
						   "b|launch_rocket|{}",
						   "c|create_task|{\"title\":2,\"rationale\":\"r3\"}",
						   "d|log_mood|{\"level\":4,\"rationale\":\"r4\"}");

	ok(parse_text(b), "four calls in one message");
	free(b);
	ok(res.n_calls == 4 && res.n_valid == 2, "two valid, two invalid");
	ok(res.calls[0].ok && !res.calls[1].ok && !res.calls[2].ok && res.calls[3].ok,
	   "each judged on its own");
	str_is(res.calls[1].id, "b", "ids in order (b)");
	str_is(res.calls[3].id, "d", "ids in order (d)");
	str_is(res.content, "Ich lege drei Dinge an.", "content next to calls");
	tool_response_reject(&res, 3, "step-limit", "five steps are already planned");
	ok(res.n_valid == 1 && !res.calls[3].ok && res.calls[3].params == NULL, "reject after the fact");
	str_is(res.calls[3].error, "five steps are already planned", "reject text");
	tool_response_reject(&res, 3, "x", "y");
	ok(res.n_valid == 1, "rejecting twice counts once");
	tool_response_reject(&res, 9, "x", "y");
	tool_response_reject(&res, -1, "x", "y");
	ok(res.n_valid == 1, "out of range: nothing happens");
}

static void
test_answer_rejections(void)
{
	char		many[8192];
	char		id[200];

	ok(!parse_text("not json"), "answer not JSON");
	str_is(res.reason, "invalid-json", "reason invalid-json");
	ok(!parse_text("[1]") && strcmp(res.reason, "not-an-object") == 0, "answer an array");
	ok(!parse_text("{}") && strcmp(res.reason, "no-choices") == 0, "no choices");
	ok(!parse_text("{\"choices\":[]}") && strcmp(res.reason, "no-choices") == 0, "empty choices");
	ok(!parse_text("{\"choices\":[7]}") && strcmp(res.reason, "no-message") == 0, "choice not object");
	ok(!parse_text("{\"choices\":[{\"message\":\"x\"}]}") && strcmp(res.reason, "no-message") == 0,
	   "message not an object");
	ok(!parse_text("{\"choices\":[{\"message\":{\"content\":5}}]}") &&
	   strcmp(res.reason, "content-not-string") == 0, "content not a string");
	ok(!parse_text("{\"choices\":[{\"message\":{\"content\":\"a\\u0000\"}}]}") &&
	   strcmp(res.reason, "nul-character") == 0, "content with \\u0000");
	ok(!parse_text("{\"choices\":[{\"message\":{\"content\":\"\xc3\"}}]}") &&
	   strcmp(res.reason, "invalid-utf8") == 0, "content not UTF-8");
	ok(!parse_text("{\"choices\":[{\"message\":{\"tool_calls\":{}}}]}") &&
	   strcmp(res.reason, "tool-calls-not-array") == 0, "tool_calls not an array");
	ok(!parse_text("{\"choices\":[{\"message\":{\"tool_calls\":[5]}}]}") &&
	   strcmp(res.reason, "tool-call-not-object") == 0, "entry not an object");
	ok(!parse_text("{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{}}]}}]}") &&
	   strcmp(res.reason, "tool-call-id-missing") == 0, "id missing");
	ok(!parse_text("{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"\"}]}}]}") &&
	   strcmp(res.reason, "tool-call-id-missing") == 0, "id empty");
	ok(!parse_text("{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":1}]}}]}") &&
	   strcmp(res.reason, "tool-call-id-missing") == 0, "id not a string");
	memset(id, 'x', 129);
	id[129] = '\0';
	snprintf(many, sizeof(many), "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"%s\"}]}}]}", id);
	ok(!parse_text(many) && strcmp(res.reason, "tool-call-id-invalid") == 0, "id of 129 bytes");
	ok(!parse_text("{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"a\"},{\"id\":\"a\"}]}}]}") &&
	   strcmp(res.reason, "tool-call-id-repeated") == 0, "repeated id");
	strcpy(many, "{\"choices\":[{\"message\":{\"tool_calls\":[");
	for (int i = 0; i < TOOL_CALLS_MAX_PER_MESSAGE + 1; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s{\"id\":\"c%d\"}",
				 i ? "," : "", i);
	strcat(many, "]}}]}");
	ok(!parse_text(many) && strcmp(res.reason, "too-many-tool-calls") == 0, "21 calls");
	ok(tool_response_parse(NULL, TOOL_CALLS_MAX_ANSWER + 1, offered, &res) == false &&
	   strcmp(res.reason, "answer-too-large") == 0, "answer over 1 MiB refused by length");
	tool_response_free(&res);
	ok(!tool_response_parse("{\"choices\":[]} trailing", 23, offered, &res), "trailing text");
	ok(!tool_response_parse("{\"a\":1}", 5, offered, &res), "len respected (cut answer)");
}

static void
test_stop_and_usage(void)
{
	char	   *b = answer("stop", "Plan: Milch kaufen.", 0);

	ok(parse_text(b) && res.n_calls == 0 && res.finish == TOOL_FINISH_STOP, "stop with content");
	str_is(res.content, "Plan: Milch kaufen.", "summary content");
	free(b);
	b = answer("length", "Plan: Mil", 0);
	ok(parse_text(b) && res.finish == TOOL_FINISH_LENGTH, "cut off: length");
	free(b);
	b = answer("content_filter", NULL, 0);
	ok(parse_text(b) && res.finish == TOOL_FINISH_OTHER, "content_filter: other");
	free(b);
	b = answer(NULL, "x", 0);
	ok(parse_text(b) && res.finish == TOOL_FINISH_STOP, "no finish_reason: stop");
	free(b);
	b = answer("stop", NULL, 1, "c|undo_drink|{\"rationale\":\"r\"}");
	ok(parse_text(b) && res.finish == TOOL_FINISH_CALLS, "stop with calls (Ollama): calls");
	free(b);
	ok(parse_text("{\"choices\":[{\"message\":{}}]}") && res.total_tokens == -1 &&
	   res.prompt_tokens == -1 && res.content == NULL, "no usage: -1, no content: NULL");
	ok(parse_text("{\"choices\":[{\"message\":{}}],\"usage\":{\"prompt_tokens\":5,"
				  "\"completion_tokens\":7}}") && res.total_tokens == 12,
	   "total from prompt + completion");
	ok(parse_text("{\"choices\":[{\"message\":{}}],\"usage\":{\"total_tokens\":-3}}") &&
	   res.total_tokens == -1, "negative tokens ignored");
	ok(parse_text("{\"choices\":[{\"message\":{}}],\"usage\":[1]}") && res.total_tokens == -1,
	   "usage of the wrong type ignored");
}

static void
test_check_direct(void)
{
	json_object *calls = json_tokener_parse("[{\"id\":\"x\",\"type\":\"function\",\"function\":"
											"{\"name\":\"undo_drink\",\"arguments\":"
											"\"{\\\"rationale\\\":\\\"r\\\"}\"}}]");

	ok(tool_calls_check(calls, offered, &res) && res.n_valid == 1 &&
	   res.finish == TOOL_FINISH_CALLS, "tool_calls_check on an array");
	tool_response_free(&res);
	ok(tool_calls_check(NULL, offered, &res) && res.n_calls == 0 &&
	   res.finish == TOOL_FINISH_STOP, "no tool_calls");
	tool_response_free(&res);
	ok(tool_calls_check(calls, NULL, &res) && res.n_valid == 0 &&
	   strcmp(res.calls[0].code, "unknown-tool") == 0, "nothing offered: unknown tool");
	tool_response_free(&res);
	json_object_put(calls);
}

static const char *
msg_json(json_object *m)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN |
																	 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(m);
	return buf;
}

static void
test_messages(void)
{
	char	   *b = answer("tool_calls", NULL, 2,
						   "a|create_task|{\"title\":\"Eins\",\"rationale\":\"r1\"}",
						   "b|create_task|{\"title\":\"Zwei\"}");
	json_object *msgs;
	char	   *body;

	parse_text(b);
	free(b);
	str_is(msg_json(tool_message_assistant(&res)),
		   "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"a\",\"type\":"
		   "\"function\",\"function\":{\"name\":\"create_task\",\"arguments\":\"{\\\"title\\\":"
		   "\\\"Eins\\\",\\\"rationale\\\":\\\"r1\\\"}\"}},{\"id\":\"b\",\"type\":\"function\","
		   "\"function\":{\"name\":\"create_task\",\"arguments\":\"{\\\"title\\\":\\\"Zwei\\\"}\"}}]}",
		   "assistant message echoes every call");
	str_is(msg_json(tool_message_reply(&res.calls[0])),
		   "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"recorded for the user's review\"}",
		   "tool message for a valid call");
	str_is(msg_json(tool_message_reply(&res.calls[1])),
		   "{\"role\":\"tool\",\"tool_call_id\":\"b\",\"content\":\"missing required argument "
		   "\\\"rationale\\\": say in one sentence why this step serves the mission\"}",
		   "tool message for an invalid call names the error");

	msgs = tool_messages_initial("Du bist ein Planer.", "# Mission: Einkauf");
	ok(json_object_array_length(msgs) == 2, "initial: system and user");
	ok(tool_messages_append_round(msgs, &res) && json_object_array_length(msgs) == 5,
	   "a round appends assistant + one tool message per call");
	ok(!tool_messages_append_round(NULL, &res), "append refuses a non-array");
	body = tool_request_body("gpt-4o-mini", 0.3, msgs, offered);
	ok(body && strncmp(body, "{\"model\":\"gpt-4o-mini\",\"temperature\":0.3,\"tools\":"
					   "[{\"type\":\"function\",\"function\":{\"name\":\"create_task\"", 95) == 0,
	   "request body: model, temperature as the json client writes it, then the tools "
	   "(the leading bytes missions offered the same functions share)");
	ok(body && strstr(body, "],\"tool_choice\":\"auto\",\"messages\":"
					  "[{\"role\":\"system\",\"content\":\"Du bist ein Planer.\"},") != NULL,
	   "request body: tool_choice auto, then the messages");
	ok(body && strlen(body) > 2 && strcmp(body + strlen(body) - 2, "]}") == 0,
	   "request body: the messages last");
	free(body);
	{
		json_object *none = json_object_new_array();

		body = tool_request_body("m", 0.0, msgs, none);
		ok(body && strstr(body, "\"tools\"") == NULL && strstr(body, "tool_choice") == NULL,
		   "no tools offered: neither tools nor tool_choice");
		free(body);
		json_object_put(none);
	}
	json_object_put(msgs);

	b = answer("stop", "Fertig.", 0);
	parse_text(b);
	free(b);
	str_is(msg_json(tool_message_assistant(&res)),
		   "{\"role\":\"assistant\",\"content\":\"Fertig.\"}", "a stop message has no tool_calls");
}

int
main(void)
{
	setup_offered();
	test_valid_call();
	test_call_rejections();
	test_argument_rejections();
	test_call_shapes();
	test_several_calls();
	test_answer_rejections();
	test_stop_and_usage();
	test_check_direct();
	test_messages();
	tool_response_free(&res);
	json_object_put(offered);
	return done_testing();
}
