/*
 * planner.h: the planner's PostgreSQL side (SPEC 7): prompt and strict
 * parse against the tool catalog in mana_ai.tools.
 *
 * Both calls run inside a transaction, do their own SPI to read the
 * catalog (nesting inside a caller's SPI connection is fine) and return
 * palloc'd results in the caller's memory context.  Neither calls the LLM.
 */
#ifndef MANA_AI_PLANNER_H
#define MANA_AI_PLANNER_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

typedef struct PlannerPrompt
{
	char	   *system;
	char	   *user;
	char	   *tools;			/* tools protocol: the offered functions as a
								 * JSON array; NULL for the json protocol.
								 * Within a tick it lives in the tick's memory
								 * and may be shared by several missions. */
	char	   *tools_reserve;	/* tools: {module: [entries]} that a call of
								 * more_tools adds; NULL when none */
	char	   *tools_why;		/* build_prompt only: [{tool, module, offered}] */
} PlannerPrompt;

/*
 * The SPEC 7.3 prompt for a merged mission record.  agent may be NULL
 * (legacy mission: no <agent_context>, every tool); inputs is a List of
 * ResolvedInput * (src/crypto/inputs.h), NIL for none.  tools_protocol: the
 * system message without answer format and tool list, and the tools the
 * agent's policy allows as functions (src/core/tool_schema.h).
 */
extern PlannerPrompt mana_ai_render_prompt(Jsonb *mission, Jsonb *agent,
										   List *inputs, bool tools_protocol);

/* The same, with tools_why filled in (for build_prompt). */
extern PlannerPrompt mana_ai_render_prompt_why(Jsonb *mission, Jsonb *agent,
											   List *inputs, bool tools_protocol);

/* The same, with tools_why filled in (for build_prompt). */
extern PlannerPrompt mana_ai_render_prompt_why(Jsonb *mission, Jsonb *agent,
											   List *inputs, bool tools_protocol);

/*
 * Strict parse (SPEC 7.4) against the catalog filtered by the agent's
 * policy (agent NULL = all tools).  Returns jsonb
 * {"ok":true,"plan":{summary, steps}} or
 * {"ok":false,"reason":..., "step":n (when a step is at fault), "detail":...}.
 */
extern Jsonb *mana_ai_parse_plan_for(const char *answer, Jsonb *agent);

/* The same for a counted buffer (need not be NUL-terminated). */
/*
 * The tick's json-protocol parse: each step also judged as a tool call of
 * the agent's functions (the schema's rules, then the web app executor's)
 * and scanned under mana_ai.injection_policy; a step that fails is
 * dropped.  {ok, plan, dropped?, flags?} or {ok:false, reason, ...}.
 */
extern Jsonb *mana_ai_parse_plan_checked(const char *answer, Jsonb *agent);
extern Jsonb *mana_ai_parse_plan_len(const char *answer, size_t len,
									 Jsonb *agent);

/*
 * Between these two calls (a tick; cxt outlives it) the catalog is read
 * once, into cxt, and reused.  end must run however the tick ends.
 */
extern void mana_ai_planner_tick_begin(MemoryContext cxt);
extern void mana_ai_planner_tick_end(void);

#endif
