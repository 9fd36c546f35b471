/*
 * json_strict.h: the one json-c entry point the core parsers share.
 * Kept out of grant.h: json-c's json_object type clashes with
 * PostgreSQL's json_object() function in backend code.
 */
#ifndef MANA_AI_JSON_STRICT_H
#define MANA_AI_JSON_STRICT_H

#include <stddef.h>

#include <json-c/json.h>

/*
 * json-c parse that accepts exactly one JSON value spanning all len bytes
 * (no trailing garbage, no embedded NUL).  NULL otherwise.
 */
extern json_object *mana_json_parse_strict(const char *text, size_t len);

#endif
