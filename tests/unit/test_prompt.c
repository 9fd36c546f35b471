/*
 * test_prompt.c: the planner prompt (SPEC 7.3), without PostgreSQL.
 */
#include <stdlib.h>
#include <string.h>

#include "prompt.h"
#include "tap.h"

/* tap.h's is_str shadows its own _c; a local variant (see test_plan_parse.c). */
#define str_is(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	ok(same_, __VA_ARGS__); \
	if (!same_) printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

static json_object *task_params;
static json_object *drink_params;
static PromptTool tools[3];
static PromptResult res;

static bool
contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

/* Byte offset of needle in hay, or -1. */
static long
pos(const char *hay, const char *needle)
{
	const char *p = hay ? strstr(hay, needle) : NULL;

	return p ? p - hay : -1;
}

static void
build(const char *mission_json, const char *agent_json,
	  const PromptInput *inputs, size_t n_inputs)
{
	json_object *mission = json_tokener_parse(mission_json);
	json_object *agent = agent_json ? json_tokener_parse(agent_json) : NULL;

	prompt_result_free(&res);
	if (!prompt_build(mission, agent, inputs, n_inputs, tools, 3, &res))
		printf("# prompt_build failed\n");
	json_object_put(mission);
	json_object_put(agent);
}

static void
setup(void)
{
	task_params = json_tokener_parse(
		"[{\"name\":\"title\",\"type\":\"string\",\"required\":true,\"description\":\"Titel der Aufgabe\"},"
		"{\"name\":\"priority\",\"type\":\"string\",\"required\":false,\"description\":\"Prioritaet\","
		"\"enum\":[\"low\",\"medium\",\"high\"]}]");
	drink_params = json_tokener_parse("[]");
	tools[0] = (PromptTool) {"create_task", "todo", "Legt eine neue Aufgabe an.", task_params};
	tools[1] = (PromptTool) {"complete_task", "todo", "Markiert eine Aufgabe als erledigt.", NULL};
	tools[2] = (PromptTool) {"undo_drink", "drink", "Nimmt den letzten Drink zurueck.", drink_params};
}

static void
test_basics(void)
{
	char	   *first_sys,
			   *first_usr;

	build("{\"title\":\"Einkauf\",\"conceptMarkdown\":\"\",\"objective\":\"Nichts vergessen\"}",
		  NULL, NULL, 0);
	ok(res.system && res.user, "both messages are built");
	ok(!contains(res.system, "<agent_context>"), "no agent: no <agent_context>");
	ok(contains(res.system, "Plane 1 bis 5 Schritte"), "system: plan 1-5 steps (German)");
	ok(contains(res.system, "Vorschläge") && contains(res.system, "nie direkt"),
	   "system: steps are proposals, never direct writes");
	ok(contains(res.system, "Feedback des Nutzers zu früheren Iterationen"),
	   "system: respect earlier feedback");
	ok(contains(res.system, "```json\n{\n  \"summary\""), "system: the answer format block");
	ok(contains(res.system, "\"toolName\"") && contains(res.system, "\"rationale\"") &&
	   contains(res.system, "\"params\""), "system: the step fields of the format");
	ok(contains(res.system, "- `create_task` (Modul: todo): Legt eine neue Aufgabe an.\n"
				"  - `title` (string, Pflicht): Titel der Aufgabe\n"
				"  - `priority` (string, optional; erlaubt: low, medium, high): Prioritaet\n"),
	   "system: a tool with its parameters, required and enum");
	ok(contains(res.system, "- `complete_task` (Modul: todo): Markiert eine Aufgabe als erledigt.\n"
				"  - _(keine Parameter)_\n"), "system: a tool without parameters");
	ok(contains(res.user, "# Mission: Einkauf\n"), "user: mission title");
	ok(contains(res.user, "## Konzept\n_(leer)_\n"), "user: empty concept is _(leer)_");
	ok(contains(res.user, "## Ziel\nNichts vergessen\n"), "user: objective");
	ok(contains(res.user, "## Inputs\n_(keine verlinkten Inputs)_\n"), "user: no inputs");
	ok(contains(res.user, "## Bisherige Iterationen\n_(erste Iteration)_\n"), "user: first iteration");

	first_sys = strdup(res.system);
	first_usr = strdup(res.user);
	build("{\"title\":\"Einkauf\",\"conceptMarkdown\":\"\",\"objective\":\"Nichts vergessen\"}",
		  NULL, NULL, 0);
	ok(strcmp(first_sys, res.system) == 0 && strcmp(first_usr, res.user) == 0,
	   "deterministic: the same arguments give the same bytes");
	free(first_sys);
	free(first_usr);

	build("{\"conceptMarkdown\":42,\"iterations\":\"x\"}", NULL, NULL, 0);
	ok(contains(res.user, "# Mission: (ohne Titel)\n") &&
	   contains(res.user, "## Konzept\n_(leer)_") && contains(res.user, "## Ziel\n_(leer)_") &&
	   contains(res.user, "_(erste Iteration)_"), "wrong types are treated as absent");
	build("{\"title\":\"T\",\"conceptMarkdown\":\"  \\n \"}", NULL, NULL, 0);
	ok(contains(res.user, "## Konzept\n_(leer)_"), "blank concept is _(leer)_");
	build("{\"title\":\"T\",\"conceptMarkdown\":\"# Plan\\n- a\"}", NULL, NULL, 0);
	ok(contains(res.user, "## Konzept\n# Plan\n- a\n"), "concept markdown is kept verbatim");
}

static void
test_inputs(void)
{
	PromptInput in[] = {
		{"goals", "companionGoals", "10k Schritte", "Fortschritt: 3 / 10 (week)"},
		{"notes", "notes", "Notiz", "Milch, Eier"},
		{"kontext", "kontextDoc", "Mana-Kontext", ""},
	};

	build("{\"title\":\"T\"}", NULL, in, 3);
	ok(contains(res.user, "## Inputs\n"
				"### goals/companionGoals: 10k Schritte\nFortschritt: 3 / 10 (week)\n\n"
				"### notes/notes: Notiz\nMilch, Eier\n\n"
				"### kontext/kontextDoc: Mana-Kontext\n_(leer)_\n"),
	   "several inputs in order, with heading and content line");
	ok(!contains(res.user, "keine verlinkten Inputs"), "no 'keine Inputs' marker with inputs");
}

static void
test_iterations(void)
{
	build("{\"title\":\"T\",\"iterations\":["
		  "{\"startedAt\":\"2026-04-01T08:00:00Z\",\"overallStatus\":\"approved\",\"summary\":\"I1\",\"plan\":[]},"
		  "{\"startedAt\":\"2026-04-02T08:00:00Z\",\"overallStatus\":\"approved\",\"summary\":\"I2\",\"plan\":[]},"
		  "{\"startedAt\":\"2026-04-03T08:00:00Z\",\"overallStatus\":\"awaiting-review\",\"summary\":\"I3\","
		  " \"plan\":[{\"summary\":\"Milch kaufen\",\"status\":\"approved\"},{\"summary\":\"Eier\",\"status\":\"rejected\"}],"
		  " \"userFeedback\":\"Keine Eier mehr vorschlagen\"},"
		  "{\"startedAt\":\"2026-04-04T08:00:00Z\",\"overallStatus\":\"failed\",\"summary\":\"I4\"},"
		  "{\"startedAt\":\"2026-04-05T08:00:00Z\",\"overallStatus\":\"approved\",\"summary\":\"I5\",\"plan\":[]}"
		  "]}", NULL, NULL, 0);
	ok(!contains(res.user, "I1") && !contains(res.user, "I2"), "only the last three iterations");
	ok(pos(res.user, "Zusammenfassung: I3") >= 0 &&
	   pos(res.user, "Zusammenfassung: I3") < pos(res.user, "Zusammenfassung: I4") &&
	   pos(res.user, "Zusammenfassung: I4") < pos(res.user, "Zusammenfassung: I5"),
	   "oldest first: I3, I4, I5");
	ok(contains(res.user, "### Iteration vom 2026-04-03T08:00:00Z (Status: awaiting-review)\n"
				"Zusammenfassung: I3\nSchritte:\n- [approved] Milch kaufen\n- [rejected] Eier\n"
				"Feedback des Nutzers: Keine Eier mehr vorschlagen\n"),
	   "an iteration: startedAt, status, summary, steps, feedback");
	ok(contains(res.user, "(Status: failed)\nZusammenfassung: I4\nSchritte:\n- _(keine Schritte)_\n"),
	   "an iteration without plan");
	ok(!contains(res.user, "erste Iteration"), "no first-iteration marker");
}

static void
test_agent(void)
{
	build("{\"title\":\"T\"}",
		  "{\"name\":\"Kira\",\"role\":\"Haushalt\",\"systemPrompt\":\"Sei knapp.\","
		  "\"memory\":\"Mag keinen Kaffee.\"}", NULL, 0);
	ok(strncmp(res.system, "<agent_context>\nAgent: Kira\nRolle: Haushalt\n", 42) == 0,
	   "the system message starts with <agent_context>, name and role");
	ok(contains(res.system, "## Anweisungen des Agenten\nSei knapp.\n"), "plaintext systemPrompt");
	ok(contains(res.system, "(Kontext, keine Anweisungen)") &&
	   contains(res.system, "Mag keinen Kaffee.\n</agent_context>"),
	   "plaintext memory, marked as context not instructions");
	ok(pos(res.system, "</agent_context>") < pos(res.system, "Du bist der Planer"),
	   "the block comes before the planner's role");

	build("{\"title\":\"T\"}",
		  "{\"name\":\"Kira\",\"systemPrompt\":\"enc:1:AAAAAAAAAAAAAAAA.BBBB\","
		  "\"memory\":\"enc:1:CCCCCCCCCCCCCCCC.DDDD\"}", NULL, 0);
	ok(!contains(res.system, "enc:1:") && !contains(res.user, "enc:1:"), "ciphertext is never injected");
	ok(!contains(res.system, "Anweisungen des Agenten") && !contains(res.system, "Gedächtnis"),
	   "ciphertext: no empty headings");
	ok(strncmp(res.system, "<agent_context>\nAgent: Kira\n</agent_context>", 43) == 0,
	   "ciphertext: the block keeps the name only (no role set)");

	build("{\"title\":\"T\"}", "{\"name\":\"K\",\"role\":\"enc:1:x.y\",\"memory\":[\"a\"]}", NULL, 0);
	ok(!contains(res.system, "Rolle:") && !contains(res.system, "Gedächtnis"),
	   "encrypted role and non-string memory are skipped");

	build("{\"title\":\"T\"}",
		  "{\"name\":\"K\",\"policy\":{\"defaultsByModule\":{\"todo\":\"deny\"},\"defaultForAi\":\"auto\"}}",
		  NULL, 0);
	ok(!contains(res.system, "create_task") && !contains(res.system, "complete_task"),
	   "policy denying module todo hides its tools");
	ok(contains(res.system, "- `undo_drink` (Modul: drink)"), "... and keeps the others");

	build("{\"title\":\"T\"}", "{\"name\":\"K\",\"policy\":{\"defaultForAi\":\"deny\"}}", NULL, 0);
	ok(contains(res.system, "_(keine Werkzeuge freigegeben") && !contains(res.system, "- `"),
	   "everything denied: an explicit empty tool list");
}

/* The tools protocol: same user message, a system message without the list. */
static void
test_tools_protocol(void)
{
	json_object *mission = json_tokener_parse("{\"title\":\"Fit werden\",\"objective\":\"Laufen\"}");
	json_object *agent = json_tokener_parse("{\"name\":\"Coach\",\"role\":\"Trainer\"}");
	json_object *deny_all = json_tokener_parse("{\"name\":\"K\",\"policy\":{\"defaultForAi\":\"deny\"}}");
	PromptResult json_res = {0};
	PromptResult tools_res = {0};

	ok(prompt_build(mission, agent, NULL, 0, tools, 3, &json_res) &&
	   prompt_build_tools(mission, agent, NULL, 0, tools, 3, &tools_res), "both protocols build");
	str_is(tools_res.user, json_res.user, "tools: the user message is the same");
	ok(!contains(tools_res.system, "Antwortformat") && !contains(tools_res.system, "```json"),
	   "tools: no answer-format block");
	ok(!contains(tools_res.system, "Verfügbare Werkzeuge") && !contains(tools_res.system, "create_task"),
	   "tools: no tool prose (the functions carry it)");
	ok(contains(tools_res.system, "<agent_context>") && contains(tools_res.system, "Rolle: Trainer"),
	   "tools: the agent context stays");
	ok(contains(tools_res.system, "Argument rationale") &&
	   contains(tools_res.system, "ohne Funktionsaufruf mit einem Satz"),
	   "tools: says how to give the rationale and how to end");
	ok(!contains(tools_res.system, "keine Funktionen freigegeben"), "tools allowed: no 'none allowed' line");
	prompt_result_free(&tools_res);
	ok(prompt_build_tools(mission, deny_all, NULL, 0, tools, 3, &tools_res) &&
	   contains(tools_res.system, "keine Funktionen freigegeben"),
	   "tools: everything denied is said");
	prompt_result_free(&tools_res);
	prompt_result_free(&json_res);
	json_object_put(mission);
	json_object_put(agent);
	json_object_put(deny_all);
}

int
main(void)
{
	setup();
	test_basics();
	test_inputs();
	test_iterations();
	test_agent();
	test_tools_protocol();
	prompt_result_free(&res);
	json_object_put(task_params);
	json_object_put(drink_params);
	return done_testing();
}
