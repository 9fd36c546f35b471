/*
 * policy.h: an agent's tool policy (SPEC 7.2), Postgres-free.
 *
 * Owns resolving policy.tools[name] -> policy.defaultsByModule[module] ->
 * policy.defaultForAi to one decision.  Fails closed: a policy it cannot
 * read (wrong types, an unknown decision word) denies rather than allows.
 */
#ifndef MANA_AI_POLICY_H
#define MANA_AI_POLICY_H

#include <stdbool.h>

#include <json-c/json.h>

typedef enum PolicyDecision
{
	POLICY_AUTO,				/* also: nothing set at any level */
	POLICY_PROPOSE,
	POLICY_DENY
} PolicyDecision;

/*
 * The decision for one tool.  agent may be NULL (no agent: everything is
 * allowed); its "policy" key absent or null likewise allows everything.
 */
extern PolicyDecision policy_resolve(json_object *agent, const char *tool,
									 const char *module);

/* policy_resolve(...) == POLICY_DENY: the tool is hidden from the planner. */
extern bool policy_denies(json_object *agent, const char *tool,
						  const char *module);

/* "auto", "propose", "deny" */
extern const char *policy_decision_name(PolicyDecision d);

#endif
