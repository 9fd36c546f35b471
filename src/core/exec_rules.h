/*
 * exec_rules.h: the web app's executor contract (SPEC 11.3) re-implemented
 * in C, Postgres-free.
 *
 * The web app executes a server iteration's planned steps at once, with
 * no approval step, and fails a step on the first of these rules:
 *   1. unknown tool name;
 *   2. a required parameter absent or null;
 *   3. a number parameter whose value, converted as JavaScript's Number()
 *      does, is NaN;
 *   4. a boolean parameter (never fails: anything but a JSON boolean
 *      becomes true only for the string "true");
 *   5. a parameter with an enum whose value, as a JavaScript String(),
 *      is not one of the enum's values;
 *   6. the agent's policy for the tool is deny.
 * Owns those rules against the offered functions (tool_schema.h entries,
 * the one representation of the catalog both protocols use) so every step
 * mana_ai writes can be checked against what the app will do with it.
 * Never includes a PostgreSQL header, never parses JSON by hand.
 */
#ifndef MANA_AI_EXEC_RULES_H
#define MANA_AI_EXEC_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#define EXEC_RULES_ERROR_LEN 256

typedef struct ExecVerdict
{
	bool		ok;
	int			rule;			/* !ok: 1..6 as above */
	char		code[32];		/* !ok: unknown-tool, missing-argument,
								 * not-a-number, not-in-enum, tool-denied */
	char		error[EXEC_RULES_ERROR_LEN];
} ExecVerdict;

/*
 * JavaScript's Number(v) for a JSON value; false when the result is NaN.
 * null is 0, booleans 0/1, strings by StringToNumber (trimmed, "" is 0,
 * 0x/0o/0b prefixes, Infinity), arrays through their String() form,
 * objects NaN.  *out may be NULL.
 */
extern bool exec_js_number(json_object *v, double *out);

/* JavaScript's Number() of a string of len bytes (need not end in NUL). */
extern bool exec_js_string_number(const char *s, size_t len, double *out);

/* JavaScript's Boolean coercion of the executor: true only for true / "true". */
extern bool exec_js_boolean(json_object *v);

/*
 * JavaScript's String(v) into buf (cut to buflen - 1 bytes): numbers as
 * Number::toString, arrays joined by ",", objects "[object Object]".
 */
extern void exec_js_string(json_object *v, char *buf, size_t buflen);

/* The function entry named tool in offered (a tools array), or NULL. */
extern json_object *exec_find_function(json_object *offered, const char *tool);

/*
 * Judge one step (tool name, params object or NULL) as the executor
 * would.  denied: the agent's policy for the tool is deny.  Fills *v;
 * returns v->ok.
 */
extern bool exec_check_step(json_object *offered, const char *tool,
							json_object *params, bool denied, ExecVerdict *v);

#endif
