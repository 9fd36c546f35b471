/*
 * test_model_breaker.c: the tick-wide model breaker (PlanBreaker in
 * planner_loop.h, issue 19) against tests/mock_llm.py: after N failed
 * calls in a row of the chain's first model, the rest of the loop's
 * missions go straight to the second; 0 turns it off; the last model of
 * the chain is never skipped; an answer resets the count.
 */
#define _GNU_SOURCE
#include "mock_llm.h"
#include "planner_loop.h"
#include "tap.h"

static int opened;
static char opened_model[64];
static int opened_failures;

static void
hook_breaker(void *arg, const char *model, int failures)
{
	opened++;
	snprintf(opened_model, sizeof(opened_model), "%s", model);
	opened_failures = failures;
}

/* n json missions through chain a,b with the given breaker; returns calls to a. */
static int
run(const char *a, const char *b, PlanBreaker *breaker, int n, int *ok)
{
	PlanLoopConfig c;
	PlanMission m[16];
	json_object *reqs;
	int			calls_a = 0;

	memset(&c, 0, sizeof(c));
	c.client.url = mock_url;
	c.client.temperature = 0.3;
	c.client.connect_timeout_ms = 2000;
	c.client.timeout_ms = 10000;
	c.client.max_response_bytes = 1024 * 1024;
	c.client.max_parallel = 1;	/* one call at a time: failures come in order */
	c.client.max_attempts = 1;
	c.models[0] = a;
	c.models[1] = b;
	c.n_models = 2;
	c.protocol = PLAN_PROTOCOL_JSON;
	c.max_rounds = 1;
	c.breaker = breaker;
	c.hooks.breaker_open = hook_breaker;
	opened = 0;
	mock_reset();
	memset(m, 0, sizeof(m));
	for (int i = 0; i < n; i++)
	{
		m[i].system = "s";
		m[i].user = "plan";
	}
	plan_loop_run(&c, m, n, NULL, NULL);
	*ok = 0;
	for (int i = 0; i < n; i++)
	{
		*ok += m[i].ok;
		plan_mission_clear(&m[i]);
	}
	reqs = mock_call("/__requests", NULL);
	for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++)
	{
		json_object *body = json_object_object_get(json_object_array_get_idx(reqs, i), "body");
		json_object *model = body ? json_object_object_get(body, "model") : NULL;

		if (model && strcmp(json_object_get_string(model), a) == 0)
			calls_a++;
	}
	json_object_put(reqs);
	return calls_a;
}

int
main(void)
{
	PlanBreaker b;
	int			ok_count;
	int			calls;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IONBF, 0);
	start_mock();
	llm_client_global_init();

	memset(&b, 0, sizeof(b));
	b.threshold = 3;
	calls = run("a-fail500", "gpt-4o-mini", &b, 8, &ok_count);
	ok(calls == 3, "threshold 3: the failing first model gets 3 calls of 8 missions (%d)", calls);
	ok(ok_count == 8, "every mission is planned by the second model (%d)", ok_count);
	ok(opened == 1 && strcmp(opened_model, "a-fail500") == 0 && opened_failures == 3,
	   "the hook reports it once, with the model and its failures (%d, %s, %d)",
	   opened, opened_model, opened_failures);
	ok(b.open[0] && !b.open[1] && b.skipped[0] == 5, "5 rounds went past it (%d)", b.skipped[0]);

	memset(&b, 0, sizeof(b));
	calls = run("a-fail500", "gpt-4o-mini", &b, 8, &ok_count);
	ok(calls == 8 && opened == 0, "threshold 0: the breaker is off, 8 calls (%d)", calls);
	calls = run("a-fail500", "gpt-4o-mini", NULL, 8, &ok_count);
	ok(calls == 8 && opened == 0, "no breaker: 8 calls (%d)", calls);

	/* the last model of the chain is never skipped */
	memset(&b, 0, sizeof(b));
	b.threshold = 2;
	calls = run("gpt-4o-mini", "b-fail500", &b, 6, &ok_count);
	ok(ok_count == 6 && !b.open[0] && !b.open[1], "an answering first model never opens (%d ok)", ok_count);
	memset(&b, 0, sizeof(b));
	b.threshold = 2;
	calls = run("a-fail500", "b-fail500", &b, 6, &ok_count);
	ok(calls == 2 && b.open[0] && b.open[1] && ok_count == 0 && b.skipped[1] == 0,
	   "both fail: the first is skipped after 2, the last still gets every round (%d calls to the first)",
	   calls);

	/* an answer resets the count */
	memset(&b, 0, sizeof(b));
	b.threshold = 3;
	plan_breaker_count(&b, 0, true);
	plan_breaker_count(&b, 0, true);
	plan_breaker_count(&b, 0, false);
	plan_breaker_count(&b, 0, true);
	plan_breaker_count(&b, 0, true);
	ok(!b.open[0] && b.failures[0] == 2, "fail, fail, answer, fail, fail: still closed at threshold 3");
	ok(plan_breaker_count(&b, 0, true) && b.open[0], "the third in a row opens it");
	ok(!plan_breaker_count(&b, 0, true), "it opens once");
	stop_mock();
	return done_testing();
}
