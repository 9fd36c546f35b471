/*
 * test_plan_parse.c: the strict planner parser (SPEC 7.4) and the agent
 * policy filter (SPEC 7.2), without PostgreSQL.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan_parse.h"
#include "policy.h"
#include "tap.h"

/*
 * tap.h's is_str expands ok(_c, ...) inside a block that already declares
 * _c, so the compiler sees a self-initialisation; compare here instead.
 */
#define str_is(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	ok(same_, __VA_ARGS__); \
	if (!same_) printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

static const PlanTool catalog[] = {
	{"create_task", false},
	{"complete_task", false},
	{"create_event", true},		/* denied by the (simulated) agent policy */
};
#define N_CATALOG (sizeof(catalog) / sizeof(catalog[0]))

#define GOOD_STEP "{\"summary\":\"Aufgabe\",\"toolName\":\"create_task\"," \
	"\"params\":{\"title\":\"Milch\"},\"rationale\":\"weil\"}"
#define GOOD_PLAN "{\"summary\":\"Plan\",\"steps\":[" GOOD_STEP "]}"

static PlanParseResult res;

/* Parse text; return the reason ("" when accepted). */
static const char *
parse(const char *text)
{
	plan_parse_result_free(&res);
	plan_parse(text, strlen(text), catalog, N_CATALOG, &res);
	return res.ok ? "" : res.reason;
}

static const char *
plan_str(const char *key)
{
	json_object *v = NULL;

	if (!res.ok || !json_object_object_get_ex(res.plan, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static json_object *
step_field(int i, const char *key)
{
	json_object *steps = NULL;
	json_object *v = NULL;

	if (!res.ok || !json_object_object_get_ex(res.plan, "steps", &steps))
		return NULL;
	json_object_object_get_ex(json_object_array_get_idx(steps, i), key, &v);
	return v;
}

static size_t
n_steps(void)
{
	json_object *steps = NULL;

	if (!res.ok || !json_object_object_get_ex(res.plan, "steps", &steps))
		return (size_t) -1;
	return json_object_array_length(steps);
}

static void
test_extraction(void)
{
	str_is(parse("Hier ist der Plan:\n```json\n" GOOD_PLAN "\n```\nViel Erfolg!"), "",
		   "fenced ```json block inside prose is accepted");
	str_is(plan_str("summary"), "Plan", "its summary is kept");
	str_is(json_object_get_string(step_field(0, "toolName")), "create_task",
		   "its toolName is kept");

	str_is(parse("```\n" GOOD_PLAN "\n```"), "", "bare ``` block is accepted");
	str_is(parse("```JSON\n" GOOD_PLAN "\n```"), "", "```JSON (upper case) is accepted");
	str_is(parse("  \n" GOOD_PLAN "\n\n"), "", "a bare object is accepted");
	str_is(parse("Sure! ```json " GOOD_PLAN " ``` done"), "",
		   "an inline fence on one line is accepted");

	str_is(parse("```json\n{\"summary\":\"eins\",\"steps\":[]}\n```\n"
				 "```json\n" GOOD_PLAN "\n```"), "", "two blocks: accepted");
	str_is(plan_str("summary"), "eins", "two blocks: the first wins");
	ok(n_steps() == 0, "two blocks: the first block's steps");

	str_is(parse("```python\nprint('x')\n```\n```json\n" GOOD_PLAN "\n```"), "",
		   "a block in another language is skipped");

	str_is(parse("Ich habe leider keinen Plan."), "no-json-found", "prose only: no-json-found");
	str_is(parse(""), "no-json-found", "empty answer: no-json-found");
	str_is(parse("Plan: " GOOD_PLAN), "no-json-found",
		   "prose before an unfenced object: no-json-found");
	str_is(parse("```json\n" GOOD_PLAN), "unterminated-fence", "unclosed fence: unterminated-fence");
}

static void
test_json_errors(void)
{
	str_is(parse("```json\n{\"steps\": [ {\"toolName\": }\n```"), "invalid-json",
		   "invalid JSON: invalid-json");
	str_is(parse("```json\n{\"steps\": []\n```"), "invalid-json", "truncated JSON: invalid-json");
	str_is(parse("```json\n{\"steps\": []} {\"x\":1}\n```"), "invalid-json",
		   "two values in one block: invalid-json");
	str_is(parse("```json\n{\"steps\": [],}\n```"), "invalid-json", "trailing comma: invalid-json");
	str_is(parse("```json\n[" GOOD_STEP "]\n```"), "not-an-object",
		   "top-level array: not-an-object");
	str_is(parse("```json\n\"steps\"\n```"), "not-an-object", "top-level string: not-an-object");
	str_is(parse("{\"summary\":\"x\"}"), "steps-missing", "no steps: steps-missing");
	str_is(parse("{\"steps\":{\"0\":" GOOD_STEP "}}"), "steps-not-array",
		   "steps an object: steps-not-array");
	str_is(parse("{\"steps\":\"create_task\"}"), "steps-not-array",
		   "steps a string: steps-not-array");
	str_is(parse("{\"steps\":null}"), "steps-missing", "steps null: steps-missing");
	str_is(parse("{\"summary\":5,\"steps\":[]}"), "summary-not-string",
		   "plan summary a number: summary-not-string");
	str_is(parse("{\"steps\":[],\"x\":\"\xff\xfe\"}"), "invalid-utf8", "bad UTF-8: invalid-utf8");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\","
				 "\"params\":{\"t\":\"a\\u0000b\"}}]}"), "nul-character",
		   "\\u0000 in a string: nul-character (jsonb cannot hold it)");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\","
				 "\"params\":{\"n\":1e400}}]}"), "number-out-of-range",
		   "1e400: number-out-of-range");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\","
				 "\"params\":{\"n\":NaN}}]}"), "invalid-json",
		   "NaN (json-c's strict mode lets it through, json_strict_check does not): invalid-json");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\","
				 "\"params\":{\"n\":123456789012345678901234567890}}]}"),
		   /* json-c up to 0.18 saturates it (caught after the parse), 0.19 refuses it */
		   json_c_version_num() >= 0x001300 ? "invalid-json" : "number-out-of-range",
		   "an integer past 64 bits: refused (number-out-of-range, invalid-json from json-c 0.19)");
}

static void
test_steps(void)
{
	str_is(parse("{\"summary\":\"nichts\",\"steps\":[]}"), "", "an empty plan is valid");
	ok(n_steps() == 0, "an empty plan has zero steps");

	str_is(parse("{\"steps\":[" GOOD_STEP ",{\"toolName\":\"no_such_tool\",\"rationale\":\"r\"}]}"),
		   "unknown-tool@steps[1]", "unknown tool: names step 1");
	ok(res.step == 1, "unknown tool: step index 1");
	ok(strstr(res.detail, "no_such_tool") != NULL, "unknown tool: detail quotes the name");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_event\",\"rationale\":\"r\"}]}"),
		   "tool-denied@steps[0]", "tool denied by policy: tool-denied");
	str_is(parse("{\"steps\":[{\"rationale\":\"r\"}]}"), "tool-name-missing@steps[0]",
		   "missing toolName");
	str_is(parse("{\"steps\":[{\"toolName\":\"\",\"rationale\":\"r\"}]}"),
		   "tool-name-missing@steps[0]", "empty toolName");
	str_is(parse("{\"steps\":[{\"toolName\":7,\"rationale\":\"r\"}]}"),
		   "tool-name-not-string@steps[0]", "toolName a number");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\"}]}"),
		   "rationale-missing@steps[0]", "missing rationale");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"\"}]}"),
		   "rationale-missing@steps[0]", "empty rationale");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\" \\n \"}]}"),
		   "rationale-missing@steps[0]", "blank rationale");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":[\"r\"]}]}"),
		   "rationale-not-string@steps[0]", "rationale an array");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\",\"params\":[1]}]}"),
		   "params-not-object@steps[0]", "params an array: params-not-object");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\",\"params\":\"x\"}]}"),
		   "params-not-object@steps[0]", "params a string: params-not-object");
	str_is(parse("{\"steps\":[" GOOD_STEP ",\"create_task\"]}"), "step-not-object@steps[1]",
		   "a step that is a string");
	str_is(parse("{\"steps\":[{\"toolName\":\"create_task\",\"rationale\":\"r\",\"summary\":{}}]}"),
		   "summary-not-string@steps[0]", "step summary an object");

	str_is(parse("{\"steps\":[{\"toolName\":\"complete_task\",\"rationale\":\"r\",\"extra\":1}]}"),
		   "", "defaults: accepted");
	ok(json_object_is_type(step_field(0, "params"), json_type_object) &&
	   json_object_object_length(step_field(0, "params")) == 0, "params defaults to {}");
	str_is(json_object_get_string(step_field(0, "summary")), "", "summary defaults to ''");
	ok(step_field(0, "extra") == NULL, "unknown step keys are dropped");
	str_is(plan_str("summary"), "", "plan summary defaults to ''");

	{
		char		big[4096] = "{\"steps\":[";

		for (int i = 0; i < PLAN_PARSE_MAX_STEPS + 1; i++)
			strcat(big, i ? "," GOOD_STEP : GOOD_STEP);
		strcat(big, "]}");
		str_is(parse(big), "too-many-steps", "21 steps: too-many-steps");
	}
}

static void
test_caps(void)
{
	size_t		n = 10 * 1024 * 1024;
	char	   *huge = malloc(n + 1);
	clock_t		t0;
	double		secs;
	int			depth = 10000;
	char	   *deep = malloc(2 * depth + 64);
	char	   *p;

	/* A 10 MB answer that would be a valid plan but for its size. */
	memset(huge, ' ', n);
	memcpy(huge, "{\"steps\":[],\"pad\":\"", 19);
	memcpy(huge + n - 2, "\"}", 2);
	huge[n] = '\0';
	t0 = clock();
	plan_parse_result_free(&res);
	plan_parse(huge, n, catalog, N_CATALOG, &res);
	secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
	str_is(res.ok ? "" : res.reason, "answer-too-large", "10 MB answer: answer-too-large");
	ok(secs < 0.05, "10 MB answer refused quickly (%.4f s)", secs);
	free(huge);

	/* 10,000 levels of arrays inside the fenced block. */
	p = deep;
	p += sprintf(p, "```json\n{\"steps\":");
	for (int i = 0; i < depth; i++)
		*p++ = '[';
	for (int i = 0; i < depth; i++)
		*p++ = ']';
	strcpy(p, "}\n```");
	str_is(parse(deep), "nesting-too-deep", "nesting 10,000 deep: nesting-too-deep");
	free(deep);

	/* Exactly at the cap of 1 MiB is still parsed. */
	n = PLAN_PARSE_MAX_ANSWER;
	huge = malloc(n + 1);
	memset(huge, ' ', n);
	memcpy(huge, "{\"steps\":[]}", 12);
	huge[n] = '\0';
	plan_parse_result_free(&res);
	plan_parse(huge, n, catalog, N_CATALOG, &res);
	ok(res.ok, "an answer of exactly 1 MiB is parsed");
	free(huge);
}

static void
test_result_json(void)
{
	char	   *j;

	parse("{\"steps\":[{\"toolName\":\"nope\",\"rationale\":\"r\"}]}");
	j = plan_parse_result_json(&res);
	ok(strstr(j, "\"ok\":false") && strstr(j, "\"reason\":\"unknown-tool@steps[0]\"") &&
	   strstr(j, "\"step\":0"), "rejection as JSON: %s", j);
	free(j);
	parse(GOOD_PLAN);
	j = plan_parse_result_json(&res);
	str_is(j, "{\"ok\":true,\"plan\":{\"summary\":\"Plan\",\"steps\":[{\"summary\":\"Aufgabe\","
		   "\"toolName\":\"create_task\",\"params\":{\"title\":\"Milch\"},\"rationale\":\"weil\"}]}}",
		   "acceptance as JSON");
	free(j);
}

static json_object *
agent_with(const char *policy)
{
	char		buf[512];

	snprintf(buf, sizeof(buf), "{\"name\":\"A\",\"policy\":%s}", policy);
	return json_tokener_parse(buf);
}

static void
test_policy(void)
{
	json_object *a;

	ok(policy_resolve(NULL, "create_task", "todo") == POLICY_AUTO, "no agent: allowed");
	a = json_tokener_parse("{\"name\":\"A\"}");
	ok(!policy_denies(a, "create_task", "todo"), "agent without policy: allowed");
	json_object_put(a);
	a = agent_with("null");
	ok(!policy_denies(a, "create_task", "todo"), "policy null: allowed");
	json_object_put(a);

	a = agent_with("{\"tools\":{\"create_task\":\"auto\"},"
				   "\"defaultsByModule\":{\"todo\":\"deny\",\"places\":\"propose\"},"
				   "\"defaultForAi\":\"deny\"}");
	ok(policy_resolve(a, "create_task", "todo") == POLICY_AUTO, "tools[name] wins over the module");
	ok(policy_denies(a, "complete_task", "todo"), "defaultsByModule denies a whole module");
	ok(policy_resolve(a, "create_place", "places") == POLICY_PROPOSE, "module default propose");
	ok(policy_denies(a, "undo_drink", "drink"), "defaultForAi applies last");
	json_object_put(a);

	a = agent_with("{\"tools\":{\"create_task\":\"deny\"},\"defaultForAi\":\"auto\"}");
	ok(policy_denies(a, "create_task", "todo"), "tools[name] deny");
	ok(!policy_denies(a, "complete_task", "todo"), "defaultForAi auto");
	json_object_put(a);

	a = agent_with("{\"tools\":{\"create_task\":\"Deny!\"}}");
	ok(policy_denies(a, "create_task", "todo"), "an unknown decision word denies (fail closed)");
	ok(!policy_denies(a, "complete_task", "todo"), "... only for that tool");
	json_object_put(a);
	a = agent_with("\"enc:1:abc.def\"");
	ok(policy_denies(a, "create_task", "todo"), "an unreadable policy denies everything");
	json_object_put(a);
	a = agent_with("{\"defaultsByModule\":[\"todo\"]}");
	ok(policy_denies(a, "create_task", "todo"), "defaultsByModule not an object denies");
	json_object_put(a);
	str_is(policy_decision_name(POLICY_PROPOSE), "propose", "decision names");
}

int
main(void)
{
	test_extraction();
	test_json_errors();
	test_steps();
	test_caps();
	test_result_json();
	test_policy();
	plan_parse_result_free(&res);
	return done_testing();
}
