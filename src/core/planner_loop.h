/*
 * planner_loop.h: every mission's planner conversation of one tick, in
 * one libcurl multi handle, Postgres-free.
 *
 * Owns the planner protocols on the wire:
 *   json   one round: {system, user} -> choices[0].message.content (the
 *          fenced plan the caller parses with plan_parse.h);
 *   tools  rounds of OpenAI function calling: each answer's tool_calls are
 *          validated against the offered functions (tool_calls.h), a valid
 *          call becomes a step, every call is answered with a tool message
 *          (tool_messages.h), until the model stops, max_rounds, max_steps
 *          valid steps, the mission's deadline or the agent's token budget.
 * and the model chain: a call failing by connection error, timeout, 5xx
 * or 429 (after the client's retries) is sent again to the next model,
 * within the same deadline, past any model the tick's breaker has opened
 * (PlanBreaker).  A mission in its third round never holds up
 * another's first: as a round ends, the next round's request joins the
 * same handle; at most max_parallel calls are in flight.  Never includes
 * a PostgreSQL header, never blocks longer than the wait it is given, and
 * reports metrics only through the hooks.
 */
#ifndef MANA_AI_PLANNER_LOOP_H
#define MANA_AI_PLANNER_LOOP_H

#include <stdbool.h>
#include <stddef.h>

#include "llm_client.h"
#include "planner_mission.h"

typedef struct PlanLoop PlanLoop;

/*
 * Every one of missions[0..n) at once: plan_loop_open, plan_loop_add of
 * each, plan_loop_close.  NULL (reason in err) when the client or a tools
 * array is unusable.
 */
extern PlanLoop *plan_loop_create(const PlanLoopConfig *cfg,
								  PlanMission *missions, int n,
								  char *err, size_t errlen);

/*
 * A loop fed as it goes: room for capacity missions, none in it yet.
 * The caller fills missions[k] (system, user, tools, budget) and adds it
 * with plan_loop_add, between steps, while earlier ones are in flight;
 * plan_loop_close says no more will come.  NULL (reason in err) when the
 * client is unusable.
 */
extern PlanLoop *plan_loop_open(const PlanLoopConfig *cfg, PlanMission *missions,
								int capacity, char *err, size_t errlen);

/*
 * Add the next mission (the first of missions[] not added yet): its
 * index, or -1 (reason in err) when there is no room or its tools array
 * is unusable; such a mission has ended already (PLAN_END_LLM_ERROR) and
 * is given out by plan_loop_take_finished like any other.
 */
extern int	plan_loop_add(PlanLoop *loop, char *err, size_t errlen);
extern void plan_loop_close(PlanLoop *loop);

/* Missions added and not started yet (how far ahead the feeder is). */
extern int	plan_loop_waiting(const PlanLoop *loop);

/*
 * Send what may be sent, wait up to max_wait_ms (not at all when nothing
 * is in flight), judge finished rounds and queue next rounds.  True when
 * the loop is closed and every mission has ended.
 */
extern bool plan_loop_step(PlanLoop *loop, int max_wait_ms);

/*
 * Up to max missions that have ended since the last call, in the order
 * they ended, into out[] (indices into the missions array): each mission
 * is given out once, so the caller can settle it while the others are
 * still in flight (between steps; never from a hook).
 */
extern int	plan_loop_take_finished(PlanLoop *loop, int *out, int max);

/* Calls in flight now (for the in-flight gauge). */
extern int	plan_loop_in_flight(const PlanLoop *loop);

/* Abort what is in flight (those missions end ABORTED) and free the loop. */
extern void plan_loop_free(PlanLoop *loop);

/* All at once; 0 done, 1 aborted by abort_cb (polled every 100 ms), -1 set-up failed. */
extern int	plan_loop_run(const PlanLoopConfig *cfg, PlanMission *missions, int n,
						  LlmAbortCallback abort_cb, void *abort_arg);

#endif
