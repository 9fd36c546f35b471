/*
 * test_json_strict.c: every json-c version refuses the same inputs.
 *
 * json_strict_check() carries strictness (RFC 8259 syntax, well-formed
 * UTF-8) before json-c parses, because json-c's strict mode differs by
 * version (0.18 refuses every non-ASCII string).  The same table runs with
 * the flags the probe chose for the json-c this links and with the
 * fallback flags (no JSON_TOKENER_STRICT), through every strict entry
 * point that takes JSON text alone: mana_json_parse_strict, tool_json_parse
 */
#include <stdio.h>
#include <string.h>

#include "json_strict.h"
#include "tool_json.h"
#include "tap.h"

typedef struct Case
{
	const char *text;
	int			accepted;
	const char *why;
} Case;

static const Case cases[] = {
	{"{\"k\":\"F\xc3\xa4lligkeit\"}", 1, "UTF-8 umlaut in a string"},
	{"{\"F\xc3\xa4lligkeit\":1}", 1, "UTF-8 umlaut in a key"},
	{"[\"\xf0\x9f\x98\x80\", \"\xe2\x82\xac\"]", 1, "4- and 3-byte UTF-8"},
	{"{\"k\":\"\\u00e4\\n\\t\\\"\\\\\\/\"}", 1, "escapes"},
	{"  [1, -0, 0.5, -1.5e-3, 2E+10, true, false, null, {}, []]  ", 1, "all kinds, white space"},
	{"\"x\"", 1, "a bare string"},
	{"{\"k\":\"\xc3\"}", 0, "a truncated UTF-8 sequence"},
	{"{\"k\":\"\xc0\xaf\"}", 0, "an overlong UTF-8 sequence"},
	{"{\"k\":\"\xed\xa0\x80\"}", 0, "a UTF-16 surrogate as UTF-8"},
	{"{\"k\":\"\xf4\x90\x80\x80\"}", 0, "past U+10FFFF"},
	{"{\"k\":\"\xff\"}", 0, "a byte never in UTF-8"},
	{"{'k':1}", 0, "single quotes"},
	{"{k:1}", 0, "an unquoted key"},
	{"[1,]", 0, "a trailing comma in an array"},
	{"{\"k\":1,}", 0, "a trailing comma in an object"},
	{"{\"k\":NaN}", 0, "NaN"},
	{"{\"k\":Infinity}", 0, "Infinity"},
	{"{\"k\":-Infinity}", 0, "-Infinity"},
	{"{\"k\":True}", 0, "True"},
	{"{\"k\":nul}", 0, "a cut literal"},
	{"{\"k\":01}", 0, "a leading zero"},
	{"{\"k\":+1}", 0, "a leading plus"},
	{"{\"k\":.5}", 0, "no integer part"},
	{"{\"k\":1.}", 0, "no fraction digits"},
	{"{\"k\":1e}", 0, "no exponent digits"},
	{"{\"k\":0x10}", 0, "hexadecimal"},
	{"{\"k\":\"a\tb\"}", 0, "a raw tab in a string"},
	{"{\"k\":\"a\nb\"}", 0, "a raw newline in a string"},
	{"{\"k\":\"\\x41\"}", 0, "an unknown escape"},
	{"{\"k\":\"\\u12\"}", 0, "a short \\u escape"},
	{"/* c */ {\"k\":1}", 0, "a comment"},
	{"{\"k\":1} // c", 0, "a trailing comment"},
	{"{\"k\":1", 0, "an unclosed object"},
	{"[1 2]", 0, "a missing comma"},
	{"{\"k\" 1}", 0, "a missing colon"},
	{"{\"k\":1}{}", 0, "two values"},
	{"", 0, "nothing"},
};

static void
run_table(const char *mode)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const Case *c = &cases[i];
		size_t		len = strlen(c->text);
		json_object *o = mana_json_parse_strict(c->text, len);
		const char *code = NULL;
		json_object *t = tool_json_parse(c->text, len, &code);

		ok((o != NULL) == c->accepted, "%s: mana_json_parse_strict %s %s", mode,
		   c->accepted ? "accepts" : "refuses", c->why);
		ok((t != NULL) == c->accepted, "%s: tool_json_parse %s %s", mode,
		   c->accepted ? "accepts" : "refuses", c->why);
		json_object_put(o);
		json_object_put(t);
	}
}

int
main(void)
{
	int			probed = json_strict_flags();

	printf("# json-c %s: strict mode %s non-ASCII strings\n", json_c_version(),
		   (probed & JSON_TOKENER_STRICT) ? "accepts" : "refuses (JSON_TOKENER_STRICT left off)");
	ok(probed & JSON_TOKENER_VALIDATE_UTF8, "UTF-8 validated by json-c too");
	run_table("probed flags");
	json_strict_force_flags(JSON_TOKENER_VALIDATE_UTF8);
	run_table("without JSON_TOKENER_STRICT");
	json_strict_force_flags(0);
	ok(json_strict_flags() == probed, "probing again gives the same flags");

	/* Depth stays json-c's verdict, with the same code, in every mode. */
	{
		char		deep[200];
		const char *code = NULL;

		memset(deep, '[', 100);
		deep[100] = '\0';
		ok(tool_json_parse(deep, 100, &code) == NULL && code &&
		   strcmp(code, "nesting-too-deep") == 0, "100 open brackets: nesting-too-deep");
		code = NULL;
		ok(tool_json_parse("{\"k\":\"\xc3\"}", 8, &code) == NULL && code &&
		   strcmp(code, "invalid-utf8") == 0, "bad UTF-8: invalid-utf8");
	}
	return done_testing();
}
