/*
 * json_strict.c: the one json-c entry point the core parsers share.
 *
 * Owns how untrusted JSON text (grants, derivations) becomes a json-c
 * tree: exactly one value over all the bytes, a bounded nesting depth,
 * strict syntax.  Must never accept trailing garbage or an embedded NUL,
 * and never allocate anything the caller does not free with
 * json_object_put.
 */
#include "json_strict.h"

#include <stdint.h>
#include <string.h>

json_object *
mana_json_parse_strict(const char *text, size_t len)
{
	json_tokener *tok;
	json_object *obj;

	if (text == NULL || len > INT32_MAX || memchr(text, '\0', len) != NULL)
		return NULL;
	tok = json_tokener_new_ex(64);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int) len);
	if (obj == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		obj = json_tokener_parse_ex(tok, "", 1);	/* flush a bare number */
	if (obj != NULL &&
		(json_tokener_get_error(tok) != json_tokener_success ||
		 json_tokener_get_parse_end(tok) < len))
	{
		/* Allow trailing whitespace only. */
		size_t		i;

		for (i = json_tokener_get_parse_end(tok); i < len; i++)
			if (!strchr(" \t\r\n", text[i]))
			{
				json_object_put(obj);
				obj = NULL;
				break;
			}
	}
	json_tokener_free(tok);
	return obj;
}
