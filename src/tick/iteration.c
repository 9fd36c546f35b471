/*
 * iteration.c: mana_ai.build_iteration(), a server iteration as JSON
 * (SPEC 1.3).
 *
 * Owns the iteration's shape: {id, startedAt, finishedAt, source, plan,
 * summary, overallStatus} from a parsed plan ({summary, steps}), each
 * step {id '<iterationId>-<n>', summary, intent {kind 'toolCall',
 * toolName, params}, status 'planned', rationale}; or, given an error
 * ({name, message, phase}), a failed iteration with errorDetails.  In C
 * because the tick calls it for every mission it writes back, and as a
 * SQL function it was parsed and planned anew on every call;
 * tests/pgtap/build_iteration.sql pins its output.  Must stay a pure
 * function of its arguments (it is IMMUTABLE): no table, no clock.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "shared/instants.h"
#include "shared/jsonb_members.h"

/* jsonb_array_elements' complaint about what is not an array. */
static void
require_array(JsonbContainer *c)
{
	if (JsonContainerIsArray(c) && !JsonContainerIsScalar(c))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cannot extract elements from %s",
					JsonContainerIsObject(c) ? "an object" : "a scalar")));
}

/* One planned step from the parsed plan's step n (sc NULL: not an object). */
static void
push_step(JsonbParseState **state, const char *iteration_id, int n, JsonbContainer *sc)
{
	JsonbValue *params = NULL;
	char	   *summary = jb_field_text(sc, "summary");

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	jb_push_text_member(state, "id", iteration_id ? psprintf("%s-%d", iteration_id, n) : NULL);
	jb_push_text_member(state, "summary", summary ? summary : "");
	jb_push_text(state, WJB_KEY, "intent");
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	jb_push_text_member(state, "kind", "toolCall");
	jb_push_text_member(state, "toolName", jb_field_text(sc, "toolName"));
	jb_push_text(state, WJB_KEY, "params");
	if (sc != NULL)
		params = getKeyJsonValueFromContainer(sc, "params", 6, NULL);
	if (params != NULL)
		pushJsonbValue(state, WJB_VALUE, params);
	else
	{
		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
	jb_push_text_member(state, "status", "planned");
	jb_push_text_member(state, "rationale", jb_field_text(sc, "rationale"));
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/* "plan": [steps...]; answers the number of steps. */
static int
push_plan(JsonbParseState **state, const char *iteration_id, Jsonb *plan)
{
	JsonbValue *steps = NULL;
	int			nsteps = 0;

	if (plan != NULL && JB_ROOT_IS_OBJECT(plan))
		steps = getKeyJsonValueFromContainer(&plan->root, "steps", 5, NULL);
	if (steps != NULL && steps->type != jbvBinary)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot extract elements from a scalar")));
	jb_push_text(state, WJB_KEY, "plan");
	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	if (steps != NULL)
	{
		JsonbIterator *it;
		JsonbIteratorToken tok;
		JsonbValue	step;

		require_array(steps->val.binary.data);
		it = JsonbIteratorInit(steps->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &step, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			push_step(state, iteration_id, nsteps,
					  (step.type == jbvBinary && JsonContainerIsObject(step.val.binary.data)) ?
					  step.val.binary.data : NULL);
			nsteps++;
		}
	}
	pushJsonbValue(state, WJB_END_ARRAY, NULL);
	return nsteps;
}

/*
 * mana_ai.build_iteration(iteration_id, started_at, finished_at, plan, error)
 * → jsonb
 */
PG_FUNCTION_INFO_V1(mana_ai_build_iteration);
Datum
mana_ai_build_iteration(PG_FUNCTION_ARGS)
{
	char	   *iteration_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *started = PG_ARGISNULL(1) ? NULL : mana_ai_iso_utc(PG_GETARG_TIMESTAMPTZ(1), 3);
	char	   *finished = PG_ARGISNULL(2) ? NULL : mana_ai_iso_utc(PG_GETARG_TIMESTAMPTZ(2), 3);
	Jsonb	   *plan = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	Jsonb	   *error = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	JsonbParseState *state = NULL;
	char	   *summary;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	jb_push_text_member(&state, "id", iteration_id);
	jb_push_text_member(&state, "startedAt", started);
	jb_push_text_member(&state, "finishedAt", finished);
	jb_push_text_member(&state, "source", "server");

	if (error != NULL)
	{
		JsonbValue	details;

		jb_push_text(&state, WJB_KEY, "plan");
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		pushJsonbValue(&state, WJB_END_ARRAY, NULL);
		summary = jb_field_text(&error->root, "message");
		jb_push_text_member(&state, "summary", summary ? summary : "");
		jb_push_text_member(&state, "overallStatus", "failed");
		details.type = jbvBinary;
		details.val.binary.data = &error->root;
		details.val.binary.len = VARSIZE(error) - VARHDRSZ;
		jb_push_value_member(&state, "errorDetails", &details);
	}
	else
	{
		int			nsteps = push_plan(&state, iteration_id, plan);

		summary = plan ? jb_field_text(&plan->root, "summary") : NULL;
		jb_push_text_member(&state, "summary", summary ? summary : "");
		jb_push_text_member(&state, "overallStatus", nsteps > 0 ? "awaiting-review" : "approved");
	}
	PG_RETURN_JSONB_P(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}
