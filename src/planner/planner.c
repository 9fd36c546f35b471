/*
 * planner.c: PostgreSQL glue of the planner (SPEC 7).
 *
 * Owns reading the tool catalog (mana_ai.tools) through SPI, handing
 * records to the Postgres-free prompt builder and parser in src/core, and
 * the SQL functions parse_plan, parse_plan_for and render_prompt.  json-c
 * allocates with malloc, so every json-c object lives in a Scratch that a
 * PG_FINALLY releases whatever ereport happens in between.  Must never
 * call the LLM, write a table, or build SQL from data.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

/*
 * PostgreSQL's fmgrprotos.h declares a SQL function json_object(), which
 * clashes with json-c's typedef of the same name.  This file never calls
 * the SQL one, so json-c's type is spelled jsonc_object here; the struct
 * tag is the only thing renamed, and tags do not reach the linker.
 */
#define json_object jsonc_object
#include "core/plan_parse.h"
#include "core/policy.h"
#include "core/prompt.h"
#include "core/tool_schema.h"
#include "crypto/inputs.h"
#include "ops/guc.h"
#include "planner/planner.h"
#include "planner/planner_offer.h"
#include "shared/spi_plans.h"

/* Records from jsonb nest far less; this only bounds json-c's stack. */
#define RECORD_MAX_DEPTH 512

/* One row of mana_ai.tools, palloc'd. */
typedef struct CatalogTool
{
	char	   *name;
	char	   *module;
	char	   *description;
	char	   *parameters;		/* jsonb as text */
	char	   *function;		/* tools protocol entry as JSON text, built on
								 * first use; "" when the row cannot map */
} CatalogTool;

/* Every malloc'd json-c resource of one call, freed in PG_FINALLY. */
typedef struct Scratch
{
	json_object *mission;
	json_object *agent;
	json_object *inputs;
	json_object **params;
	int			n_params;
	PromptResult prompt;
	PlanParseResult parse;
	json_object *out;
	json_object *offered;		/* checked parse: the agent's functions */
	char	   *text;
	char	   *function;		/* tool_schema_function_text's, until copied */
} Scratch;

static CatalogTool *load_catalog(int *n_tools);
static json_object *jsonb_to_jsonc(Jsonb *jb, const char *what);
static void scratch_free(Scratch *s);
static Jsonb *jsonc_to_jsonb(json_object *obj);
static PlannerPrompt render(Jsonb *mission, Jsonb *agent, List *resolved,
							Jsonb *inputs_json, bool tools_protocol, Scratch *s);
static ToolOfferTool *catalog_verdicts(CatalogTool *catalog, int n_tools, Scratch *s);
static char *offered_functions(CatalogTool *catalog, int n_tools, Scratch *s,
							   const PromptInput *in, int n_in, PlannerPrompt *result);
static PromptInput *inputs_from_json(Scratch *s, int *n);
static Jsonb *parse_against_catalog(const char *answer, size_t len,
									Jsonb *agent, bool checked, Scratch *s);

/*
 * While a tick runs, the catalog it read first, in the tick's memory: a
 * tick renders and parses against one catalog, read once rather than
 * twice per mission.
 */
static MemoryContext tick_catalog_cxt = NULL;
static CatalogTool *tick_catalog = NULL;
static int	tick_catalog_n = 0;

/* build_prompt asks for why each tool is offered (render fills tools_why). */
static bool want_why = false;

/*
 * The json protocol's prompt lists every tool's parameters: parsed once
 * per tick (malloc'd json-c trees, read-only until the tick ends) rather
 * than once per mission, which was most of a json prompt's cost with the
 * 62-tool catalog.
 */
static json_object **tick_params = NULL;
static int	tick_params_n = 0;

static void
free_tick_params(void)
{
	for (int i = 0; i < tick_params_n; i++)
		json_object_put(tick_params[i]);
	free(tick_params);
	tick_params = NULL;
	tick_params_n = 0;
}

/* The tick's parsed parameters of its catalog, built on first use. */
static json_object **
tick_catalog_params(void)
{
	if (tick_params == NULL)
	{
		tick_params = calloc(tick_catalog_n + 1, sizeof(json_object *));
		if (tick_params == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		/* validated on write (50_planner.sql); unreadable shows no params */
		for (int i = 0; i < tick_catalog_n; i++)
			tick_params[i] = json_tokener_parse(tick_catalog[i].parameters);
		tick_params_n = tick_catalog_n;
	}
	return tick_params;
}

/*
 * What a json-protocol step is judged against: every function the agent's
 * policy allows, about 40 KB of JSON with the 62-tool catalog.  Built and
 * parsed once per tick and policy rather than once per mission's
 * write-back, which made the json protocol's write-back several times
 * the tools protocol's (the tools loop keeps its own parsed offers).
 * Keyed by which catalog rows the policy allows (the tick reads one
 * catalog); a few policies at once, the oldest replaced.
 */
#define TICK_OFFERS 8
typedef struct TickOffer
{
	bool	   *allowed;		/* malloc'd, one per catalog row */
	json_object *parsed;		/* read-only while the tick runs */
} TickOffer;
static TickOffer tick_offers[TICK_OFFERS];
static int	tick_offers_next = 0;

static void
free_tick_offers(void)
{
	for (int i = 0; i < TICK_OFFERS; i++)
	{
		free(tick_offers[i].allowed);
		json_object_put(tick_offers[i].parsed);
		tick_offers[i].allowed = NULL;
		tick_offers[i].parsed = NULL;
	}
	tick_offers_next = 0;
}

/* The cached offer whose policy allows exactly what cat allows, or NULL. */
static json_object *
cached_offer(const ToolOfferTool *cat, int n)
{
	for (int i = 0; i < TICK_OFFERS; i++)
	{
		bool		same = tick_offers[i].allowed != NULL;

		for (int k = 0; same && k < n; k++)
			same = tick_offers[i].allowed[k] == cat[k].allowed;
		if (same)
			return tick_offers[i].parsed;
	}
	return NULL;
}

/*
 * Every function cat allows, parsed: from the tick's cache, or built,
 * parsed and kept there.  Outside a tick (SQL parse_plan) the scratch
 * owns it.
 */
static json_object *
every_allowed_offer(const ToolOfferTool *cat, int n, Scratch *s)
{
	json_object *parsed = tick_catalog_cxt ? cached_offer(cat, n) : NULL;
	char	   *text;
	bool	   *allowed;
	TickOffer  *slot;

	if (parsed != NULL)
		return parsed;
	text = mana_ai_offer_every_allowed(cat, n, CurrentMemoryContext);
	parsed = json_tokener_parse(text);
	pfree(text);
	if (parsed == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (tick_catalog_cxt == NULL)
	{
		s->offered = parsed;
		return parsed;
	}
	allowed = malloc(sizeof(bool) * (n + 1));
	if (allowed == NULL)
	{
		json_object_put(parsed);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	for (int k = 0; k < n; k++)
		allowed[k] = cat[k].allowed;
	slot = &tick_offers[tick_offers_next];
	tick_offers_next = (tick_offers_next + 1) % TICK_OFFERS;
	free(slot->allowed);
	json_object_put(slot->parsed);
	slot->allowed = allowed;
	slot->parsed = parsed;
	return parsed;
}

void
mana_ai_planner_tick_begin(MemoryContext cxt)
{
	free_tick_params();			/* left by a tick that never ended */
	free_tick_offers();
	tick_catalog_cxt = cxt;
	tick_catalog = NULL;
	tick_catalog_n = 0;
	mana_ai_offer_tick_reset();
}

void
mana_ai_planner_tick_end(void)
{
	mana_ai_planner_tick_begin(NULL);
}

/* The catalog ordered by name (bytewise), so prompts are deterministic. */
static CatalogTool *
load_catalog(int *n_tools)
{
	MemoryContext caller = tick_catalog_cxt ? tick_catalog_cxt : CurrentMemoryContext;
	MemoryContext spi;
	CatalogTool *tools;
	int			ret;

	if (tick_catalog != NULL)
	{
		*n_tools = tick_catalog_n;
		return tick_catalog;
	}

	mana_ai_spi_connect();
	ret = SPI_execute_plan(mana_ai_kept_plan("SELECT name, module, description, parameters::text "
											 "FROM mana_ai.tools ORDER BY name COLLATE \"C\"",
											 0, NULL, 0),
						   NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute on mana_ai.tools failed: %s",
			 SPI_result_code_string(ret));

	spi = MemoryContextSwitchTo(caller);
	tools = palloc0(sizeof(CatalogTool) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		tools[i].name = SPI_getvalue(row, desc, 1);
		tools[i].module = SPI_getvalue(row, desc, 2);
		tools[i].description = SPI_getvalue(row, desc, 3);
		tools[i].parameters = SPI_getvalue(row, desc, 4);
	}
	*n_tools = (int) SPI_processed;
	MemoryContextSwitchTo(spi);
	mana_ai_spi_finish();
	if (tick_catalog_cxt != NULL)
	{
		tick_catalog = tools;
		tick_catalog_n = *n_tools;
	}
	return tools;
}

/* A jsonb as a json-c tree (NULL for JSON null). */
static json_object *
jsonb_to_jsonc(Jsonb *jb, const char *what)
{
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	json_tokener *tok = json_tokener_new_ex(RECORD_MAX_DEPTH);
	json_object *obj;
	enum json_tokener_error err;

	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	obj = json_tokener_parse_ex(tok, text, (int) strlen(text));
	err = json_tokener_get_error(tok);
	json_tokener_free(tok);
	pfree(text);
	if (err != json_tokener_success)
	{
		json_object_put(obj);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cannot be read as JSON: %s", what,
						json_tokener_error_desc(err)),
				 errhint("Records nest at most %d levels deep.", RECORD_MAX_DEPTH)));
	}
	return obj;
}

static void
scratch_free(Scratch *s)
{
	json_object_put(s->mission);
	json_object_put(s->agent);
	json_object_put(s->inputs);
	for (int i = 0; i < s->n_params; i++)
		json_object_put(s->params[i]);
	prompt_result_free(&s->prompt);
	plan_parse_result_free(&s->parse);
	json_object_put(s->out);
	json_object_put(s->offered);
	free(s->text);
	free(s->function);
	memset(s, 0, sizeof(*s));
}

/* Serialize with json-c and read back through jsonb_in. */
static Jsonb *
jsonc_to_jsonb(json_object *obj)
{
	const char *text = json_object_to_json_string_ext(obj,
													  JSON_C_TO_STRING_PLAIN |
													  JSON_C_TO_STRING_NOSLASHESCAPE);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* inputs as JSON: [{module, table, title, content}, ...]; pointers into s. */
static PromptInput *
inputs_from_json(Scratch *s, int *n)
{
	PromptInput *in;
	size_t		count;

	*n = 0;
	if (s->inputs == NULL)
		return NULL;
	if (!json_object_is_type(s->inputs, json_type_array))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inputs must be a JSON array"),
				 errhint("Pass [{\"module\": ..., \"table\": ..., \"title\": ..., \"content\": ...}].")));
	count = json_object_array_length(s->inputs);
	in = palloc0(sizeof(PromptInput) * (count + 1));
	for (size_t i = 0; i < count; i++)
	{
		json_object *e = json_object_array_get_idx(s->inputs, i);
		json_object *v;

		if (!json_object_is_type(e, json_type_object))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("inputs[%zu] must be a JSON object", i)));
		if (json_object_object_get_ex(e, "module", &v) && v)
			in[i].module = json_object_get_string(v);
		if (json_object_object_get_ex(e, "table", &v) && v)
			in[i].table = json_object_get_string(v);
		if (json_object_object_get_ex(e, "title", &v) && v)
			in[i].title = json_object_get_string(v);
		if (json_object_object_get_ex(e, "content", &v) && v)
			in[i].content = json_object_get_string(v);
	}
	*n = (int) count;
	return in;
}

/* Build the prompt; resolved (List of ResolvedInput *) or inputs_json. */
static PlannerPrompt
render(Jsonb *mission, Jsonb *agent, List *resolved, Jsonb *inputs_json,
	   bool tools_protocol, Scratch *s)
{
	int			n_tools;
	CatalogTool *catalog = load_catalog(&n_tools);
	PromptTool *tools = palloc0(sizeof(PromptTool) * (n_tools + 1));
	PromptInput *in = NULL;
	int			n_in = 0;
	PlannerPrompt result;
	ListCell   *lc;

	s->mission = jsonb_to_jsonc(mission, "mission");
	if (agent != NULL)
		s->agent = jsonb_to_jsonc(agent, "agent");
	if (inputs_json != NULL)
	{
		s->inputs = jsonb_to_jsonc(inputs_json, "inputs");
		in = inputs_from_json(s, &n_in);
	}
	else if (resolved != NIL)
	{
		in = palloc0(sizeof(PromptInput) * list_length(resolved));
		foreach(lc, resolved)
		{
			ResolvedInput *r = (ResolvedInput *) lfirst(lc);

			in[n_in].module = r->module;
			in[n_in].table = r->table;
			in[n_in].title = r->title;
			in[n_in].content = r->content;
			n_in++;
		}
	}

	s->params = palloc0(sizeof(json_object *) * (n_tools + 1));
	for (int i = 0; i < n_tools; i++)
	{
		/*
		 * validated on write (50_planner.sql); unreadable shows no params.
		 * The tools protocol's prompt lists none: the functions carry them.
		 * In a tick the parsed lists are the tick's (not s's to free).
		 */
		if (tools_protocol)
			tools[i].parameters = NULL;
		else if (catalog == tick_catalog && tick_catalog != NULL)
			tools[i].parameters = tick_catalog_params()[i];
		else
		{
			s->params[i] = json_tokener_parse(catalog[i].parameters);
			s->n_params = i + 1;
			tools[i].parameters = s->params[i];
		}
		tools[i].name = catalog[i].name;
		tools[i].module = catalog[i].module;
		tools[i].description = catalog[i].description;
	}

	if (!(tools_protocol ?
		  prompt_build_tools(s->mission, s->agent, in, n_in, tools, n_tools, &s->prompt) :
		  prompt_build(s->mission, s->agent, in, n_in, tools, n_tools, &s->prompt)))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Building the planner prompt failed.")));
	result.system = pstrdup(s->prompt.system);
	result.user = pstrdup(s->prompt.user);
	result.tools = NULL;
	result.tools_reserve = NULL;
	result.tools_why = NULL;
	if (tools_protocol)
		result.tools = offered_functions(catalog, n_tools, s, in, n_in, &result);
	return result;
}

/* One catalog row as a tools-protocol function (JSON text), built once. */
static const char *
catalog_function(CatalogTool *tool, Scratch *s)
{
	char		err[TOOL_SCHEMA_ERROR_LEN];

	if (tool->function != NULL)
		return tool->function;
	s->function = tool_schema_function_text(tool->name, tool->description,
											tool->parameters, strlen(tool->parameters),
											err, sizeof(err));
	if (s->function == NULL)
	{
		/* Validated on write; a row from before the check is left out. */
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tool \"%s\" is not offered to the planner: %s", tool->name, err),
				 errhint("Correct the row in mana_ai.tools.")));
		tool->function = MemoryContextStrdup(tick_catalog_cxt ? tick_catalog_cxt :
											 CurrentMemoryContext, "");
		return tool->function;
	}
	tool->function = MemoryContextStrdup(tick_catalog_cxt ? tick_catalog_cxt :
										 CurrentMemoryContext, s->function);
	free(s->function);
	s->function = NULL;
	return tool->function;
}

/*
 * The request's "tools": what planner_offer.c chooses for this mission
 * among the catalog rows the agent's policy (s->agent) allows; the rest
 * the policy allows is in result->tools_reserve for more_tools.
 */
static ToolOfferTool *
catalog_verdicts(CatalogTool *catalog, int n_tools, Scratch *s)
{
	ToolOfferTool *cat = palloc0(sizeof(ToolOfferTool) * (n_tools + 1));

	for (int i = 0; i < n_tools; i++)
	{
		cat[i].name = catalog[i].name;
		cat[i].module = catalog[i].module;
		cat[i].function = catalog_function(&catalog[i], s);
		cat[i].allowed = !policy_denies(s->agent, catalog[i].name, catalog[i].module);
	}
	return cat;
}

static char *
offered_functions(CatalogTool *catalog, int n_tools, Scratch *s,
				  const PromptInput *in, int n_in, PlannerPrompt *result)
{
	ToolOfferTool *cat = catalog_verdicts(catalog, n_tools, s);
	const char **modules = palloc0(sizeof(char *) * (n_in + 1));
	char	   *tools;

	for (int k = 0; k < n_in; k++)
		modules[k] = in[k].module;
	tools = mana_ai_offer_tools(cat, n_tools, s->mission, modules, n_in,
								tick_catalog_cxt ? tick_catalog_cxt : CurrentMemoryContext,
								tick_catalog_cxt != NULL, &result->tools_reserve,
								want_why ? &result->tools_why : NULL);
	pfree(cat);
	pfree(modules);
	return tools;
}

PlannerPrompt
mana_ai_render_prompt(Jsonb *mission, Jsonb *agent, List *inputs, bool tools_protocol)
{
	Scratch    *s = palloc0(sizeof(Scratch));
	PlannerPrompt *result = palloc(sizeof(PlannerPrompt));

	PG_TRY();
	{
		*result = render(mission, agent, inputs, NULL, tools_protocol, s);
	}
	PG_FINALLY();
	{
		scratch_free(s);
	}
	PG_END_TRY();
	return *result;
}

PlannerPrompt
mana_ai_render_prompt_why(Jsonb *mission, Jsonb *agent, List *inputs, bool tools_protocol)
{
	PlannerPrompt result;

	want_why = true;
	PG_TRY();
	{
		result = mana_ai_render_prompt(mission, agent, inputs, tools_protocol);
	}
	PG_FINALLY();
	{
		want_why = false;
	}
	PG_END_TRY();
	return result;
}

/*
 * Parse against the catalog with each tool's policy decision; checked:
 * each step also as a tool call of the agent's functions, with
 * mana_ai.injection_policy (plan_parse_checked).
 */
static Jsonb *
parse_against_catalog(const char *answer, size_t len, Jsonb *agent, bool checked,
					  Scratch *s)
{
	int			n_tools;
	CatalogTool *catalog = load_catalog(&n_tools);
	PlanTool   *tools = palloc0(sizeof(PlanTool) * (n_tools + 1));

	if (agent != NULL)
		s->agent = jsonb_to_jsonc(agent, "agent");
	for (int i = 0; i < n_tools; i++)
	{
		tools[i].name = catalog[i].name;
		tools[i].denied = policy_denies(s->agent, catalog[i].name,
										catalog[i].module);
	}
	if (checked)
	{
		/* every function the policy allows: more_tools reaches them all */
		PlanParseCheck check;

		check.offered = every_allowed_offer(catalog_verdicts(catalog, n_tools, s), n_tools, s);
		check.injection = (InjectionPolicy) mana_ai_injection_policy;
		plan_parse_checked(answer, len, tools, n_tools, &check, &s->parse);
	}
	else
		plan_parse(answer, len, tools, n_tools, &s->parse);
	s->text = plan_parse_result_json(&s->parse);
	if (s->text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s->text)));
}

static Jsonb *
parse_plan(const char *answer, size_t len, Jsonb *agent, bool checked)
{
	Scratch    *s = palloc0(sizeof(Scratch));
	Jsonb	   *volatile result = NULL;

	PG_TRY();
	{
		result = parse_against_catalog(answer, len, agent, checked, s);
	}
	PG_FINALLY();
	{
		scratch_free(s);
	}
	PG_END_TRY();
	return result;
}

Jsonb *
mana_ai_parse_plan_len(const char *answer, size_t len, Jsonb *agent)
{
	return parse_plan(answer, len, agent, false);
}

Jsonb *
mana_ai_parse_plan_checked(const char *answer, Jsonb *agent)
{
	return parse_plan(answer, answer ? strlen(answer) : 0, agent, true);
}

Jsonb *
mana_ai_parse_plan_for(const char *answer, Jsonb *agent)
{
	return mana_ai_parse_plan_len(answer, answer ? strlen(answer) : 0, agent);
}

PG_FUNCTION_INFO_V1(mana_ai_render_prompt_sql);
Datum
mana_ai_render_prompt_sql(PG_FUNCTION_ARGS)
{
	Scratch    *s;
	PlannerPrompt prompt;
	Jsonb	   *volatile result = NULL;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = palloc0(sizeof(Scratch));
	PG_TRY();
	{
		prompt = render(PG_GETARG_JSONB_P(0),
						PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
						NIL,
						PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), false, s);
		s->out = json_object_new_object();
		json_object_object_add(s->out, "system", json_object_new_string(prompt.system));
		json_object_object_add(s->out, "user", json_object_new_string(prompt.user));
		result = jsonc_to_jsonb(s->out);
	}
	PG_FINALLY();
	{
		scratch_free(s);
	}
	PG_END_TRY();
	PG_RETURN_JSONB_P(result);
}
