/*
 * json_strict.h: the one json-c entry point the core parsers share.
 * Kept out of grant.h: json-c's json_object type clashes with
 * PostgreSQL's json_object() function in backend code.
 */
#ifndef MANA_AI_JSON_STRICT_H
#define MANA_AI_JSON_STRICT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/*
 * json-c parse that accepts exactly one JSON value spanning all len bytes
 * (no trailing garbage, no embedded NUL).  NULL otherwise.
 */
extern json_object *mana_json_parse_strict(const char *text, size_t len);

/*
 * RFC 8259 syntax and well-formed UTF-8 of the one JSON value at the start
 * of text (after white space; what follows it is the caller's to judge,
 * from *end, the offset just past the value, set when end is not NULL):
 * json_tokener_success, json_tokener_continue when the text ends inside
 * the value, json_tokener_error_parse_utf8_string for bad UTF-8, another
 * json_tokener_error otherwise.  Deeper than max_depth (the tokener's
 * depth) it stops checking and says success: json-c refuses the depth.
 * Run it before json-c, with the flags of
 * json_strict_flags(), and every json-c version refuses the same inputs.
 */
extern enum json_tokener_error json_strict_check(const char *text, size_t len,
												int max_depth, size_t *end);

/*
 * The json-c flags of a strict parse: JSON_TOKENER_STRICT |
 * JSON_TOKENER_VALIDATE_UTF8, or JSON_TOKENER_VALIDATE_UTF8 alone where
 * json-c's strict mode refuses non-ASCII strings (0.18).
 */
extern int	json_strict_flags(void);

/* Tests only: use these flags instead of probing json-c (0: probe again). */
extern void json_strict_force_flags(int flags);

/*
 * Why jsonb could not store the tree as json-c holds it ("nul-character",
 * "number-out-of-range", "nesting-too-deep" past max_depth), or NULL when
 * it converts faithfully.
 */
extern const char *json_strict_unstorable(json_object *obj, int max_depth);

/* True for NULL, "" and text of white space only. */
extern bool text_is_blank(const char *s);

#endif
