/*
 * test_tool_schema.c: a mana_ai.tools parameter list as an OpenAI
 * function schema (tool_schema.h), every refusal and the happy paths,
 * without PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_schema.h"
#include "tap.h"

/* tap.h's is_str shadows _c inside ok(); compare here instead. */
#define str_is(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	ok(same_, __VA_ARGS__); \
	if (!same_) printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

static char err[TOOL_SCHEMA_ERROR_LEN];
static char *last;

#define RATIONALE_PROP "\"rationale\":{\"type\":\"string\",\"description\":\"Warum dieser " \
	"Schritt der Mission dient, in einem Satz; der Nutzer liest das, bevor er den " \
	"Vorschlag freigibt.\"}"

/* The schema of a parameter list as text ("" and err set when refused). */
static const char *
schema(const char *params)
{
	json_object *p = json_tokener_parse(params);
	json_object *s;

	free(last);
	last = NULL;
	err[0] = '\0';
	s = tool_schema_parameters(p, err, sizeof(err));
	json_object_put(p);
	if (s == NULL)
		return "";
	last = strdup(json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN |
												 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(s);
	return last;
}

/* The error text of a refused list (NULL when it was accepted). */
static const char *
refused(const char *params)
{
	return schema(params)[0] == '\0' ? err : NULL;
}

static void
test_happy(void)
{
	str_is(schema("[]"),
		   "{\"type\":\"object\",\"properties\":{" RATIONALE_PROP "},"
		   "\"required\":[\"rationale\"],\"additionalProperties\":false}",
		   "no parameters: only the rationale");
	str_is(schema("[{\"name\":\"title\",\"type\":\"string\",\"required\":true,"
				  "\"description\":\"Titel der Aufgabe\"},"
				  "{\"name\":\"priority\",\"type\":\"string\",\"required\":false,"
				  "\"enum\":[\"low\",\"medium\",\"high\"]}]"),
		   "{\"type\":\"object\",\"properties\":{"
		   "\"title\":{\"type\":\"string\",\"description\":\"Titel der Aufgabe\"},"
		   "\"priority\":{\"type\":\"string\",\"enum\":[\"low\",\"medium\",\"high\"]},"
		   RATIONALE_PROP "},\"required\":[\"title\",\"rationale\"],"
		   "\"additionalProperties\":false}",
		   "create_task: description kept, enum kept, required in order, rationale last");
	str_is(schema("[{\"name\":\"n\",\"type\":\"number\",\"required\":true},"
				  "{\"name\":\"i\",\"type\":\"integer\",\"enum\":[1,2,3]},"
				  "{\"name\":\"b\",\"type\":\"boolean\",\"required\":false},"
				  "{\"name\":\"a\",\"type\":\"array\",\"required\":true},"
				  "{\"name\":\"o\",\"type\":\"object\",\"description\":\"  \"}]"),
		   "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\"},"
		   "\"i\":{\"type\":\"integer\",\"enum\":[1,2,3]},\"b\":{\"type\":\"boolean\"},"
		   "\"a\":{\"type\":\"array\",\"items\":{}},\"o\":{\"type\":\"object\"},"
		   RATIONALE_PROP "},\"required\":[\"n\",\"a\",\"rationale\"],"
		   "\"additionalProperties\":false}",
		   "every type; array gets items {}; blank description and absent required dropped");
	ok(refused("[{\"name\":\"level\",\"type\":\"number\",\"required\":true,"
			   "\"enum\":[1,2.5,3]}]") == NULL, "number enum with a fraction is fine");
	ok(refused("[{\"name\":\"_x9\",\"type\":\"string\",\"required\":false}]") == NULL,
	   "a name may start with an underscore");
}

static void
test_function_entry(void)
{
	json_object *p = json_tokener_parse("[{\"name\":\"taskId\",\"type\":\"string\","
										"\"required\":true}]");
	json_object *e = tool_schema_function("complete_task", "Hakt eine Aufgabe ab.", p,
										  err, sizeof(err));
	json_object *fn = NULL;
	json_object *v = NULL;

	ok(e != NULL, "complete_task becomes a function entry");
	str_is(json_object_get_string(json_object_object_get(e, "type")), "function",
		   "type is function");
	ok(json_object_object_get_ex(e, "function", &fn), "entry has function");
	str_is(json_object_get_string(json_object_object_get(fn, "name")), "complete_task",
		   "function.name");
	str_is(json_object_get_string(json_object_object_get(fn, "description")),
		   "Hakt eine Aufgabe ab.", "function.description");
	ok(json_object_object_get_ex(fn, "parameters", &v) &&
	   json_object_object_get_ex(v, "properties", &v) &&
	   json_object_object_get_ex(v, "taskId", NULL) &&
	   json_object_object_get_ex(v, "rationale", NULL), "function.parameters is the schema");
	json_object_put(e);

	e = tool_schema_function("undo_drink", "   ", p, err, sizeof(err));
	ok(e && json_object_object_get_ex(json_object_object_get(e, "function"),
									  "description", NULL) == 0,
	   "blank description omitted");
	json_object_put(e);
	e = tool_schema_function("stop_timer", NULL, p, err, sizeof(err));
	ok(e != NULL, "NULL description is fine");
	json_object_put(e);

	ok(tool_schema_function("", "d", p, err, sizeof(err)) == NULL, "empty tool name refused");
	str_is(err, "invalid tool name \"\" (1 to 64 of a-z, A-Z, 0-9, _ and -)",
		   "error names the rule");
	ok(tool_schema_function("create task", "d", p, err, sizeof(err)) == NULL,
	   "tool name with a space refused");
	ok(tool_schema_function("a23456789012345678901234567890123456789012345678901234567890"
							"12345", "d", p, err, sizeof(err)) == NULL,
	   "65-character tool name refused");
	ok(tool_schema_function(NULL, "d", p, err, sizeof(err)) == NULL, "NULL tool name refused");
	json_object_put(p);
	p = json_tokener_parse("{}");
	ok(tool_schema_function("x", "d", p, err, sizeof(err)) == NULL,
	   "bad parameters refuse the function too");
	json_object_put(p);
}

static void
test_shape_refusals(void)
{
	char		many[8192] = "[";

	str_is(refused("{}"), "parameters must be a JSON array ([] for none)", "object refused");
	str_is(refused("null"), "parameters must be a JSON array ([] for none)", "null refused");
	str_is(refused("[1]"), "parameter 0 is not a JSON object {name, type, required, "
		   "description, enum?}", "element not an object");
	for (int i = 0; i < TOOL_SCHEMA_MAX_PARAMS + 1; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
				 "%s{\"name\":\"p%d\",\"type\":\"string\"}", i ? "," : "", i);
	strcat(many, "]");
	str_is(refused(many), "a tool has at most 64 parameters, not 65", "65 parameters refused");
	str_is(refused("[{\"name\":\"t\",\"type\":\"string\",\"default\":\"x\"}]"),
		   "parameter 0 (\"t\") has unknown key \"default\" (allowed: name, type, "
		   "required, description, enum)", "unknown key");
}

static void
test_name_refusals(void)
{
	str_is(refused("[{\"type\":\"string\"}]"),
		   "parameter 0 has no name (a non-empty string)", "name missing");
	str_is(refused("[{\"name\":\"\",\"type\":\"string\"}]"),
		   "parameter 0 has no name (a non-empty string)", "empty name");
	str_is(refused("[{\"name\":7,\"type\":\"string\"}]"),
		   "parameter 0 has no name (a non-empty string)", "name not a string");
	str_is(refused("[{\"name\":\"due date\",\"type\":\"string\"}]"),
		   "parameter 0 has an invalid name \"due date\" (an identifier of at most 63 "
		   "characters, such as dueDate)", "name with a space");
	ok(refused("[{\"name\":\"1x\",\"type\":\"string\"}]") != NULL, "name starting with a digit");
	str_is(refused("[{\"name\":\"rationale\",\"type\":\"string\"}]"),
		   "parameter 0 may not be named \"rationale\": every function gets that "
		   "argument already", "a parameter named rationale");
	str_is(refused("[{\"name\":\"title\",\"type\":\"string\"},"
				   "{\"name\":\"title\",\"type\":\"number\"}]"),
		   "parameter name \"title\" is used twice", "duplicate names");
}

static void
test_type_refusals(void)
{
	str_is(refused("[{\"name\":\"d\"}]"), "parameter 0 (\"d\") has no type (one of string, "
		   "number, integer, boolean, array, object)", "type missing");
	str_is(refused("[{\"name\":\"d\",\"type\":\"date\"}]"),
		   "parameter 0 (\"d\") has an unknown type \"date\" (one of string, number, "
		   "integer, boolean, array, object)", "unknown type");
	ok(refused("[{\"name\":\"d\",\"type\":[\"string\",\"null\"]}]") != NULL,
	   "a type list is refused");
	str_is(refused("[{\"name\":\"d\",\"type\":\"string\",\"required\":\"yes\"}]"),
		   "parameter 0 (\"d\"): required must be true or false", "required not boolean");
	str_is(refused("[{\"name\":\"d\",\"type\":\"string\",\"description\":5}]"),
		   "parameter 0 (\"d\"): description must be a string (without \\u0000)",
		   "description not a string");
	ok(refused("[{\"name\":\"d\",\"type\":\"string\",\"description\":\"a\\u0000b\"}]") != NULL,
	   "description with NUL");
}

static void
test_enum_refusals(void)
{
	str_is(refused("[{\"name\":\"b\",\"type\":\"boolean\",\"enum\":[true]}]"),
		   "parameter 0 (\"b\"): enum is allowed only on string, number and integer "
		   "parameters, not on boolean", "enum on boolean");
	ok(refused("[{\"name\":\"a\",\"type\":\"array\",\"enum\":[\"x\"]}]") != NULL, "enum on array");
	ok(refused("[{\"name\":\"o\",\"type\":\"object\",\"enum\":[\"x\"]}]") != NULL, "enum on object");
	str_is(refused("[{\"name\":\"p\",\"type\":\"string\",\"enum\":[]}]"),
		   "parameter 0 (\"p\"): enum must be a non-empty array of at most 100 values",
		   "empty enum");
	ok(refused("[{\"name\":\"p\",\"type\":\"string\",\"enum\":\"low\"}]") != NULL,
	   "enum not an array");
	str_is(refused("[{\"name\":\"p\",\"type\":\"string\",\"enum\":[\"low\",3]}]"),
		   "parameter 0 (\"p\"): enum value 1 is not of type string", "number in a string enum");
	ok(refused("[{\"name\":\"p\",\"type\":\"number\",\"enum\":[1,\"2\"]}]") != NULL,
	   "string in a number enum");
	ok(refused("[{\"name\":\"p\",\"type\":\"integer\",\"enum\":[1,1.5]}]") != NULL,
	   "fraction in an integer enum");
	str_is(refused("[{\"name\":\"p\",\"type\":\"string\",\"enum\":[\"a\",\"b\",\"a\"]}]"),
		   "parameter 0 (\"p\"): enum value 2 repeats value 0", "repeated enum value");
	ok(refused("[{\"name\":\"p\",\"type\":\"number\",\"enum\":[1,1.0]}]") != NULL,
	   "1 and 1.0 are the same number");
	ok(refused("[{\"name\":\"p\",\"type\":\"string\",\"enum\":[null]}]") != NULL, "null in enum");
}

static void
test_text_api(void)
{
	const char *good = "[{\"name\":\"title\",\"type\":\"string\",\"required\":true}]";
	char	   *t;

	ok(tool_schema_check_text(good, strlen(good), err, sizeof(err)), "check_text accepts");
	ok(!tool_schema_check_text("[{\"name\":", 9, err, sizeof(err)), "check_text: bad JSON");
	str_is(err, "parameters are not valid JSON", "bad JSON error");
	ok(!tool_schema_check_text("[] x", 4, err, sizeof(err)), "check_text: trailing garbage");
	ok(!tool_schema_check_text("[]", 1, err, sizeof(err)), "check_text respects len");
	ok(!tool_schema_check_text("[{\"name\":\"x\",\"type\":\"bool\"}]", 28, err, sizeof(err)) &&
	   strstr(err, "unknown type \"bool\"") != NULL, "check_text: rule refusal");
	t = tool_schema_function_text("create_note", "Legt eine Notiz an.", good, strlen(good),
								  err, sizeof(err));
	ok(t && strncmp(t, "{\"type\":\"function\",\"function\":{\"name\":\"create_note\","
					"\"description\":\"Legt eine Notiz an.\",\"parameters\":{", 96) == 0,
	   "function_text");
	free(t);
	ok(tool_schema_function_text("x", "d", "{}", 2, err, sizeof(err)) == NULL,
	   "function_text refuses");
}

/* Every tool of the product's catalog (catalog/tool-catalog.json) maps. */
static void
test_catalog(void)
{
	const char *path = getenv("TOOL_CATALOG");
	json_object *cat;
	json_object *tools = NULL;
	size_t		mapped = 0;
	size_t		n;

	/* The repository's copy, from tests/unit (as run.sh runs it). */
	if (path == NULL)
		path = "../../catalog/tool-catalog.json";
	cat = json_object_from_file(path);
	if (cat == NULL || !json_object_object_get_ex(cat, "tools", &tools))
	{
		ok(0, "the product catalog is readable at %s", path);
		json_object_put(cat);
		return;
	}
	n = json_object_array_length(tools);
	for (size_t i = 0; i < n; i++)
	{
		json_object *t = json_object_array_get_idx(tools, i);
		json_object *e = tool_schema_function(
			json_object_get_string(json_object_object_get(t, "name")), "Beschreibung",
			json_object_object_get(t, "parameters"), err, sizeof(err));

		if (e == NULL)
			printf("# %s: %s\n", json_object_get_string(json_object_object_get(t, "name")), err);
		mapped += e != NULL;
		json_object_put(e);
	}
	ok(n == 62 && mapped == n, "all %zu of the catalog's %zu tools map", mapped, n);
	json_object_put(cat);
}

int
main(void)
{
	test_happy();
	test_function_entry();
	test_shape_refusals();
	test_name_refusals();
	test_type_refusals();
	test_enum_refusals();
	test_text_api();
	test_catalog();
	free(last);
	return done_testing();
}
