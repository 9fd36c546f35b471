/*
 * planner_offer.c: the functions a mission is offered in the tools
 * protocol, from PostgreSQL's side (the choice itself is
 * src/core/tool_offer.c's).
 *
 * Owns reading mana_ai.planner_core_modules, the tools a mission's
 * earlier iterations planned (iterations[].plan[].intent.toolName), the
 * tick's cache of offers (missions with the same offer share one text, so
 * the planner loop parses it once), and the "why" that build_prompt shows.
 * Must never widen what the agent's policy allows (the caller passes the
 * policy's verdict per tool) and never keep malloc'd memory past a call:
 * the results are palloc'd.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#define json_object jsonc_object
#include "core/tool_offer.h"
#include "ops/guc.h"
#include "planner/planner_offer.h"

#define OFFER_CACHE_MAX 64
#define USED_TOOLS_MAX 64

typedef struct CachedOffer
{
	ToolOfferWhy *why;			/* the key: n_tools entries */
	char	   *tools;
	char	   *reserve;
} CachedOffer;

static CachedOffer cache[OFFER_CACHE_MAX];
static int	cache_n = 0;
static int	cache_tools = 0;

void
mana_ai_offer_tick_reset(void)
{
	cache_n = 0;				/* the texts live in the tick's memory */
	cache_tools = 0;
}

/* The names the mission's earlier iterations planned (borrowed). */
static int
used_tools(json_object *mission, const char **out, int max)
{
	json_object *its = NULL;
	int			n = 0;

	if (!json_object_is_type(mission, json_type_object) ||
		!json_object_object_get_ex(mission, "iterations", &its) ||
		!json_object_is_type(its, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(its) && n < max; i++)
	{
		json_object *plan = NULL;

		if (!json_object_object_get_ex(json_object_array_get_idx(its, i), "plan", &plan) ||
			!json_object_is_type(plan, json_type_array))
			continue;
		for (size_t k = 0; k < json_object_array_length(plan) && n < max; k++)
		{
			json_object *intent = NULL,
					   *name = NULL;

			if (json_object_object_get_ex(json_object_array_get_idx(plan, k), "intent", &intent) &&
				json_object_object_get_ex(intent, "toolName", &name) &&
				json_object_is_type(name, json_type_string))
				out[n++] = json_object_get_string(name);
		}
	}
	return n;
}

/* mana_ai.planner_core_modules split at commas (palloc'd copies). */
static int
core_modules(const char ***out)
{
	char	   *copy = pstrdup(mana_ai_planner_core_modules ? mana_ai_planner_core_modules : "");
	List	   *names = NIL;
	ListCell   *lc;
	int			n = 0;

	if (!SplitIdentifierString(copy, ',', &names))
		names = NIL;			/* the check hook keeps this from happening */
	*out = palloc0(sizeof(char *) * (list_length(names) + 1));
	foreach(lc, names)
		(*out)[n++] = (const char *) lfirst(lc);
	return n;
}

char *
mana_ai_offer_tools(const ToolOfferTool *cat, int n, json_object *mission,
					const char *const *input_modules, int n_input,
					MemoryContext cxt, bool in_tick, char **reserve, char **why_json)
{
	const char **core;
	const char *used[USED_TOOLS_MAX];
	int			n_core = core_modules(&core);
	int			n_used = used_tools(mission, used, USED_TOOLS_MAX);
	ToolOfferWhy *why = palloc(sizeof(ToolOfferWhy) * (n > 0 ? n : 1));
	ToolOffer	offer;
	char	   *tools;
	MemoryContext old;

	tool_offer_classify(cat, n, core, n_core, input_modules, n_input, used, n_used, why);
	if (why_json != NULL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '[');
		for (int i = 0; i < n; i++)
		{
			appendStringInfo(&buf, "%s{\"tool\": ", i ? ", " : "");
			escape_json(&buf, cat[i].name);
			appendStringInfoString(&buf, ", \"module\": ");
			escape_json(&buf, cat[i].module);
			appendStringInfo(&buf, ", \"offered\": \"%s\"}", tool_offer_why_name(why[i]));
		}
		appendStringInfoChar(&buf, ']');
		*why_json = buf.data;
	}

	/* the same offer as an earlier mission of this tick: its texts, unbuilt */
	if (!in_tick || cache_tools != n)
		cache_n = 0;
	cache_tools = n;
	for (int k = 0; k < cache_n; k++)
		if (memcmp(cache[k].why, why, sizeof(ToolOfferWhy) * n) == 0)
		{
			*reserve = cache[k].reserve;
			pfree(why);
			return cache[k].tools;
		}
	if (!tool_offer_build_from(cat, n, why, &offer))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
						errdetail("Choosing the tools to offer failed.")));
	pfree(why);

	old = MemoryContextSwitchTo(cxt);
	tools = pstrdup(offer.tools);
	*reserve = offer.reserve ? pstrdup(offer.reserve) : NULL;
	if (in_tick && cache_n < OFFER_CACHE_MAX)
	{
		cache[cache_n].why = palloc(sizeof(ToolOfferWhy) * (n > 0 ? n : 1));
		memcpy(cache[cache_n].why, offer.why, sizeof(ToolOfferWhy) * n);
		cache[cache_n].tools = tools;
		cache[cache_n].reserve = *reserve;
		cache_n++;
	}
	MemoryContextSwitchTo(old);
	tool_offer_free(&offer);
	return tools;
}

/*
 * Every function the agent's policy allows, as one JSON array text: what
 * a json-protocol step is judged against (the tools protocol reaches each
 * of them through more_tools, so a json step may name any of them too).
 */
char *
mana_ai_offer_every_allowed(const ToolOfferTool *cat, int n, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < n; i++)
	{
		if (!cat[i].allowed || cat[i].function == NULL || cat[i].function[0] == '\0')
			continue;
		if (!first)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, cat[i].function);
		first = false;
	}
	appendStringInfoChar(&buf, ']');
	MemoryContextSwitchTo(old);
	return buf.data;
}
