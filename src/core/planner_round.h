/*
 * planner_round.h: what planner_loop.c does with one round, shared with
 * planner_round.c; not an API for anyone else.
 */
#ifndef MANA_AI_PLANNER_ROUND_H
#define MANA_AI_PLANNER_ROUND_H

#include "planner_mission.h"
#include "tool_calls.h"

/*
 * Each call of a tools answer: a step (the cap, then the injection policy
 * permitting), or an invalid call; the hooks see both.  offered: the
 * mission's functions.
 */
extern void plan_round_take_calls(const PlanLoopConfig *cfg, PlanMission *m,
								  json_object *offered, ToolResponse *res);

/*
 * The token-budget reminder due before mission m's next round, as a new
 * {role:"system"} message, or NULL: at 75 % of the agent's daily budget
 * (m->budget_total: used today plus this tick's rounds), and again at
 * 100 % (the next round, at the last round's size, uses the budget up),
 * each once per loop.  last_round: the tokens of the last round (0 none).
 */
extern json_object *plan_round_reminder(PlanMission *m, int64_t last_round);

/*
 * The request body of the next round: messages (the conversation, never
 * changed) with the reminder (NULL: none) appended for this request only.
 * offered NULL / tools_text NULL: no tools (the json protocol).
 */
extern char *plan_round_body(const char *model, double temperature,
							 json_object *messages, json_object *reminder,
							 json_object *offered, const char *tools_text);

#endif
