/*
 * plan_parse_sql.c: the SQL face of the strict plan parser,
 * mana_ai.parse_plan(text) and mana_ai.parse_plan_for_agent(text, jsonb)
 * (SPEC 7.4).  Owns only the argument handling: an answer over the cap
 * is refused from its stored size before it is detoasted.  The parsing
 * is planner.c's (mana_ai_parse_plan_len); this file must never judge a
 * plan itself.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "fmgr.h"
#include "utils/jsonb.h"

#include "core/plan_parse.h"
#include "planner/planner.h"

/*
 * An answer over the cap is refused from its stored size, before it is
 * detoasted: a 10 MB argument costs nothing.
 */
static Jsonb *
parse_text_arg(FunctionCallInfo fcinfo, Jsonb *agent)
{
	Size		raw = toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ;
	text	   *answer;

	if (raw > PLAN_PARSE_MAX_ANSWER)
		return mana_ai_parse_plan_len(NULL, raw, agent);
	answer = PG_GETARG_TEXT_PP(0);
	return mana_ai_parse_plan_len(VARDATA_ANY(answer), VARSIZE_ANY_EXHDR(answer), agent);
}

PG_FUNCTION_INFO_V1(mana_ai_parse_plan);
Datum
mana_ai_parse_plan(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(parse_text_arg(fcinfo, NULL));
}

PG_FUNCTION_INFO_V1(mana_ai_parse_plan_for_agent);
Datum
mana_ai_parse_plan_for_agent(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(parse_text_arg(fcinfo,
									 PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1)));
}
