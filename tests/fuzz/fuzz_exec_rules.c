/*
 * fuzz_exec_rules.c: libFuzzer target for the web app executor's rules
 * (exec_rules.h), the injection scan (injection.h) and the json
 * protocol's checked parse (plan_parse_checked).  Any byte string is
 * tried as a JavaScript Number() argument, as text to scan, as a params
 * object and as a planner answer; nothing may crash, read out of bounds
 * or leak, and a step either protocol accepts must pass the executor.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec_rules.h"
#include "injection.h"
#include "plan_parse.h"
#include "tool_calls.h"
#include "tool_json.h"
#include "tool_schema.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_object *offered;

static void
setup(void)
{
	static const char params[] =
		"[{\"name\":\"title\",\"type\":\"string\",\"required\":true},"
		"{\"name\":\"amount\",\"type\":\"number\"},"
		"{\"name\":\"done\",\"type\":\"boolean\"},"
		"{\"name\":\"priority\",\"type\":\"string\",\"enum\":[\"low\",\"high\"]}]";
	char		err[TOOL_SCHEMA_ERROR_LEN];
	json_object *p = json_tokener_parse(params);

	offered = json_object_new_array();
	json_object_array_add(offered, tool_schema_function("create_task", "d", p, err, sizeof(err)));
	json_object_put(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	double		d;
	json_object *args;
	PlanParseResult res;
	PlanParseCheck check;
	PlanTool	tool = {"create_task", false};
	ExecVerdict v;
	char		buf[256];

	if (offered == NULL)
		setup();
	(void) exec_js_string_number((const char *) data, size, &d);
	(void) injection_marker_text((const char *) data, size);

	/* as a params object: a call the schema accepts passes the executor */
	args = tool_json_parse((const char *) data, size, NULL);
	if (args != NULL)
	{
		ToolCall	call;

		(void) exec_js_number(args, &d);
		exec_js_string(args, buf, sizeof(buf));
		(void) injection_marker(args);
		(void) exec_check_step(offered, "create_task", args, false, &v);
		if (tool_call_judge(offered, "create_task", args, &call) &&
			!exec_check_step(offered, "create_task", call.params, false, &v))
			abort();
		tool_call_clear(&call);
		json_object_put(args);
	}

	/* as an answer: every step kept passes the executor */
	check.offered = offered;
	check.injection = INJECTION_REFUSE;
	if (plan_parse_checked((const char *) data, size, &tool, 1, &check, &res))
	{
		json_object *steps = json_object_object_get(res.plan, "steps");

		for (size_t i = 0; i < json_object_array_length(steps); i++)
		{
			json_object *params = json_object_object_get(json_object_array_get_idx(steps, i), "params");

			if (!exec_check_step(offered, "create_task", params, false, &v) ||
				injection_marker(params) != NULL)
				abort();
		}
	}
	else if (res.reason[0] == '\0')
		abort();
	plan_parse_result_free(&res);
	return 0;
}
