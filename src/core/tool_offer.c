/*
 * tool_offer.c: the functions offered to one mission, and more_tools,
 * the discovery function that offers the rest (tool_offer.h),
 * Postgres-free.
 *
 * Owns the choice (core modules, input modules, tools used before, all
 * within the agent's policy), the order (the agent-wide part first), the
 * discovery function's text, the reserve a discovery call draws from, and
 * turning such a call into an answer instead of a step.  Must never offer
 * a tool the policy denies (it is neither offered nor in the reserve nor
 * named in more_tools), never parse JSON by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_json.h"
#include "tool_offer.h"
#include "tool_schema.h"

#define DISCOVERY_TEXT "Schaltet die Werkzeuge eines weiteren Moduls für die nächste Runde frei; " \
	"das ist kein Schritt des Plans. Module und ihre Werkzeuge: "

static json_object *
parse_text(const char *text)
{
	const char *code = NULL;

	return text ? tool_json_parse(text, strlen(text), &code) : NULL;
}

static bool
in_list(const char *s, const char *const *list, int n)
{
	for (int i = 0; s && i < n; i++)
		if (list[i] && strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool
usable(const ToolOfferTool *t)
{
	return t->allowed && t->function && t->function[0] && t->name && t->module;
}

const char *
tool_offer_why_name(ToolOfferWhy why)
{
	switch (why)
	{
		case OFFER_CORE:
			return "core";
		case OFFER_INPUT:
			return "input";
		case OFFER_USED:
			return "used";
		case OFFER_DENIED:
			return "denied";
		case OFFER_NOT:
			break;
	}
	return "discovery";
}

/*
 * more_tools: one required argument module, an enum of every allowed
 * module outside the core (fixed per agent, so its bytes are too); the
 * description names each with its tools.  "" when there is none.
 */
static char *
discovery_function(const ToolOfferTool *cat, int n, const ToolOfferWhy *why)
{
	json_object *params = json_object_new_array();
	json_object *param = json_object_new_object();
	json_object *en = json_object_new_array();
	printbuf   *desc = printbuf_new();
	char		err[TOOL_SCHEMA_ERROR_LEN];
	char	   *out = NULL;
	const char *ptext;
	int			modules = 0;

	if (!params || !param || !en || !desc)
		goto done;
	printbuf_strappend(desc, DISCOVERY_TEXT);
	for (int i = 0; i < n; i++)
	{
		bool		seen = false;

		if (!usable(&cat[i]) || why[i] == OFFER_CORE)
			continue;
		for (int k = 0; k < i && !seen; k++)
			seen = usable(&cat[k]) && why[k] != OFFER_CORE && strcmp(cat[k].module, cat[i].module) == 0;
		if (seen)
			continue;
		/* catalog order is by name: list each module once, its tools after */
		sprintbuf(desc, "%s%s (", modules ? "; " : "", cat[i].module);
		for (int k = i, first = 1; k < n; k++)
			if (usable(&cat[k]) && why[k] != OFFER_CORE && strcmp(cat[k].module, cat[i].module) == 0)
			{
				sprintbuf(desc, "%s%s", first ? "" : ", ", cat[k].name);
				first = 0;
			}
		printbuf_strappend(desc, ")");
		json_object_array_add(en, json_object_new_string(cat[i].module));
		modules++;
	}
	if (modules == 0)
	{
		out = strdup("");
		goto done;
	}
	json_object_object_add(param, "name", json_object_new_string("module"));
	json_object_object_add(param, "type", json_object_new_string("string"));
	json_object_object_add(param, "required", json_object_new_boolean(1));
	json_object_object_add(param, "description", json_object_new_string("Modul"));
	json_object_object_add(param, "enum", en);
	en = NULL;
	json_object_array_add(params, param);
	param = NULL;
	ptext = json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN);
	out = tool_schema_function_text(TOOL_OFFER_DISCOVERY, desc->buf, ptext, strlen(ptext),
									err, sizeof(err));
done:
	json_object_put(en);
	json_object_put(param);
	json_object_put(params);
	if (desc)
		printbuf_free(desc);
	return out;
}

void
tool_offer_classify(const ToolOfferTool *cat, int n,
					const char *const *core_modules, int n_core,
					const char *const *input_modules, int n_input,
					const char *const *used_tools, int n_used,
					ToolOfferWhy *why)
{
	for (int i = 0; i < n; i++)
		why[i] = !usable(&cat[i]) ? OFFER_DENIED :
			in_list(cat[i].module, core_modules, n_core) ? OFFER_CORE :
			in_list(cat[i].module, input_modules, n_input) ? OFFER_INPUT :
			in_list(cat[i].name, used_tools, n_used) ? OFFER_USED : OFFER_NOT;
}

bool
tool_offer_build(const ToolOfferTool *cat, int n,
				 const char *const *core_modules, int n_core,
				 const char *const *input_modules, int n_input,
				 const char *const *used_tools, int n_used,
				 ToolOffer *out)
{
	ToolOfferWhy *why = calloc(n > 0 ? n : 1, sizeof(ToolOfferWhy));
	bool		ok;

	if (why == NULL)
	{
		memset(out, 0, sizeof(*out));
		return false;
	}
	tool_offer_classify(cat, n, core_modules, n_core, input_modules, n_input,
						used_tools, n_used, why);
	ok = tool_offer_build_from(cat, n, why, out);
	free(why);
	return ok;
}

bool
tool_offer_build_from(const ToolOfferTool *cat, int n, const ToolOfferWhy *why,
					  ToolOffer *out)
{
	printbuf   *arr = printbuf_new();
	json_object *reserve = json_object_new_object();
	char	   *discovery = NULL;
	int			n_reserve = 0;

	memset(out, 0, sizeof(*out));
	out->why = calloc(n > 0 ? n : 1, sizeof(ToolOfferWhy));
	if (!arr || !reserve || !out->why)
		goto oom;
	memcpy(out->why, why, sizeof(ToolOfferWhy) * n);
	discovery = discovery_function(cat, n, out->why);
	if (discovery == NULL)
		goto oom;

	/* the agent-wide part: core tools, then more_tools; the mission's after */
	printbuf_strappend(arr, "[");
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < n; i++)
			if ((pass == 0) == (out->why[i] == OFFER_CORE) &&
				(out->why[i] == OFFER_CORE || out->why[i] == OFFER_INPUT || out->why[i] == OFFER_USED))
			{
				sprintbuf(arr, "%s%s", out->n_offered ? "," : "", cat[i].function);
				out->n_offered++;
			}
		if (pass == 0 && discovery[0])
		{
			sprintbuf(arr, "%s%s", out->n_offered ? "," : "", discovery);
			out->n_offered++;
		}
	}
	printbuf_strappend(arr, "]");

	for (int i = 0; i < n; i++)
		if (out->why[i] == OFFER_NOT)
		{
			json_object *list = NULL;
			json_object *entry = parse_text(cat[i].function);

			if (entry == NULL)
				continue;
			if (!json_object_object_get_ex(reserve, cat[i].module, &list))
			{
				list = json_object_new_array();
				json_object_object_add(reserve, cat[i].module, list);
			}
			json_object_array_add(list, entry);
			n_reserve++;
		}
	out->tools = strdup(arr->buf);
	out->reserve = n_reserve ? tool_json_text(reserve) : NULL;
	if (out->tools == NULL || (n_reserve && out->reserve == NULL))
		goto oom;
	printbuf_free(arr);
	json_object_put(reserve);
	free(discovery);
	return true;

oom:
	if (arr)
		printbuf_free(arr);
	json_object_put(reserve);
	free(discovery);
	tool_offer_free(out);
	return false;
}

void
tool_offer_free(ToolOffer *offer)
{
	free(offer->tools);
	free(offer->reserve);
	free(offer->why);
	memset(offer, 0, sizeof(*offer));
}

/* Whether the offered array has a function of this name. */
static bool
has_function(json_object *offered, const char *name)
{
	for (size_t k = 0; k < json_object_array_length(offered); k++)
	{
		json_object *fn = NULL;
		const char *f;

		json_object_object_get_ex(json_object_array_get_idx(offered, k), "function", &fn);
		f = tool_json_str(fn, "name");
		if (f && strcmp(f, name) == 0)
			return true;
	}
	return false;
}

int
tool_offer_take_discovery(ToolResponse *res, const char *reserve_text,
						  json_object **offered, bool *owned, char **text)
{
	json_object *reserve = NULL;
	int			seen = 0;

	for (int k = 0; k < res->n_calls; k++)
	{
		ToolCall   *c = &res->calls[k];
		json_object *list = NULL;
		json_object *grown;
		const char *module;
		char		reply[TOOL_CALLS_ERROR_LEN];
		size_t		used;

		if (!c->ok || strcmp(c->name, TOOL_OFFER_DISCOVERY) != 0)
			continue;
		seen++;
		module = tool_json_str(c->params, "module");
		if (reserve == NULL && reserve_text)
			reserve = parse_text(reserve_text);
		if (module == NULL || reserve == NULL ||
			!json_object_object_get_ex(reserve, module, &list) ||
			json_object_array_length(list) == 0 ||
			has_function(*offered, tool_json_str(json_object_object_get(
				json_object_array_get_idx(list, 0), "function"), "name")))
		{
			snprintf(reply, sizeof(reply), "Die Werkzeuge des Moduls %s sind bereits verfügbar.",
					 module ? module : "?");
			tool_response_reject(res, k, TOOL_OFFER_CODE, reply);
			continue;
		}
		grown = json_object_new_array();
		if (grown == NULL)
			goto oom;
		for (size_t i = 0; i < json_object_array_length(*offered); i++)
			json_object_array_add(grown, json_object_get(json_object_array_get_idx(*offered, i)));
		used = snprintf(reply, sizeof(reply), "Ab der nächsten Runde verfügbar (Modul %s):", module);
		for (size_t i = 0; i < json_object_array_length(list); i++)
		{
			json_object *e = json_object_array_get_idx(list, i);
			const char *name = tool_json_str(json_object_object_get(e, "function"), "name");

			json_object_array_add(grown, json_object_get(e));
			if (used < sizeof(reply))
				used += snprintf(reply + used, sizeof(reply) - used, "%s %s", i ? "," : "",
								 name ? name : "?");
		}
		if (*owned)
		{
			json_object_put(*offered);
			free(*text);
		}
		*offered = grown;
		*owned = true;
		*text = tool_json_text(grown);
		if (*text == NULL)
			goto oom;
		tool_response_reject(res, k, TOOL_OFFER_CODE, reply);
	}
	json_object_put(reserve);
	return seen;

oom:
	json_object_put(reserve);
	return -1;
}
