/*
 * tool_schema.h: a mana_ai.tools parameter list as an OpenAI function
 * (JSON Schema), Postgres-free.
 *
 * Owns the mapping of one catalog row
 *   name, description, parameters [{name, type, required?, description?, enum?}]
 * to the entry of the request's "tools" array
 *   {type:"function", function:{name, description, parameters:
 *     {type:"object", properties:{...}, required:[...], additionalProperties:false}}}
 * with the extra required string argument "rationale" appended, and the
 * refusal (with a clear error text) of a list that cannot become such a
 * schema; the server uses the same check to validate mana_ai.tools on
 * write.  Never accepts a list it cannot map exactly, never parses JSON
 * by hand, never includes a PostgreSQL header.
 */
#ifndef MANA_AI_TOOL_SCHEMA_H
#define MANA_AI_TOOL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* The argument every function gets; it is taken out of params again. */
#define TOOL_RATIONALE_ARG "rationale"
/* Limits on a catalog row (the product's largest tool has 10 parameters). */
#define TOOL_SCHEMA_MAX_PARAMS 64
#define TOOL_SCHEMA_MAX_ENUM 100
/* OpenAI: function names are ^[a-zA-Z0-9_-]{1,64}$. */
#define TOOL_SCHEMA_MAX_NAME 64
/* Room for any error text below. */
#define TOOL_SCHEMA_ERROR_LEN 256

/*
 * The JSON Schema object for a parameter list (a json-c array).  New
 * reference, or NULL with the reason in err.
 */
extern json_object *tool_schema_parameters(json_object *params,
										   char *err, size_t errlen);

/*
 * The whole {type:"function", function:{...}} entry.  description may be
 * NULL or blank (then omitted).  New reference, or NULL with err.
 */
extern json_object *tool_schema_function(const char *name,
										 const char *description,
										 json_object *params,
										 char *err, size_t errlen);

/*
 * The write-time check on JSON text (the server passes a jsonb's text):
 * true when params_json is a parameter list tool_schema_parameters maps.
 */
extern bool tool_schema_check_text(const char *params_json, size_t len,
								   char *err, size_t errlen);

/*
 * tool_schema_function on JSON text; the entry as malloc'd compact JSON
 * text, or NULL with err.
 */
extern char *tool_schema_function_text(const char *name,
									   const char *description,
									   const char *params_json, size_t len,
									   char *err, size_t errlen);

#endif
