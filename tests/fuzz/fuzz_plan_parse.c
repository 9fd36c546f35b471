/*
 * fuzz_plan_parse.c: libFuzzer target for the strict planner parser
 * (SPEC 7.4).  Any byte string is a possible LLM answer; the parser must
 * never crash, read out of bounds or leak, and an accepted plan must
 * hold the invariants the PG side relies on (every step has a known,
 * allowed toolName, a non-empty rationale and object params).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan_parse.h"

static const PlanTool tools[] = {
	{"create_task", false},
	{"complete_task", false},
	{"create_event", true},
};

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PlanParseResult res;
	char	   *text;

	/* Not NUL-terminated on purpose: the parser must respect size. */
	plan_parse((const char *) data, size, tools, 3, &res);
	if (res.ok)
	{
		json_object *steps = NULL;

		if (!json_object_object_get_ex(res.plan, "steps", &steps))
			abort();
		for (size_t i = 0; i < json_object_array_length(steps); i++)
		{
			json_object *step = json_object_array_get_idx(steps, i);
			json_object *v = NULL;

			if (!json_object_object_get_ex(step, "toolName", &v) ||
				(strcmp(json_object_get_string(v), "create_task") != 0 &&
				 strcmp(json_object_get_string(v), "complete_task") != 0))
				abort();
			if (!json_object_object_get_ex(step, "rationale", &v) ||
				json_object_get_string_len(v) == 0)
				abort();
			if (!json_object_object_get_ex(step, "params", &v) ||
				!json_object_is_type(v, json_type_object))
				abort();
		}
	}
	else if (res.reason[0] == '\0' || res.plan != NULL)
		abort();
	text = plan_parse_result_json(&res);
	if (text == NULL)
		abort();
	free(text);
	plan_parse_result_free(&res);
	return 0;
}
