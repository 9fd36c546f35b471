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

#include <ctype.h>
#include <math.h>
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

/*
 * A value jsonb cannot hold as json-c holds it: a string with \u0000, a
 * non-finite number (json-c lets NaN through and keeps 1e400 as inf), or
 * an integer json-c saturated instead of refusing.
 */
static const char *
unstorable_scalar(json_object *obj)
{
	int64_t		v;

	switch (json_object_get_type(obj))
	{
		case json_type_string:
			if (strlen(json_object_get_string(obj)) !=
				(size_t) json_object_get_string_len(obj))
				return "nul-character";
			return NULL;
		case json_type_double:
			return isfinite(json_object_get_double(obj)) ? NULL : "number-out-of-range";
		case json_type_int:
			v = json_object_get_int64(obj);
			if (v == INT64_MAX || v == INT64_MIN ||
				json_object_get_uint64(obj) == UINT64_MAX)
				return "number-out-of-range";
			return NULL;
		default:
			return NULL;
	}
}

static const char *
unstorable(json_object *obj, int depth, int max_depth)
{
	const char *code = NULL;

	if (depth > max_depth)
		return "nesting-too-deep";
	if (json_object_is_type(obj, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(obj) && !code; i++)
			code = unstorable(json_object_array_get_idx(obj, i), depth + 1, max_depth);
		return code;
	}
	if (json_object_is_type(obj, json_type_object))
	{
		json_object_object_foreach(obj, key, val)
		{
			/* json-c keeps keys as C strings: an embedded NUL cut the key. */
			(void) key;
			if ((code = unstorable(val, depth + 1, max_depth)) != NULL)
				return code;
		}
		return NULL;
	}
	return unstorable_scalar(obj);
}

const char *
json_strict_unstorable(json_object *obj, int max_depth)
{
	return unstorable(obj, 0, max_depth);
}

bool
text_is_blank(const char *s)
{
	for (; s && *s; s++)
		if (!isspace((unsigned char) *s))
			return false;
	return true;
}
