/*
 * test_token_bounds.c: a model's usage numbers are untrusted (issue 19):
 * each round counts at most LLM_MAX_TOKENS_PER_ROUND, a mission at most
 * LLM_MAX_TOKENS_PER_MISSION, and no sum or budget wraps, whatever the
 * mock answers (3e18, INT64_MAX - 1), in both protocols.
 */
#define _GNU_SOURCE
#include "llm_tokens.h"
#include "mock_llm.h"
#include "planner_loop.h"
#include "tap.h"
#include "tool_schema.h"

static char *offered;

static void
build_offered(void)
{
	char		err[TOOL_SCHEMA_ERROR_LEN];
	char	   *a = tool_schema_function_text("create_task", "Legt eine Aufgabe an.",
											  "[{\"name\":\"title\",\"type\":\"string\",\"required\":true}]",
											  strlen("[{\"name\":\"title\",\"type\":\"string\",\"required\":true}]"),
											  err, sizeof(err));

	offered = malloc(strlen(a) + 3);
	sprintf(offered, "[%s]", a);
	free(a);
}

static PlanLoopConfig
config(PlanProtocol protocol, int max_rounds)
{
	PlanLoopConfig c;

	memset(&c, 0, sizeof(c));
	c.client.url = mock_url;
	c.client.temperature = 0.3;
	c.client.connect_timeout_ms = 2000;
	c.client.timeout_ms = 10000;
	c.client.max_response_bytes = 1024 * 1024;
	c.client.max_parallel = 4;
	c.models[0] = "gpt-4o-mini";
	c.n_models = 1;
	c.protocol = protocol;
	c.max_rounds = max_rounds;
	c.max_steps = 100;
	return c;
}

static void
test_arithmetic(void)
{
	ok(llm_tokens_clamp_round(-1) == -1, "absent stays absent");
	ok(llm_tokens_clamp_round(42) == 42, "a real count is kept");
	ok(llm_tokens_clamp_round(INT64_MAX) == LLM_MAX_TOKENS_PER_ROUND, "INT64_MAX clamps to the round bound");
	ok(llm_tokens_add(INT64_MAX - 1, INT64_MAX - 1, INT64_MAX) == INT64_MAX, "a sum saturates, never wraps");
	ok(llm_tokens_add(-1, 5, 100) == 5, "an absent sum starts at 0");
	ok(llm_tokens_add(90, 20, 100) == 100, "a sum stops at its limit");
	ok(llm_tokens_spend(INT64_MIN + 5, 10) == INT64_MIN, "a budget saturates at INT64_MIN");
	ok(llm_tokens_spend(50, 42) == 8, "a budget is spent");
}

/* tools, mock usage `usage` per round, n rounds, with and without a budget */
static void
test_tools(const char *usage, int rounds)
{
	PlanLoopConfig cfg = config(PLAN_PROTOCOL_TOOLS, rounds);
	PlanMission m[2];
	int64_t		budget = 1000 * LLM_MAX_TOKENS_PER_ROUND;
	char		ctl[128];

	snprintf(ctl, sizeof(ctl), "{\"total_tokens\": %s}", usage);
	mock_control(ctl);
	memset(m, 0, sizeof(m));
	m[0].system = m[1].system = "s";
	m[0].user = "[mock:tools-never-stop] a";
	m[1].user = "[mock:tools-never-stop] b";
	m[0].tools = m[1].tools = offered;
	m[1].budget = &budget;
	plan_loop_run(&cfg, m, 2, NULL, NULL);
	ok(m[0].rounds == rounds && m[0].total_tokens == rounds * LLM_MAX_TOKENS_PER_ROUND,
	   "tools, usage %s x %d rounds: %lld tokens, the round bound each", usage, rounds,
	   (long long) m[0].total_tokens);
	ok(m[1].total_tokens == rounds * LLM_MAX_TOKENS_PER_ROUND &&
	   budget == (1000 - rounds) * LLM_MAX_TOKENS_PER_ROUND,
	   "... the budget is spent by the clamped count, never wraps (left %lld)", (long long) budget);
	plan_mission_clear(&m[0]);
	plan_mission_clear(&m[1]);
}

/* A budget that huge counts cannot escape: it ends at BUDGET. */
static void
test_budget_escape(void)
{
	PlanLoopConfig cfg = config(PLAN_PROTOCOL_TOOLS, 5);
	PlanMission m;
	int64_t		budget = 15000000;

	mock_control("{\"total_tokens\": 4700000000000000000}");
	memset(&m, 0, sizeof(m));
	m.system = "s";
	m.user = "[mock:tools-never-stop] c";
	m.tools = offered;
	m.budget = &budget;
	plan_loop_run(&cfg, &m, 1, NULL, NULL);
	ok(m.end == PLAN_END_BUDGET && m.rounds == 2 && budget < 0,
	   "usage 4.7e18 per round: the budget ends the loop after round 2 (%s, %d rounds, left %lld)",
	   plan_end_name(m.end), m.rounds, (long long) budget);
	plan_mission_clear(&m);
}

static void
test_json(void)
{
	PlanLoopConfig cfg = config(PLAN_PROTOCOL_JSON, 1);
	PlanMission m;

	mock_control("{\"total_tokens\": 3000000000000000000}");
	memset(&m, 0, sizeof(m));
	m.system = "s";
	m.user = "plan";
	plan_loop_run(&cfg, &m, 1, NULL, NULL);
	ok(m.ok && m.total_tokens == LLM_MAX_TOKENS_PER_ROUND,
	   "json, usage 3e18: the round bound (%lld)", (long long) m.total_tokens);
	plan_mission_clear(&m);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IONBF, 0);
	start_mock();
	llm_client_global_init();
	build_offered();
	test_arithmetic();
	mock_reset();
	test_tools("3000000000000000000", 3);
	test_tools("9223372036854775806", 5);
	test_budget_escape();
	test_json();
	free(offered);
	stop_mock();
	return done_testing();
}
