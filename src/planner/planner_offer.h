/*
 * planner_offer.h: the functions offered to a mission in the tools
 * protocol (planner_offer.c; the choice is src/core/tool_offer.c's).
 * Include after json-c's json_object has been renamed (see planner.c).
 */
#ifndef MANA_AI_PLANNER_OFFER_H
#define MANA_AI_PLANNER_OFFER_H

#include "postgres.h"

#include "core/tool_offer.h"

/* Forget the tick's cached offers (their memory is the tick's). */
extern void mana_ai_offer_tick_reset(void);

/*
 * The offered functions (JSON array text) for a mission: cat is the
 * catalog with the policy's verdict per tool, mission the parsed record
 * (for the tools its iterations used), input_modules its inputs' modules.
 * *reserve gets the {module: [entries]} more_tools draws from (NULL when
 * none); *why_json, when not NULL, a JSON array [{tool, module, offered}].
 * Results in cxt; in_tick: cached for the tick's other missions.
 */
extern char *mana_ai_offer_tools(const ToolOfferTool *cat, int n, json_object *mission,
								 const char *const *input_modules, int n_input,
								 MemoryContext cxt, bool in_tick,
								 char **reserve, char **why_json);

/* Every function the policy allows (cat[i].allowed), as a JSON array text. */
extern char *mana_ai_offer_every_allowed(const ToolOfferTool *cat, int n, MemoryContext cxt);

#endif
