/*
 * planner_prompt.c: mana_ai.build_prompt(user_id, mission_id), the
 * prompt the planner would send for a stored mission (SPEC 7.3).
 *
 * Owns the path from a mission snapshot to what the planner sends in the
 * active protocol (mana_ai.planner_protocol), exactly as a tick builds
 * it: {protocol, system, user} and, for tools, the functions offered
 * (tools), why each catalog tool is or is not offered from the first
 * round (offered: core, input, used, discovery, denied) and what a call
 * of more_tools would add per module (more_tools); its agent's snapshot, the grant
 * unwrapped and the inputs resolved (resolvers.c, one decrypt_audit row
 * per encrypted input), the prompt rendered (planner.c).  Must never call
 * the LLM or write anything but the audit rows the resolvers write.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "crypto/resolvers.h"
#include "ops/guc.h"
#include "planner/planner.h"
#include "projection/snapshot_load.h"
#include "shared/jsonb_members.h"

PG_FUNCTION_INFO_V1(mana_ai_build_prompt);
Datum
mana_ai_build_prompt(PG_FUNCTION_ARGS)
{
	char	   *user_id;
	char	   *mission_id;
	Jsonb	   *mission = mana_ai_load_mission_args(fcinfo, &user_id, &mission_id);
	Jsonb	   *agent = NULL;
	char	   *agent_id;
	List	   *inputs;
	PlannerPrompt prompt;
	StringInfoData buf;

	if (mission == NULL)
		ereport(ERROR, (errcode(ERRCODE_NO_DATA_FOUND),
						errmsg("mission \"%s\" of user \"%s\" has no snapshot", mission_id, user_id),
						errhint("Run SELECT * FROM mana_ai.refresh_snapshots(); first.")));
	agent_id = jb_member_text(mission, "agentId");
	if (agent_id != NULL)
		agent = mana_ai_load_agent(user_id, agent_id);

	inputs = mana_ai_resolve_mission_inputs(user_id, mission_id, mission, NULL, false);
	prompt = mana_ai_render_prompt_why(mission, agent, inputs,
								   mana_ai_planner_protocol == MANA_AI_PROTOCOL_TOOLS);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"protocol\": \"%s\", \"system\": ",
					 prompt.tools ? "tools" : "json");
	escape_json(&buf, prompt.system);
	appendStringInfoString(&buf, ", \"user\": ");
	escape_json(&buf, prompt.user);
	if (prompt.tools)
	{
		/* json-c's text of the functions array: valid JSON as it is */
		appendStringInfoString(&buf, ", \"tools\": ");
		appendStringInfoString(&buf, prompt.tools);
		/* what is offered from round 1 and why; the rest through more_tools */
		appendStringInfoString(&buf, ", \"offered\": ");
		appendStringInfoString(&buf, prompt.tools_why ? prompt.tools_why : "[]");
		appendStringInfoString(&buf, ", \"more_tools\": ");
		appendStringInfoString(&buf, prompt.tools_reserve ? prompt.tools_reserve : "{}");
	}
	appendStringInfoChar(&buf, '}');
	PG_RETURN_JSONB_P(jb_from_cstring(buf.data));
}
