/*
 * plan_parse.h: the strict planner-answer parser of SPEC 7.4, Postgres-free.
 *
 * Owns turning the LLM's free text into a validated plan
 * {summary, steps:[{summary, toolName, params, rationale}]}.  The answer is
 * untrusted: its size and nesting are capped before and while parsing, and
 * any violation rejects the whole plan with a short machine-readable
 * reason.  Never allocates with palloc, never reads past len.
 */
#ifndef MANA_AI_PLAN_PARSE_H
#define MANA_AI_PLAN_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "injection.h"

/* Answers longer than this are refused before any scanning. */
#define PLAN_PARSE_MAX_ANSWER	(1024 * 1024)
/* json-c tokener depth: the plan needs ~4 levels, params a few more. */
#define PLAN_PARSE_MAX_DEPTH	64
/* The prompt asks for 1-5 steps; anything far beyond is not a plan. */
#define PLAN_PARSE_MAX_STEPS	20

/* One catalog entry as the parser sees it: known, and maybe denied. */
typedef struct PlanTool
{
	const char *name;
	bool		denied;			/* the agent's policy resolved to deny */
} PlanTool;

typedef struct PlanParseResult
{
	bool		ok;
	/*
	 * On failure: a reason code such as "invalid-json" or, for a step,
	 * "unknown-tool@steps[2]"; step is the 0-based index or -1.
	 */
	char		reason[64];
	int			step;
	char		detail[160];	/* human-readable, may quote a tool name */
	json_object *plan;			/* owned; NULL unless ok */
	/* plan_parse_checked only, owned, NULL when empty: */
	json_object *dropped;		/* [{step, toolName, code, error}] */
	json_object *flags;			/* [{toolName, marker, refused}] */
} PlanParseResult;

/*
 * What plan_parse_checked adds: the functions the agent may call (the
 * tools protocol's "tools" array, tool_schema.h entries) and what a
 * prompt-injection marker in a step's params does.
 */
typedef struct PlanParseCheck
{
	json_object *offered;
	InjectionPolicy injection;
} PlanParseCheck;

/*
 * Parse answer[0..len) against the tools (denied ones are rejected with
 * "tool-denied").  Fills *out; returns out->ok.  Free with
 * plan_parse_result_free.  answer may be NULL when len alone exceeds the
 * cap (the caller need not load a huge answer to have it refused).
 */
extern bool plan_parse(const char *answer, size_t len,
					   const PlanTool *tools, size_t n_tools,
					   PlanParseResult *out);

/*
 * plan_parse, then each step as the tools protocol judges a tool call:
 * its params (plus its rationale) by tool_call_judge (the schema's rules,
 * then the web app executor's), and its params for injection markers.  A
 * step that fails is dropped, as the tools loop never plans an invalid
 * call, and listed in out->dropped; the plan stays ok unless it had steps
 * and none is left ("no-valid-step").  Markers found go to out->flags.
 */
extern bool plan_parse_checked(const char *answer, size_t len,
							   const PlanTool *tools, size_t n_tools,
							   const PlanParseCheck *check, PlanParseResult *out);

/*
 * The SQL-facing shape: {"ok":true,"plan":{...},"dropped"?,"flags"?} or
 * {"ok":false,"reason":...,"step":n?,"detail":...} as malloc'd JSON text.
 */
extern char *plan_parse_result_json(const PlanParseResult *res);

extern void plan_parse_result_free(PlanParseResult *res);

#endif
