/*
 * test_planner_stream.c: plan_loop_take_finished (planner_loop.h), what
 * the worker's streamed write-back is built on, against tests/mock_llm.py
 * on loopback: each mission is handed out once, in the order it ended,
 * while the others are still in flight, with the time it ended; and a
 * loop fed as it goes (plan_loop_open/add/close), what the tick's
 * streamed preparation is built on: a mission added while another is in
 * flight is sent at once, and the loop ends only once it is closed.
 */
#define _GNU_SOURCE
#include "mock_llm.h"
#include "planner_loop.h"
#include "tap.h"

static void
test_take_finished(void)
{
	PlanLoopConfig cfg;
	PlanMission m[3];
	static const char *users[3] = {"[mock:latency:900] A", "[mock:latency:100] B", "[mock:latency:450] C"};
	char		err[256];
	PlanLoop   *loop;
	int			order[8];
	int			n_order = 0;
	int			in_flight_at_first = -1;
	double		t_first = 0;
	bool		done = false;

	memset(&cfg, 0, sizeof(cfg));
	cfg.client.url = mock_url;
	cfg.client.connect_timeout_ms = 2000;
	cfg.client.timeout_ms = 10000;
	cfg.client.max_response_bytes = 1024 * 1024;
	cfg.client.max_parallel = 8;
	cfg.models[0] = "gpt-4o-mini";
	cfg.n_models = 1;
	cfg.protocol = PLAN_PROTOCOL_JSON;
	cfg.max_rounds = 1;
	memset(m, 0, sizeof(m));
	for (int i = 0; i < 3; i++)
	{
		m[i].system = "s";
		m[i].user = users[i];
	}
	mock_reset();
	loop = plan_loop_create(&cfg, m, 3, err, sizeof(err));
	ok(loop != NULL, "loop created (%s)", loop ? "" : err);
	if (loop == NULL)
		return;
	ok(plan_loop_take_finished(loop, order, 8) == 0, "nothing ended before the first step");
	while (!done)
	{
		int			k;

		done = plan_loop_step(loop, 50);
		k = plan_loop_take_finished(loop, order + n_order, 8 - n_order);
		if (k > 0 && n_order == 0)
		{
			in_flight_at_first = plan_loop_in_flight(loop);
			t_first = llm_monotonic_seconds();
		}
		n_order += k;
	}
	n_order += plan_loop_take_finished(loop, order + n_order, 8 - n_order);
	ok(n_order == 3 && order[0] == 1 && order[1] == 2 && order[2] == 0,
	   "each mission handed out once, in the order they ended (%d: %d %d %d)",
	   n_order, order[0], order[1], order[2]);
	ok(in_flight_at_first == 2, "the first handed out while the other two were in flight (%d)",
	   in_flight_at_first);
	ok(m[1].ok && m[1].ended_at > 0 && t_first - m[1].ended_at < 0.2 &&
	   m[0].ended_at - m[1].ended_at > 0.6,
	   "ended_at: when each ended (first %.3f s before it was taken, last %.3f s after it)",
	   t_first - m[1].ended_at, m[0].ended_at - m[1].ended_at);
	ok(plan_loop_take_finished(loop, order, 8) == 0, "nothing handed out twice");
	plan_loop_free(loop);
	for (int i = 0; i < 3; i++)
		plan_mission_clear(&m[i]);
}

static void
config_json(PlanLoopConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->client.url = mock_url;
	cfg->client.connect_timeout_ms = 2000;
	cfg->client.timeout_ms = 10000;
	cfg->client.max_response_bytes = 1024 * 1024;
	cfg->client.max_parallel = 8;
	cfg->models[0] = "gpt-4o-mini";
	cfg->n_models = 1;
	cfg->protocol = PLAN_PROTOCOL_JSON;
	cfg->max_rounds = 1;
}

static void
test_fed_as_it_goes(void)
{
	PlanLoopConfig cfg;
	PlanMission m[3];
	char		err[256];
	PlanLoop   *loop;
	int			order[4];
	int			n_order = 0;
	int			steps = 0;
	bool		done = false;

	config_json(&cfg);
	memset(m, 0, sizeof(m));
	for (int i = 0; i < 3; i++)
	{
		m[i].system = "s";
		m[i].user = i == 0 ? "[mock:latency:600] first" : "[mock:latency:50] later";
	}
	mock_reset();
	loop = plan_loop_open(&cfg, m, 3, err, sizeof(err));
	ok(loop != NULL, "open loop created (%s)", loop ? "" : err);
	if (loop == NULL)
		return;
	ok(!plan_loop_step(loop, 10), "an open loop with nothing in it has not ended");
	ok(plan_loop_add(loop, err, sizeof(err)) == 0, "the first mission added: index 0");
	ok(plan_loop_waiting(loop) == 1, "it waits to be started (%d)", plan_loop_waiting(loop));
	(void) plan_loop_step(loop, 10);
	ok(plan_loop_in_flight(loop) == 1 && plan_loop_waiting(loop) == 0,
	   "the next step sends it (in flight %d)", plan_loop_in_flight(loop));
	ok(plan_loop_add(loop, err, sizeof(err)) == 1 && plan_loop_add(loop, err, sizeof(err)) == 2,
	   "two more added while the first is in flight");
	ok(plan_loop_add(loop, err, sizeof(err)) == -1, "no room for a fourth (%s)", err);
	while (n_order < 2 && steps++ < 100)
	{
		(void) plan_loop_step(loop, 50);
		n_order += plan_loop_take_finished(loop, order + n_order, 4 - n_order);
	}
	ok(n_order == 2 && order[0] != 0 && order[1] != 0 && m[0].end == PLAN_END_NONE,
	   "the later two ended while the first was still in flight (%d ended)", n_order);
	while (n_order < 3 && !done && steps++ < 200)
	{
		done = plan_loop_step(loop, 50);
		n_order += plan_loop_take_finished(loop, order + n_order, 4 - n_order);
	}
	done = done || plan_loop_step(loop, 10);
	ok(!done && n_order == 3 && order[2] == 0,
	   "every mission ended, but the loop is not done before it is closed (%d)", n_order);
	plan_loop_close(loop);
	ok(plan_loop_step(loop, 10), "closed: done");
	ok(m[0].ok && m[1].ok && m[2].ok, "all three answered");
	plan_loop_free(loop);
	for (int i = 0; i < 3; i++)
		plan_mission_clear(&m[i]);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IONBF, 0);
	start_mock();
	llm_client_global_init();
	test_take_finished();
	test_fed_as_it_goes();
	stop_mock();
	return done_testing();
}
