/*
 * tool_offer.h: which functions a mission is offered in the tools
 * protocol, and the discovery function that offers the rest, Postgres-free.
 *
 * Owns choosing, from the tools the agent's policy allows (the outer
 * bound, never crossed), the ones a mission likely needs:
 *   core    the tools of mana_ai.planner_core_modules (default todo),
 *   input   the tools of the modules the mission reads as inputs,
 *   used    the tools its earlier iterations planned,
 * plus one compact function, more_tools(module), whose description lists
 * every other allowed module with its tools' names; a call of it adds that
 * module's tools to the mission's next round (the loop's side is
 * tool_offer_take_discovery below).  The array is ordered so that what is
 * the same for every mission of an agent comes first (core tools, then
 * more_tools, both fixed by the policy), the mission's own after: a
 * provider's prompt cache serves the shared leading bytes.  Never parses
 * JSON by hand, never includes a PostgreSQL header.
 */
#ifndef MANA_AI_TOOL_OFFER_H
#define MANA_AI_TOOL_OFFER_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "tool_calls.h"

#define TOOL_OFFER_DISCOVERY "more_tools"
/* The code a discovery call is answered with (not a step, not invalid). */
#define TOOL_OFFER_CODE "tools-added"

/* Why a tool is offered from round 1 (or not). */
typedef enum ToolOfferWhy
{
	OFFER_NOT = 0,				/* allowed: reachable through more_tools */
	OFFER_DENIED,				/* the agent's policy denies it */
	OFFER_CORE,
	OFFER_INPUT,
	OFFER_USED
} ToolOfferWhy;

typedef struct ToolOfferTool
{
	const char *name;
	const char *module;
	const char *function;		/* the tools-protocol entry as JSON text;
								 * "" or NULL: unusable, never offered */
	bool		allowed;		/* the agent's policy does not deny it */
} ToolOfferTool;

typedef struct ToolOffer
{
	char	   *tools;			/* malloc'd JSON array text */
	char	   *reserve;		/* malloc'd {module: [entries]} of the allowed
								 * tools not offered; NULL when none */
	ToolOfferWhy *why;			/* malloc'd, one per catalog tool */
	int			n_offered;		/* functions in tools, more_tools included */
} ToolOffer;

/*
 * Why each tool is offered (why[0..n-1]); cat in catalog order.  The module
 * and tool lists may hold duplicates and unknown names.  Cheap: callers
 * key a cache of built offers on it.
 */
extern void tool_offer_classify(const ToolOfferTool *cat, int n,
								const char *const *core_modules, int n_core,
								const char *const *input_modules, int n_input,
								const char *const *used_tools, int n_used,
								ToolOfferWhy *why);

/* The offer for a classification (copied to out->why).  False when out of memory. */
extern bool tool_offer_build_from(const ToolOfferTool *cat, int n,
								  const ToolOfferWhy *why, ToolOffer *out);

/* Both at once. */
extern bool tool_offer_build(const ToolOfferTool *cat, int n,
							 const char *const *core_modules, int n_core,
							 const char *const *input_modules, int n_input,
							 const char *const *used_tools, int n_used,
							 ToolOffer *out);

extern void tool_offer_free(ToolOffer *offer);

/* "core", "input", "used", "discovery", "denied" */
extern const char *tool_offer_why_name(ToolOfferWhy why);

/*
 * In the planner loop, after an answer was judged against *offered: each
 * valid call of more_tools has its module's entries (from reserve_text)
 * appended to the offered array, and is turned into a call answered with
 * TOOL_OFFER_CODE and a reply naming the tools added (it is no step).
 * *offered is replaced by a new array the caller owns (*owned true; an
 * owned one it replaces is freed), *text by its compact text (malloc'd;
 * the old one freed when owned).  Returns the discovery calls seen, -1
 * when out of memory.
 */
extern int	tool_offer_take_discovery(ToolResponse *res, const char *reserve_text,
									  json_object **offered, bool *owned, char **text);

#endif
