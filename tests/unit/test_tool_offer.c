/*
 * test_tool_offer.c: src/core/tool_offer.c, on the shipped catalog
 * (sql/install/55_tool_catalog.sql): what a mission is offered and in
 * which order, that a denied tool is nowhere, and reachability: a model
 * (tests/mock_llm.py, [mock:want:TOOL]) that insists on each of the 62
 * tools in turn gets it planned within planner_max_rounds (5) through
 * more_tools, in one planner loop.
 */
#include <stdlib.h>
#include <string.h>

#include "mock_llm.h"
#include "planner_loop.h"
#include "tap.h"
#include "tool_offer.h"
#include "tool_schema.h"

#define MAX_TOOLS 128

static ToolOfferTool cat[MAX_TOOLS];
static int	n_cat = 0;

/* The next SQL string literal after *p ('' is a quote); malloc'd. */
static char *
sql_string(const char **p)
{
	const char *s = strchr(*p, '\'');
	char	   *out,
			   *o;

	if (s == NULL)
		return NULL;
	out = o = malloc(strlen(s) + 1);
	for (s++; *s; s++)
	{
		if (*s == '\'' && s[1] == '\'')
			*o++ = '\'', s++;
		else if (*s == '\'')
			break;
		else
			*o++ = *s;
	}
	*o = '\0';
	*p = *s ? s + 1 : s;
	return out;
}

/* Every row of the shipped catalog, as the server maps it. */
static void
load_catalog(void)
{
	FILE	   *f = fopen("../../sql/install/55_tool_catalog.sql", "r");
	char		line[16384];

	if (f == NULL)
	{
		printf("Bail out! cannot read the catalog\n");
		exit(1);
	}
	while (fgets(line, sizeof(line), f) && n_cat < MAX_TOOLS)
	{
		const char *p = line;
		char	   *name,
				   *module,
				   *desc,
				   *params;
		char		err[TOOL_SCHEMA_ERROR_LEN];

		if (strncmp(line, "('", 2) != 0)
			continue;
		name = sql_string(&p);
		module = sql_string(&p);
		desc = sql_string(&p);
		params = sql_string(&p);
		cat[n_cat].name = name;
		cat[n_cat].module = module;
		cat[n_cat].function = tool_schema_function_text(name, desc, params, strlen(params),
														err, sizeof(err));
		cat[n_cat].allowed = true;
		free(desc);
		free(params);
		n_cat++;
	}
	fclose(f);
	/* the server reads them ORDER BY name COLLATE "C" */
	for (int i = 1; i < n_cat; i++)
		for (int k = i; k > 0 && strcmp(cat[k - 1].name, cat[k].name) > 0; k--)
		{
			ToolOfferTool t = cat[k];

			cat[k] = cat[k - 1];
			cat[k - 1] = t;
		}
}

static int
index_of(const char *name)
{
	for (int i = 0; i < n_cat; i++)
		if (strcmp(cat[i].name, name) == 0)
			return i;
	return -1;
}

static void
test_choice(void)
{
	const char *core[] = {"todo"};
	const char *inputs[] = {"notes", "nosuchmodule"};
	const char *used[] = {"create_event"};
	ToolOffer	a,
				b,
				c;
	size_t		shared = 0;
	int			goal = index_of("create_goal");

	ok(n_cat == 62, "the shipped catalog has 62 tools (%d)", n_cat);
	ok(tool_offer_build(cat, n_cat, core, 1, NULL, 0, NULL, 0, &a), "offer: core only");
	ok(strstr(a.tools, "\"name\":\"create_task\"") && strstr(a.tools, "\"name\":\"more_tools\"") &&
	   !strstr(a.tools, "\"name\":\"create_note\""), "core tools and more_tools, nothing else");
	ok(a.reserve && strstr(a.reserve, "\"create_note\""), "the rest is in the reserve");
	ok(strlen(a.tools) * 4 < 40000, "a third of the full array's bytes at most (%zu)", strlen(a.tools));

	ok(tool_offer_build(cat, n_cat, core, 1, inputs, 2, used, 1, &b), "offer: inputs and used tools");
	ok(strstr(b.tools, "\"name\":\"create_note\"") && strstr(b.tools, "\"name\":\"create_event\""),
	   "the input module's tools and the tool used before are offered");
	ok(b.why[index_of("create_note")] == OFFER_INPUT && b.why[index_of("create_event")] == OFFER_USED &&
	   b.why[index_of("create_task")] == OFFER_CORE && b.why[goal] == OFFER_NOT, "why each is offered");
	while (a.tools[shared] && a.tools[shared] == b.tools[shared])
		shared++;
	ok(shared == strlen(a.tools) - 1,
	   "the agent-wide part (core tools, more_tools) leads both offers byte for byte (%zu of %zu)",
	   shared, strlen(a.tools));
	ok(strstr(b.tools, "more_tools") < strstr(b.tools, "create_note"), "the mission's own tools after it");

	cat[goal].allowed = false;
	ok(tool_offer_build(cat, n_cat, core, 1, NULL, 0, used, 1, &c), "offer: create_goal denied");
	ok(!strstr(c.tools, "create_goal") && !strstr(c.reserve, "create_goal") && c.why[goal] == OFFER_DENIED,
	   "a denied tool is neither offered, nor named in more_tools, nor in the reserve");
	cat[goal].allowed = true;
	is_str(tool_offer_why_name(OFFER_NOT), "discovery", "why labels");
	tool_offer_free(&a);
	tool_offer_free(&b);
	tool_offer_free(&c);
}

/* Each tool, insisted on by the model, is planned within 5 rounds. */
static void
test_reach(void)
{
	const char *core[] = {"todo"};
	ToolOffer	offer;
	PlanMission m[MAX_TOOLS];
	char		users[MAX_TOOLS][128];
	PlanLoopConfig cfg;
	int			reached = 0,
				max_rounds = 0;
	int			denied = index_of("add_website_block");

	cat[denied].allowed = false;
	tool_offer_build(cat, n_cat, core, 1, NULL, 0, NULL, 0, &offer);
	memset(&cfg, 0, sizeof(cfg));
	cfg.client.url = mock_url;
	cfg.client.timeout_ms = 20000;
	cfg.client.max_parallel = 16;
	cfg.models[0] = "gpt-4o-mini";
	cfg.n_models = 1;
	cfg.protocol = PLAN_PROTOCOL_TOOLS;
	cfg.max_rounds = 5;
	memset(m, 0, sizeof(m));
	for (int i = 0; i < n_cat; i++)
	{
		snprintf(users[i], sizeof(users[i]), "Mission %d [mock:want:%s]", i, cat[i].name);
		m[i].system = "s";
		m[i].user = users[i];
		m[i].tools = offer.tools;
		m[i].tools_reserve = offer.reserve;
	}
	ok(plan_loop_run(&cfg, m, n_cat, NULL, NULL) == 0, "one loop over 62 missions");
	for (int i = 0; i < n_cat; i++)
	{
		bool		got = false;

		for (int k = 0; m[i].steps && k < (int) json_object_array_length(m[i].steps); k++)
		{
			const char *t = json_object_get_string(json_object_object_get(
				json_object_array_get_idx(m[i].steps, k), "toolName"));

			got |= t && strcmp(t, cat[i].name) == 0;
			if (t && strcmp(t, TOOL_OFFER_DISCOVERY) == 0)
				ok(false, "more_tools became a step of %s", cat[i].name);
		}
		if (i == denied)
			ok(!got && m[i].n_steps == 0, "the denied tool is out of reach (%s)", cat[i].name);
		else if (!got)
			ok(false, "%s not planned (end %s, rounds %d, %s)", cat[i].name,
			   plan_end_name(m[i].end), m[i].rounds, m[i].error);
		reached += got;
		if (m[i].rounds > max_rounds)
			max_rounds = m[i].rounds;
		plan_mission_clear(&m[i]);
	}
	ok(reached == n_cat - 1, "every allowed tool planned: %d of %d", reached, n_cat - 1);
	ok(max_rounds <= 3, "within %d rounds (planner_max_rounds 5)", max_rounds);
	cat[denied].allowed = true;
	tool_offer_free(&offer);
}

int
main(void)
{
	load_catalog();
	test_choice();
	fflush(stdout);			/* else the forked mock repeats the buffered lines */
	start_mock();
	test_reach();
	return done_testing();
}
