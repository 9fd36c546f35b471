/*
 * planner_round.c: one round of a planner conversation (planner_round.h):
 * turning a tools answer's calls into steps, with the step cap and the
 * prompt-injection policy, and the token-budget reminder that goes with
 * the next request only.  Postgres-free.
 *
 * Owns what a round adds to a mission (steps, flags, reminders) and the
 * wording the model reads about it.  Must never store a reminder in the
 * conversation (it belongs to one request), never plan a call the policy
 * refuses, and never quote a flagged argument back (the label is enough).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "injection.h"
#include "planner_round.h"
#include "tool_offer.h"
#include "tool_json.h"
#include "tool_messages.h"

#define REMINDER_75 "Hinweis zum Token-Budget: Der Agent hat %lld von %lld Tokens seines " \
	"Tagesbudgets verbraucht (%d %%). Plane nur noch, was die Mission wirklich braucht, " \
	"und beende die Planung bald mit einer kurzen Zusammenfassung."
#define REMINDER_100 "Hinweis zum Token-Budget: Mit dieser Runde ist das Tagesbudget des " \
	"Agenten (%lld Tokens) aufgebraucht. Dies ist die letzte Runde: schlage höchstens " \
	"noch den wichtigsten Schritt vor und beende die Planung mit einer kurzen Zusammenfassung."

/* Whether name is one of the offered functions (metrics label it so). */
static bool
offered_has(json_object *offered, const char *name)
{
	size_t		n = offered ? json_object_array_length(offered) : 0;

	for (size_t k = 0; name && k < n; k++)
	{
		json_object *fn = NULL;
		const char *fname;

		json_object_object_get_ex(json_object_array_get_idx(offered, k), "function", &fn);
		fname = tool_json_str(fn, "name");
		if (fname && strcmp(fname, name) == 0)
			return true;
	}
	return false;
}

/* The injection policy on a valid call: flag it, and under refuse reject it. */
static void
judge_injection(const PlanLoopConfig *cfg, PlanMission *m, ToolResponse *res, int k)
{
	ToolCall   *c = &res->calls[k];
	const char *marker;
	json_object *f;
	char		why[240];

	if (cfg->injection == INJECTION_OFF || !c->ok ||
		(marker = injection_marker(c->params)) == NULL)
		return;
	f = json_object_new_object();
	json_object_object_add(f, "toolName", json_object_new_string(c->name));
	json_object_object_add(f, "marker", json_object_new_string(marker));
	json_object_object_add(f, "refused", json_object_new_boolean(cfg->injection == INJECTION_REFUSE));
	if (m->flags == NULL)
		m->flags = json_object_new_array();
	json_object_array_add(m->flags, f);
	if (cfg->injection != INJECTION_REFUSE)
		return;
	snprintf(why, sizeof(why), "the arguments hold a prompt-injection marker (%s); the call "
			 "was not recorded: propose the step without text that addresses the planner",
			 marker);
	tool_response_reject(res, k, "injection-marker", why);
}

void
plan_round_take_calls(const PlanLoopConfig *cfg, PlanMission *m, json_object *offered,
					  ToolResponse *res)
{
	const PlanHooks *h = &cfg->hooks;

	for (int k = 0; k < res->n_calls; k++)
	{
		ToolCall   *c = &res->calls[k];

		if (!c->ok && strcmp(c->code, TOOL_OFFER_CODE) == 0)
			continue;			/* more_tools: answered, neither step nor error */
		if (c->ok && m->n_steps >= cfg->max_steps)
		{
			char		why[160];

			snprintf(why, sizeof(why), "the plan already has %d steps; this call was not recorded",
					 cfg->max_steps);
			tool_response_reject(res, k, "too-many-steps", why);
		}
		judge_injection(cfg, m, res, k);
		if (c->ok)
		{
			json_object *step = json_object_new_object();

			if (m->steps == NULL)
				m->steps = json_object_new_array();
			json_object_object_add(step, "toolName", json_object_new_string(c->name));
			json_object_object_add(step, "params", c->params ? json_object_get(c->params) :
								   json_object_new_object());
			json_object_object_add(step, "rationale", json_object_new_string(c->rationale));
			json_object_array_add(m->steps, step);
			m->n_steps++;
			m->calls_planned++;
			if (h->tool_call)
				h->tool_call(h->arg, c->name, true);
		}
		else
		{
			m->calls_invalid++;
			if (h->tool_call)
				h->tool_call(h->arg, offered_has(offered, c->name) ? c->name : NULL, false);
		}
	}
}

json_object *
plan_round_reminder(PlanMission *m, int64_t last_round)
{
	int64_t		used;
	int			level = 0;
	char		text[512];
	json_object *msg;

	if (m->budget == NULL || m->budget_total <= 0)
		return NULL;
	used = m->budget_total - *m->budget;
	if (used + (last_round > 0 ? last_round : 0) >= m->budget_total && last_round > 0)
		level = 100;
	else if (used * 4 >= m->budget_total * 3)
		level = 75;
	if (level <= m->reminded)
		return NULL;
	m->reminded = level;
	m->reminders++;
	if (level == 100)
		snprintf(text, sizeof(text), REMINDER_100, (long long) m->budget_total);
	else
		snprintf(text, sizeof(text), REMINDER_75, (long long) used,
				 (long long) m->budget_total, (int) (used * 100 / m->budget_total));
	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("system"));
	json_object_object_add(msg, "content", json_object_new_string(text));
	return msg;
}

char *
plan_round_body(const char *model, double temperature, json_object *messages,
				json_object *reminder, json_object *offered, const char *tools_text)
{
	json_object *send = messages;
	char	   *body;

	if (reminder != NULL)
	{
		/* a copy that shares the messages: the conversation stays as it was */
		send = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(messages); i++)
			json_object_array_add(send, json_object_get(json_object_array_get_idx(messages, i)));
		json_object_array_add(send, json_object_get(reminder));
	}
	body = tool_request_body_text(model, temperature, send, offered, tools_text);
	if (send != messages)
		json_object_put(send);
	return body;
}
