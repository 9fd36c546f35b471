/*
 * planner_plan.c: what a finished planner loop hands back
 * (planner_mission.h): the tools protocol's plan as JSON, the name of each
 * way a loop ends, and freeing a mission's results.  Postgres-free.
 *
 * Owns the shape the tick turns into an iteration: {summary, steps:[{summary,
 * toolName, params, rationale}]}, where a step's summary is its rationale
 * (the web app shows summary and ignores rationale) and the plan's summary
 * the model's final text or a German line counting the proposals.  Never
 * invents a step or changes a validated one.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "json_strict.h"
#include "planner_mission.h"
#include "tool_json.h"

const char *
plan_end_name(PlanEnd end)
{
	static const char *const names[] = {
		"none", "stop", "max-steps", "max-rounds", "deadline", "token-budget",
		"llm-error", "bad-answer", "cut-off", "aborted"
	};

	return (end >= PLAN_END_NONE && end <= PLAN_END_ABORTED) ? names[end] : "none";
}

void
plan_mission_clear(PlanMission *m)
{
	free(m->content);
	m->content = NULL;
	json_object_put(m->steps);
	m->steps = NULL;
	json_object_put(m->flags);
	m->flags = NULL;
}

char *
plan_mission_plan_json(const PlanMission *m)
{
	json_object *plan = json_object_new_object();
	json_object *steps = json_object_new_array();
	char		summary[128];
	char	   *text;
	size_t		n = m->steps ? json_object_array_length(m->steps) : 0;

	if (!text_is_blank(m->content))
		json_object_object_add(plan, "summary", json_object_new_string(m->content));
	else
	{
		if (n == 0)
			snprintf(summary, sizeof(summary), "Gerade ist nichts zu tun.");
		else
			snprintf(summary, sizeof(summary), "%zu %s zur Prüfung.", n,
					 n == 1 ? "Vorschlag" : "Vorschläge");
		json_object_object_add(plan, "summary", json_object_new_string(summary));
	}
	for (size_t k = 0; k < n; k++)
	{
		json_object *src = json_object_array_get_idx(m->steps, k);
		json_object *step = json_object_new_object();
		json_object *v = NULL;

		json_object_object_get_ex(src, "rationale", &v);
		json_object_object_add(step, "summary", json_object_get(v));
		json_object_object_get_ex(src, "toolName", &v);
		json_object_object_add(step, "toolName", json_object_get(v));
		json_object_object_get_ex(src, "params", &v);
		json_object_object_add(step, "params", json_object_get(v));
		json_object_object_get_ex(src, "rationale", &v);
		json_object_object_add(step, "rationale", json_object_get(v));
		json_object_array_add(steps, step);
	}
	json_object_object_add(plan, "steps", steps);
	text = tool_json_text(plan);
	json_object_put(plan);
	return text;
}
