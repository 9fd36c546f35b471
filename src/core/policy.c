/*
 * policy.c: resolve an agent's tool policy (SPEC 7.2).
 *
 * Owns the three-level lookup and nothing else: it never decides what a
 * decision means beyond deny-hides-the-tool.  The policy comes from the
 * agent's synced record, so every shape is checked; anything unreadable
 * denies (a typo must not widen what an agent may do).
 */
#include "policy.h"

#include <string.h>

typedef enum
{
	LEVEL_UNSET,				/* key absent or null: look one level up */
	LEVEL_SET,
	LEVEL_INVALID				/* present but unreadable: deny */
} LevelState;

static LevelState decision_of(json_object *value, PolicyDecision *d);
static LevelState lookup(json_object *map, const char *key, PolicyDecision *d);

/* Read one decision word. */
static LevelState
decision_of(json_object *value, PolicyDecision *d)
{
	const char *s;

	if (value == NULL)
		return LEVEL_UNSET;
	if (!json_object_is_type(value, json_type_string))
		return LEVEL_INVALID;
	s = json_object_get_string(value);
	if (strcmp(s, "auto") == 0)
		*d = POLICY_AUTO;
	else if (strcmp(s, "propose") == 0)
		*d = POLICY_PROPOSE;
	else if (strcmp(s, "deny") == 0)
		*d = POLICY_DENY;
	else
		return LEVEL_INVALID;
	return LEVEL_SET;
}

/* map[key] where map is an optional object of decisions. */
static LevelState
lookup(json_object *map, const char *key, PolicyDecision *d)
{
	json_object *value = NULL;

	if (map == NULL)
		return LEVEL_UNSET;
	if (!json_object_is_type(map, json_type_object))
		return LEVEL_INVALID;
	if (key == NULL || !json_object_object_get_ex(map, key, &value))
		return LEVEL_UNSET;
	return decision_of(value, d);
}

PolicyDecision
policy_resolve(json_object *agent, const char *tool, const char *module)
{
	json_object *policy = NULL;
	json_object *level = NULL;
	PolicyDecision d = POLICY_AUTO;
	LevelState	st;

	if (agent == NULL || !json_object_is_type(agent, json_type_object))
		return POLICY_AUTO;
	if (!json_object_object_get_ex(agent, "policy", &policy) || policy == NULL)
		return POLICY_AUTO;
	if (!json_object_is_type(policy, json_type_object))
		return POLICY_DENY;

	json_object_object_get_ex(policy, "tools", &level);
	st = lookup(level, tool, &d);
	if (st == LEVEL_UNSET)
	{
		level = NULL;
		json_object_object_get_ex(policy, "defaultsByModule", &level);
		st = lookup(level, module, &d);
	}
	if (st == LEVEL_UNSET)
	{
		level = NULL;
		json_object_object_get_ex(policy, "defaultForAi", &level);
		st = decision_of(level, &d);
	}
	if (st == LEVEL_INVALID)
		return POLICY_DENY;
	return st == LEVEL_SET ? d : POLICY_AUTO;
}

bool
policy_denies(json_object *agent, const char *tool, const char *module)
{
	return policy_resolve(agent, tool, module) == POLICY_DENY;
}

const char *
policy_decision_name(PolicyDecision d)
{
	switch (d)
	{
		case POLICY_AUTO:
			return "auto";
		case POLICY_PROPOSE:
			return "propose";
		case POLICY_DENY:
			return "deny";
	}
	return "deny";
}
