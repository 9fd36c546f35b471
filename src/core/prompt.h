/*
 * prompt.h: the planner prompt of SPEC 7.3, Postgres-free.
 *
 * Owns the German system and user messages sent to the LLM (json and
 * tools protocol), built from
 * json-c objects (mission and agent records) and plain C structs (inputs,
 * tools).  Deterministic: the same arguments give the same bytes.  Never
 * injects a ciphertext value (enc:1:...), never reads a clock.
 */
#ifndef MANA_AI_PROMPT_H
#define MANA_AI_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* A resolved input (SPEC 6), already plaintext and truncated. */
typedef struct PromptInput
{
	const char *module;
	const char *table;
	const char *title;
	const char *content;
} PromptInput;

/* A catalog row of mana_ai.tools. */
typedef struct PromptTool
{
	const char *name;
	const char *module;
	const char *description;
	json_object *parameters;	/* array of {name, type, required, description, enum?} */
} PromptTool;

typedef struct PromptResult
{
	char	   *system;			/* malloc'd */
	char	   *user;			/* malloc'd */
} PromptResult;

/* How many earlier iterations the user message shows. */
#define PROMPT_MAX_ITERATIONS 3

/* The marker of an encrypted value (SPEC 5.3); such values are skipped. */
#define PROMPT_CIPHERTEXT_PREFIX "enc:1:"

/*
 * Build both messages.  agent may be NULL (legacy mission: no
 * <agent_context>, all tools); tools the agent's policy denies are left
 * out of the list.  Returns false only when memory runs out.
 */
extern bool prompt_build(json_object *mission, json_object *agent,
						 const PromptInput *inputs, size_t n_inputs,
						 const PromptTool *tools, size_t n_tools,
						 PromptResult *out);

/*
 * The same for the tools protocol: the system message keeps the agent
 * context and the role but leaves out the answer format and the tool
 * list, which the offered functions carry (tools only counts the tools the
 * policy allows, to say so when there are none).
 */
extern bool prompt_build_tools(json_object *mission, json_object *agent,
							   const PromptInput *inputs, size_t n_inputs,
							   const PromptTool *tools, size_t n_tools,
							   PromptResult *out);

extern void prompt_result_free(PromptResult *res);

#endif
