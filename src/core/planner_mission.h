/*
 * planner_mission.h: the words of the planner loop (planner_loop.h), as
 * its own files share them: the protocols, how a mission's conversation
 * ends, the hooks, the model breaker (planner_breaker.c), the loop's
 * configuration, and one mission with its results and what a finished one
 * hands back (planner_plan.c).  Postgres-free.  The loop itself
 * (planner_loop.c) includes this; nothing here calls the loop.
 */
#ifndef MANA_AI_PLANNER_MISSION_H
#define MANA_AI_PLANNER_MISSION_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "injection.h"
#include "llm_client.h"

#define PLAN_LOOP_MAX_MODELS 8
#define PLAN_LOOP_DEFAULT_MAX_STEPS 5

typedef enum PlanProtocol
{
	PLAN_PROTOCOL_TOOLS,
	PLAN_PROTOCOL_JSON
} PlanProtocol;

/* Why a mission's loop ended. */
typedef enum PlanEnd
{
	PLAN_END_NONE,				/* not ended yet */
	PLAN_END_STOP,				/* the model stopped (json: it answered) */
	PLAN_END_MAX_STEPS,			/* max_steps valid steps */
	PLAN_END_MAX_ROUNDS,
	PLAN_END_DEADLINE,			/* the mission's whole-loop deadline */
	PLAN_END_BUDGET,			/* the agent's token budget is used up */
	PLAN_END_LLM_ERROR,			/* every model left failed the round */
	PLAN_END_BAD_ANSWER,		/* an answer the protocol cannot use */
	PLAN_END_CUT_OFF,			/* no calls, finish_reason length or other */
	PLAN_END_ABORTED			/* plan_loop_free() before the end */
} PlanEnd;

/* Called from inside plan_loop_step(); none may longjmp. */
typedef struct PlanHooks
{
	void	   *arg;
	/* every tool call judged; tool NULL when its name was not offered */
	void		(*tool_call) (void *arg, const char *tool, bool planned);
	/* every failed call (after its retries) */
	void		(*llm_error) (void *arg, const char *model, LlmErrorKind kind);
	/* a round moves from model `from` to model `to` */
	void		(*fallback) (void *arg, const char *from, const char *to);
	/* every finished HTTP call, first attempt to result */
	void		(*request) (void *arg, double seconds);
	/* the breaker opened for model after `failures` failed calls in a row */
	void		(*breaker_open) (void *arg, const char *model, int failures);
	/* every finished call: its estimated tokens (bytes / 4) both ways */
	void		(*tokens) (void *arg, const char *model, int64_t sent, int64_t received);
} PlanHooks;

/*
 * The model breaker of one tick, owned by the caller and shared by every
 * mission of the loop: after `threshold` consecutive failed calls of a
 * model of the chain (those that fall back: connection, timeout, 5xx,
 * 429, after the client's retries), the model is open and every later
 * round goes straight to the next model.  The last model of the chain is
 * never skipped (a round always has a model to go to); a call that
 * answers resets its model's count.  threshold 0: off.
 */
typedef struct PlanBreaker
{
	int			threshold;
	int			failures[PLAN_LOOP_MAX_MODELS];	/* consecutive, by chain index */
	bool		open[PLAN_LOOP_MAX_MODELS];
	int			skipped[PLAN_LOOP_MAX_MODELS];	/* rounds sent past it */
} PlanBreaker;

/* planner_breaker.c: *model moved past every open model, never past the last. */
extern void plan_breaker_skip(PlanBreaker *b, int n_models, int *model);

/* A finished call of chain index k; true when this failure opened it. */
extern bool plan_breaker_count(PlanBreaker *b, int k, bool failed);

typedef struct PlanLoopConfig
{
	LlmClientConfig client;		/* model is ignored; timeout_ms bounds a
								 * mission's whole loop; manual_submit is set */
	const char *models[PLAN_LOOP_MAX_MODELS];	/* the chain, first = preferred */
	int			n_models;
	PlanProtocol protocol;
	int			max_rounds;		/* tools: answered rounds at most (>= 1) */
	int			max_steps;		/* tools: valid steps at most (0 = 5) */
	PlanBreaker *breaker;		/* NULL: no breaker */
	InjectionPolicy injection;	/* tools: a call whose arguments hold a
								 * marker: OFF, LOG (flagged) or REFUSE */
	PlanHooks	hooks;
} PlanLoopConfig;

typedef struct PlanMissionState PlanMissionState;

typedef struct PlanMission
{
	/* inputs, borrowed until plan_loop_free() */
	const char *system;
	const char *user;
	const char *tools;			/* tools: the offered functions, a JSON array
								 * (tool_schema.h entries); identical text is
								 * parsed once per loop */
	const char *tools_reserve;	/* tools: NULL, or {module: [entries]} that a
								 * call of more_tools adds (tool_offer.h) */
	int64_t    *budget;			/* tokens the agent may still spend, shared by
								 * its missions; NULL: no limit */
	int64_t		budget_total;	/* the agent's maxTokensPerDay (0: none), for
								 * the reminders at 75 % and 100 % */
	/* results */
	PlanEnd		end;
	bool		ok;				/* json: content holds the answer; tools: a
								 * plan (steps, or none after a voluntary stop) */
	char	   *content;		/* json: the answer; tools: the model's final
								 * text (the plan summary), NULL when none */
	json_object *steps;			/* tools: [{toolName, params, rationale}] */
	int			n_steps;
	int			rounds;			/* answered rounds */
	int			calls_planned;	/* tool calls that became steps */
	int			calls_invalid;	/* tool calls answered with an error */
	int64_t		total_tokens;	/* summed over rounds; -1 when none reported */
	const char *model;			/* the model that answered last (from the
								 * config's chain), NULL when none did */
	int			http_status;	/* of the last call */
	int			attempts;		/* HTTP attempts over all rounds and models */
	double		seconds;		/* first call's start to the loop's end */
	double		ended_at;		/* llm_monotonic_seconds() when it ended */
	char		reason[48];		/* !ok: a stable code */
	char		error[256];		/* !ok: for humans; never holds the key */
	json_object *flags;			/* tools: [{toolName, marker, refused}] of the
								 * calls the injection policy flagged; NULL none */
	int			reminded;		/* the last budget reminder sent: 0, 75, 100 */
	int			reminders;		/* budget reminders sent */
	PlanMissionState *state;	/* private */
} PlanMission;

/*
 * planner_plan.c, for a finished mission.  tools, ok: the plan as
 * malloc'd JSON text {summary, steps:[{summary,
 * toolName, params, rationale}]}, each step's summary its rationale (what
 * the web app shows), summary the model's final text or a German line
 * counting the proposals.  NULL when out of memory.
 */
extern char *plan_mission_plan_json(const PlanMission *m);

/* The label of an end ("stop", "max-rounds", ...). */
extern const char *plan_end_name(PlanEnd end);

/* Free a mission's results (not its inputs). */
extern void plan_mission_clear(PlanMission *m);

#endif
