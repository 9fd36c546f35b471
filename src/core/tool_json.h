/*
 * tool_json.h: json-c helpers shared by the tools protocol (tool_schema,
 * tool_calls, tool_messages), Postgres-free.
 *
 * Owns the one strict way the tools protocol turns untrusted text into
 * json-c objects (depth cap, strict mode, UTF-8 checked, nothing but
 * whitespace after the value), the check that a tree can become a jsonb
 * (no NUL, finite numbers, no saturated integers), and serialising.
 * Never parses JSON by hand and never trusts a length it was not given.
 */
#ifndef MANA_AI_TOOL_JSON_H
#define MANA_AI_TOOL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* json-c tokener depth for answers and arguments. */
#define TOOL_JSON_MAX_DEPTH 64

/*
 * Parse text[0..len) as exactly one JSON value.  NULL on failure, with a
 * short reason ("invalid-json", "invalid-utf8", "nesting-too-deep",
 * "nul-character" for any \u0000 escape) in *code when code is not NULL.
 */
extern json_object *tool_json_parse(const char *text, size_t len,
									const char **code);

/*
 * NULL when the tree can be stored as jsonb as json-c holds it, else the
 * reason: "nul-character" (a string or key with \u0000),
 * "number-out-of-range" (NaN, Infinity, 1e400, an integer json-c
 * saturated) or "nesting-too-deep".
 */
extern const char *tool_json_unstorable(json_object *obj);

/* Compact JSON text (no slash escaping), malloc'd; NULL when out of memory. */
extern char *tool_json_text(json_object *obj);

/* The string value of obj[key] when it is a string, else NULL. */
extern const char *tool_json_str(json_object *obj, const char *key);

/*
 * At most buflen - 1 bytes of s into buf, cut back to a whole UTF-8
 * sequence (for quoting untrusted names in error texts); returns buf.
 */
extern const char *tool_json_clip(char *buf, size_t buflen, const char *s);

/*
 * snprintf into buf, then cut back to a whole UTF-8 sequence if the text
 * was truncated inside one.
 */
extern void tool_json_setf(char *buf, size_t len, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));

#endif
