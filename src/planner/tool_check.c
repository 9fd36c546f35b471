/*
 * tool_check.c: mana_ai.tool_parameters_error(parameters), the write-time
 * check of a mana_ai.tools row's parameter list.
 *
 * Owns nothing but handing the jsonb to src/core/tool_schema.c, so the
 * catalog is refused on write by exactly the rule set the tools protocol
 * uses to turn it into a JSON Schema (the tools_validate trigger in
 * sql/install/50_planner.sql calls it and words the refusal).  Must stay
 * a pure function of its argument: no table, no clock.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

/* json-c's json_object type clashes with fmgrprotos.h (see planner.c). */
#define json_object jsonc_object
#include "core/tool_schema.h"

PG_FUNCTION_INFO_V1(mana_ai_tool_parameters_error);
Datum
mana_ai_tool_parameters_error(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	char	   *text = JsonbToCString(NULL, &params->root, VARSIZE(params));
	char		err[TOOL_SCHEMA_ERROR_LEN];

	if (tool_schema_check_text(text, strlen(text), err, sizeof(err)))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(err));
}
