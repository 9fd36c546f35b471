/*
 * planner_loop.c: the planner's conversations of one tick on one libcurl
 * multi handle (planner_loop.h), Postgres-free.
 *
 * Owns admission (at most max_parallel calls in flight; a mission ready
 * for its next round goes before one not started, because its deadline
 * is already running), a mission's deadline (timeout_ms from its first
 * call, shared by all its rounds and models; a call gets an equal share
 * of the time left among the models not yet tried, so a hanging model
 * leaves time for the next), the model fallback, judging each tools
 * answer and ending each loop with its reason (the plan a finished loop
 * hands back is planner_plan.c's; what a round adds, its steps, the
 * injection policy and the budget reminder, planner_round.c's).  Must never trust an
 * answer (tool_calls.c judges it), never send a round past the deadline
 * or the agent's budget, and never call back into anything that could
 * jump out of a step.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_tokens.h"
#include "planner_loop.h"
#include "planner_round.h"
#include "tool_calls.h"
#include "tool_json.h"
#include "tool_messages.h"
#include "tool_offer.h"

struct PlanMissionState
{
	json_object *offered;		/* borrowed from the loop's cache, or owned
								 * (own_offered) once more_tools added to it */
	bool		own_offered;
	char	   *own_text;		/* owned offered's text */
	json_object *messages;		/* tools: the conversation so far */
	int			model;			/* index into the chain */
	double		started;		/* 0: no call sent yet */
	double		deadline;
	char	   *body;			/* the request in flight */
	bool		in_flight;
	bool		ended;
	int64_t		last_round;		/* tokens of the last answered round */
	json_object *reminder;		/* the budget reminder of the round in
								 * flight (re-sent on a fallback), or NULL */
};

struct PlanLoop
{
	PlanLoopConfig cfg;
	PlanMission *missions;
	int			n;
	PlanMissionState *states;
	LlmRequest *reqs;
	LlmBatch   *batch;
	json_object **offered;		/* distinct tools arrays, parsed once */
	const char **offered_text;
	int			n_offered;
	int		   *ready;			/* FIFO of missions ready for their next round */
	int			ready_head;
	int			ready_len;
	int			added;			/* missions [0, added) are in the loop */
	bool		closed;			/* no more will be added */
	int			next_new;		/* first mission not started yet */
	int			in_flight;
	int			ended;
	int		   *finished;		/* missions in the order they ended */
	int			finished_taken;	/* how many plan_loop_take_finished gave out */
};

static void end_mission(PlanLoop *loop, int i, PlanEnd end);

/* The parsed tools array for text, from the cache or parsed now. */
static json_object *
offered_for(PlanLoop *loop, const char *text, char *err, size_t errlen)
{
	const char *code = NULL;
	json_object *arr;

	if (text == NULL)
		text = "[]";
	for (int k = 0; k < loop->n_offered; k++)
		if (loop->offered_text[k] == text || strcmp(loop->offered_text[k], text) == 0)
			return loop->offered[k];
	arr = tool_json_parse(text, strlen(text), &code);
	if (arr == NULL || !json_object_is_type(arr, json_type_array))
	{
		snprintf(err, errlen, "the offered tools are not a JSON array (%s)",
				 code ? code : "not an array");
		json_object_put(arr);
		return NULL;
	}
	loop->offered[loop->n_offered] = arr;
	loop->offered_text[loop->n_offered] = text;
	loop->n_offered++;
	return arr;
}

/*
 * A loop with room for capacity missions and none in it yet: they come
 * with plan_loop_add, and the loop ends once plan_loop_close said that no
 * more will come and every mission added has ended.
 */
PlanLoop *
plan_loop_open(const PlanLoopConfig *cfg, PlanMission *missions, int capacity,
			   char *err, size_t errlen)
{
	PlanLoop   *loop = calloc(1, sizeof(PlanLoop));
	LlmClientConfig client;
	int			slots = capacity > 0 ? capacity : 1;

	if (loop == NULL)
		goto oom;
	if (cfg->n_models < 1 || cfg->n_models > PLAN_LOOP_MAX_MODELS)
	{
		snprintf(err, errlen, "the model chain needs 1 to %d models", PLAN_LOOP_MAX_MODELS);
		free(loop);
		return NULL;
	}
	loop->cfg = *cfg;
	if (loop->cfg.max_steps <= 0)
		loop->cfg.max_steps = PLAN_LOOP_DEFAULT_MAX_STEPS;
	if (loop->cfg.max_rounds <= 0)
		loop->cfg.max_rounds = 1;
	if (loop->cfg.client.max_parallel <= 0)
		loop->cfg.client.max_parallel = 1;
	loop->missions = missions;
	loop->n = slots;
	loop->states = calloc(slots, sizeof(PlanMissionState));
	loop->reqs = calloc(slots, sizeof(LlmRequest));
	loop->offered = calloc(slots, sizeof(json_object *));
	loop->offered_text = calloc(slots, sizeof(char *));
	loop->ready = calloc(slots, sizeof(int));
	loop->finished = calloc(slots, sizeof(int));
	if (!loop->states || !loop->reqs || !loop->offered || !loop->offered_text || !loop->ready ||
		!loop->finished)
		goto oom;
	client = loop->cfg.client;
	client.manual_submit = true;
	loop->batch = llm_batch_create(&client, loop->reqs, slots, err, errlen);
	if (loop->batch == NULL)
	{
		plan_loop_free(loop);
		return NULL;
	}
	return loop;

oom:
	snprintf(err, errlen, "out of memory preparing the planner loop");
	plan_loop_free(loop);
	return NULL;
}

int
plan_loop_add(PlanLoop *loop, char *err, size_t errlen)
{
	int			i = loop->added;
	PlanMission *m;

	if (i >= loop->n || loop->closed)
	{
		snprintf(err, errlen, "the planner loop has no room for another mission");
		return -1;
	}
	m = &loop->missions[i];
	memset(&m->end, 0, sizeof(PlanMission) - offsetof(PlanMission, end));
	m->total_tokens = -1;
	m->state = &loop->states[i];
	loop->added++;
	if (loop->cfg.protocol == PLAN_PROTOCOL_TOOLS &&
		(m->state->offered = offered_for(loop, m->tools, err, errlen)) == NULL)
	{
		snprintf(m->reason, sizeof(m->reason), "setup");
		snprintf(m->error, sizeof(m->error), "%s", err);
		end_mission(loop, i, PLAN_END_LLM_ERROR);
		return -1;
	}
	return i;
}

void
plan_loop_close(PlanLoop *loop)
{
	loop->closed = true;
}

int
plan_loop_waiting(const PlanLoop *loop)
{
	return loop->added - loop->next_new;
}

PlanLoop *
plan_loop_create(const PlanLoopConfig *cfg, PlanMission *missions, int n,
				 char *err, size_t errlen)
{
	PlanLoop   *loop = plan_loop_open(cfg, missions, n, err, errlen);

	if (loop == NULL)
		return NULL;
	for (int i = 0; i < n; i++)
		if (plan_loop_add(loop, err, errlen) < 0)
		{
			plan_loop_free(loop);
			return NULL;
		}
	plan_loop_close(loop);
	return loop;
}

/* The request body of mission i's next round, for its current model. */
static char *
round_body(PlanLoop *loop, int i)
{
	PlanMission *m = &loop->missions[i];
	PlanMissionState *st = m->state;
	const char *model = loop->cfg.models[st->model];
	json_object *reminder;
	char	   *body;

	if (st->reminder == NULL)
		st->reminder = plan_round_reminder(m, st->last_round);
	reminder = st->reminder;

	if (loop->cfg.protocol == PLAN_PROTOCOL_JSON && reminder == NULL)
		return llm_build_chat_request(model, loop->cfg.client.temperature,
									  m->system, m->user);
	if (st->messages == NULL)
		st->messages = tool_messages_initial(m->system, m->user);
	if (st->messages == NULL)
		body = NULL;
	else if (loop->cfg.protocol == PLAN_PROTOCOL_JSON)
		body = plan_round_body(model, loop->cfg.client.temperature, st->messages,
							   reminder, NULL, NULL);
	else
		body = plan_round_body(model, loop->cfg.client.temperature, st->messages,
							   reminder, st->offered,
							   st->own_text ? st->own_text : m->tools);
	return body;
}

/* Send mission i's next round (or end it: no time, no budget, no memory). */
static void
submit_round(PlanLoop *loop, int i)
{
	PlanMission *m = &loop->missions[i];
	PlanMissionState *st = m->state;
	LlmRequest *req = &loop->reqs[i];
	double		now = llm_monotonic_seconds();

	if (st->started == 0)
	{
		st->started = now;
		st->deadline = now + (loop->cfg.client.timeout_ms > 0 ?
							  loop->cfg.client.timeout_ms : 60000) / 1000.0;
	}
	/* Another mission of the agent may have spent the rest meanwhile. */
	if (m->budget != NULL && *m->budget <= 0)
	{
		end_mission(loop, i, PLAN_END_BUDGET);
		return;
	}
	if (now >= st->deadline)
	{
		end_mission(loop, i, PLAN_END_DEADLINE);
		return;
	}
	plan_breaker_skip(loop->cfg.breaker, loop->cfg.n_models, &st->model);
	st->body = round_body(loop, i);
	if (st->body == NULL)
	{
		snprintf(m->reason, sizeof(m->reason), "out-of-memory");
		snprintf(m->error, sizeof(m->error), "out of memory building the request");
		end_mission(loop, i, PLAN_END_LLM_ERROR);
		return;
	}
	req->body = st->body;
	req->raw = loop->cfg.protocol == PLAN_PROTOCOL_TOOLS;
	req->deadline = now + (st->deadline - now) / (loop->cfg.n_models - st->model);
	llm_batch_submit(loop->batch, i);
	st->in_flight = true;
	loop->in_flight++;
}

static void
admit(PlanLoop *loop)
{
	while (loop->in_flight < loop->cfg.client.max_parallel)
	{
		int			i;

		if (loop->ready_len > 0)
		{
			i = loop->ready[loop->ready_head];
			loop->ready_head = (loop->ready_head + 1) % loop->n;
			loop->ready_len--;
		}
		else if (loop->next_new < loop->added)
			i = loop->next_new++;
		else
			break;
		submit_round(loop, i);
	}
}

int
plan_loop_in_flight(const PlanLoop *loop)
{
	return loop ? loop->in_flight : 0;
}

static void
make_ready(PlanLoop *loop, int i)
{
	loop->ready[(loop->ready_head + loop->ready_len) % loop->n] = i;
	loop->ready_len++;
}

static void
add_tokens(PlanMission *m, int64_t tokens)
{
	if (tokens < 0)
		return;
	tokens = llm_tokens_clamp_round(tokens);	/* every parser clamps; be sure */
	m->total_tokens = llm_tokens_add(m->total_tokens, tokens, LLM_MAX_TOKENS_PER_MISSION);
	if (m->budget != NULL)
		*m->budget = llm_tokens_spend(*m->budget, tokens);
}

/* One tools-protocol answer of mission i: steps, then go on or end. */
static void
judge_tools_answer(PlanLoop *loop, int i, const char *model)
{
	PlanMission *m = &loop->missions[i];
	PlanMissionState *st = m->state;
	LlmRequest *req = &loop->reqs[i];
	ToolResponse res;
	double		now = llm_monotonic_seconds();

	if (!tool_response_parse(req->content, strlen(req->content), st->offered, &res))
	{
		if (loop->cfg.hooks.llm_error)
			loop->cfg.hooks.llm_error(loop->cfg.hooks.arg, model, LLM_ERR_BAD_JSON);
		snprintf(m->reason, sizeof(m->reason), "%s", res.reason);
		snprintf(m->error, sizeof(m->error), "unusable answer in round %d: %s%s%s",
				 m->rounds + 1, res.reason, res.detail[0] ? ": " : "", res.detail);
		tool_response_free(&res);
		end_mission(loop, i, PLAN_END_BAD_ANSWER);
		return;
	}
	m->rounds++;
	add_tokens(m, res.total_tokens);
	st->last_round = res.total_tokens;
	if (m->tools_reserve &&
		tool_offer_take_discovery(&res, m->tools_reserve, &st->offered, &st->own_offered,
								  &st->own_text) < 0)
	{
		snprintf(m->reason, sizeof(m->reason), "out-of-memory");
		snprintf(m->error, sizeof(m->error), "out of memory adding tools in round %d", m->rounds);
		tool_response_free(&res);
		end_mission(loop, i, PLAN_END_LLM_ERROR);
		return;
	}
	plan_round_take_calls(&loop->cfg, m, st->offered, &res);
	if (res.finish != TOOL_FINISH_CALLS)
	{
		ToolFinish	finish = res.finish;

		m->content = res.content;
		res.content = NULL;
		if (finish != TOOL_FINISH_STOP)
			snprintf(m->reason, sizeof(m->reason), "finish-%s",
					 finish == TOOL_FINISH_LENGTH ? "length" : "other");
		tool_response_free(&res);
		end_mission(loop, i, finish == TOOL_FINISH_STOP ? PLAN_END_STOP : PLAN_END_CUT_OFF);
		return;
	}
	if (m->n_steps >= loop->cfg.max_steps)
		end_mission(loop, i, PLAN_END_MAX_STEPS);
	else if (m->rounds >= loop->cfg.max_rounds)
		end_mission(loop, i, PLAN_END_MAX_ROUNDS);
	else if (m->budget != NULL && *m->budget <= 0)
		end_mission(loop, i, PLAN_END_BUDGET);
	else if (now >= st->deadline)
		end_mission(loop, i, PLAN_END_DEADLINE);
	else if (!tool_messages_append_round(st->messages, &res))
	{
		snprintf(m->reason, sizeof(m->reason), "out-of-memory");
		snprintf(m->error, sizeof(m->error), "out of memory building round %d", m->rounds + 1);
		end_mission(loop, i, PLAN_END_LLM_ERROR);
	}
	else
		make_ready(loop, i);
	tool_response_free(&res);
}

/* A failed call: the next model of the chain, or the end of the loop. */
static void
judge_failure(PlanLoop *loop, int i, const char *model)
{
	PlanMission *m = &loop->missions[i];
	PlanMissionState *st = m->state;
	LlmRequest *req = &loop->reqs[i];
	const PlanHooks *h = &loop->cfg.hooks;
	double		now = llm_monotonic_seconds();

	if (req->error_kind == LLM_ERR_ABORTED)
	{
		end_mission(loop, i, PLAN_END_ABORTED);
		return;
	}
	if (h->llm_error)
		h->llm_error(h->arg, model, req->error_kind);
	if (llm_error_kind_falls_back(req->error_kind) &&
		plan_breaker_count(loop->cfg.breaker, st->model, true) && h->breaker_open)
		h->breaker_open(h->arg, model, loop->cfg.breaker->failures[st->model]);
	if (llm_error_kind_falls_back(req->error_kind) &&
		st->model + 1 < loop->cfg.n_models && now < st->deadline)
	{
		if (h->fallback)
			h->fallback(h->arg, model, loop->cfg.models[st->model + 1]);
		st->model++;
		free(st->body);
		st->body = NULL;
		make_ready(loop, i);
		return;
	}
	snprintf(m->reason, sizeof(m->reason), "%s", llm_error_kind_name(req->error_kind));
	snprintf(m->error, sizeof(m->error), "%s%s", req->error,
			 loop->cfg.n_models > 1 ? " (last model of the chain)" : "");
	end_mission(loop, i, req->error_kind == LLM_ERR_TIMEOUT && now >= st->deadline - 0.05 ?
				PLAN_END_DEADLINE : PLAN_END_LLM_ERROR);
}

/* Every call that finished in the last step. */
static void
collect(PlanLoop *loop)
{
	for (int i = 0; i < loop->added && loop->in_flight > 0; i++)
	{
		PlanMission *m = &loop->missions[i];
		PlanMissionState *st = m->state;
		LlmRequest *req = &loop->reqs[i];
		const char *model;

		if (!st->in_flight || !llm_batch_call_done(loop->batch, i))
			continue;
		st->in_flight = false;
		loop->in_flight--;
		model = loop->cfg.models[st->model];
		m->attempts += req->attempts;
		m->http_status = req->http_status;
		if (req->attempts > 0 && loop->cfg.hooks.request)
			loop->cfg.hooks.request(loop->cfg.hooks.arg, req->seconds);
		if (req->attempts > 0 && loop->cfg.hooks.tokens)
			loop->cfg.hooks.tokens(loop->cfg.hooks.arg, model,
								   req->bytes_sent / LLM_BYTES_PER_TOKEN,
								   req->bytes_received / LLM_BYTES_PER_TOKEN);
		if (!req->ok)
			judge_failure(loop, i, model);
		else
		{
			json_object_put(st->reminder);	/* it went with this round */
			st->reminder = NULL;
			m->model = model;
			plan_breaker_count(loop->cfg.breaker, st->model, false);
			if (loop->cfg.protocol == PLAN_PROTOCOL_TOOLS)
				judge_tools_answer(loop, i, model);
			else
			{
				m->content = req->content;
				req->content = NULL;
				m->rounds = 1;
				add_tokens(m, req->total_tokens);
				end_mission(loop, i, PLAN_END_STOP);
			}
		}
		free(st->body);
		st->body = NULL;
		free(req->content);
		req->content = NULL;
	}
}

/* Why a loop that ends without a plan failed, unless already said. */
static void
describe_failure(PlanMission *m, PlanEnd end)
{
	if (m->reason[0] == '\0')
		snprintf(m->reason, sizeof(m->reason), "%s", plan_end_name(end));
	if (m->error[0] != '\0')
		return;
	switch (end)
	{
		case PLAN_END_MAX_ROUNDS:
			snprintf(m->error, sizeof(m->error),
					 "no valid tool call in %d rounds (mana_ai.planner_max_rounds)", m->rounds);
			break;
		case PLAN_END_DEADLINE:
			snprintf(m->error, sizeof(m->error),
					 "the deadline passed after %d rounds without a valid tool call", m->rounds);
			break;
		case PLAN_END_BUDGET:
			snprintf(m->error, sizeof(m->error),
					 "the agent's token budget ran out after %d rounds without a valid tool call",
					 m->rounds);
			break;
		case PLAN_END_CUT_OFF:
			snprintf(m->error, sizeof(m->error),
					 "the answer ended (%s) without a valid tool call", m->reason);
			break;
		default:
			snprintf(m->error, sizeof(m->error), "%s", plan_end_name(end));
			break;
	}
}

static void
end_mission(PlanLoop *loop, int i, PlanEnd end)
{
	PlanMission *m = &loop->missions[i];
	PlanMissionState *st = m->state;

	if (st->ended)
		return;
	st->ended = true;
	if (loop->finished)
		loop->finished[loop->ended] = i;
	loop->ended++;
	m->end = end;
	m->ended_at = llm_monotonic_seconds();
	if (st->started > 0)
		m->seconds = m->ended_at - st->started;
	if (loop->cfg.protocol == PLAN_PROTOCOL_TOOLS)
		m->ok = end != PLAN_END_ABORTED && (m->n_steps > 0 || end == PLAN_END_STOP);
	else
		m->ok = end == PLAN_END_STOP;
	if (m->ok)
		m->reason[0] = m->error[0] = '\0';
	else
		describe_failure(m, end);
	json_object_put(st->messages);
	st->messages = NULL;
	json_object_put(st->reminder);
	st->reminder = NULL;
	if (st->own_offered)
		json_object_put(st->offered);
	st->offered = NULL;
	st->own_offered = false;
	free(st->own_text);
	st->own_text = NULL;
}

/* Closed, and every mission added has ended. */
static bool
all_ended(const PlanLoop *loop)
{
	return loop->closed && loop->ended == loop->added;
}

bool
plan_loop_step(PlanLoop *loop, int max_wait_ms)
{
	admit(loop);
	if (all_ended(loop))
		return true;
	llm_batch_step(loop->batch, loop->in_flight > 0 ? max_wait_ms : 0);
	collect(loop);
	admit(loop);
	return all_ended(loop);
}

void
plan_loop_free(PlanLoop *loop)
{
	if (loop == NULL)
		return;
	llm_batch_free(loop->batch);
	for (int i = 0; loop->states && i < loop->added; i++)
	{
		PlanMissionState *st = &loop->states[i];

		if (!st->ended)
			end_mission(loop, i, PLAN_END_ABORTED);
		free(st->body);
		if (loop->reqs)
			free(loop->reqs[i].content);
		loop->missions[i].state = NULL;
	}
	for (int k = 0; k < loop->n_offered; k++)
		json_object_put(loop->offered[k]);
	free(loop->offered);
	free(loop->offered_text);
	free(loop->states);
	free(loop->reqs);
	free(loop->ready);
	free(loop->finished);
	free(loop);
}

int
plan_loop_take_finished(PlanLoop *loop, int *out, int max)
{
	int			k = 0;

	while (k < max && loop->finished_taken < loop->ended)
		out[k++] = loop->finished[loop->finished_taken++];
	return k;
}

int
plan_loop_run(const PlanLoopConfig *cfg, PlanMission *missions, int n,
			  LlmAbortCallback abort_cb, void *abort_arg)
{
	char		err[256];
	PlanLoop   *loop = plan_loop_create(cfg, missions, n, err, sizeof(err));
	bool		finished = false;

	if (loop == NULL)
	{
		for (int i = 0; i < n; i++)
		{
			missions[i].ok = false;
			missions[i].end = PLAN_END_LLM_ERROR;
			snprintf(missions[i].reason, sizeof(missions[i].reason), "setup");
			snprintf(missions[i].error, sizeof(missions[i].error), "%s", err);
		}
		return -1;
	}
	while (!finished)
	{
		if (abort_cb && abort_cb(abort_arg))
			break;
		finished = plan_loop_step(loop, 100);
	}
	plan_loop_free(loop);
	return finished ? 0 : 1;
}
