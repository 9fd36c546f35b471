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
 * Why jsonb could not store the tree as json-c holds it ("nul-character",
 * "number-out-of-range", "nesting-too-deep" past max_depth), or NULL when
 * it converts faithfully.
 */
extern const char *json_strict_unstorable(json_object *obj, int max_depth);

/* True for NULL, "" and text of white space only. */
extern bool text_is_blank(const char *s);

#endif
