/*
 * tool_json.c: strict json-c parsing and jsonb-compatibility checks for
 * the tools protocol.
 *
 * Owns nothing but these helpers.  Input is hostile: the tokener keeps
 * its own fixed-size stack (depth cap, no recursion while parsing); the
 * recursive storability walk is bounded by the same depth.  Must never
 * include a PostgreSQL header.
 */
#include "tool_json.h"

#include "json_strict.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
only_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strchr(" \t\r\n", p[i]) == NULL || p[i] == '\0')
			return false;
	return true;
}

/*
 * Whether the JSON text has the escape \u0000 (after an odd run of
 * backslashes).  json-c keeps object keys as C strings, so a key with
 * \u0000 would be cut short silently ("title\u0000x" -> "title"); the
 * escape is refused before parsing instead.  A lexical scan, not a parse.
 */
static bool
has_nul_escape(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		size_t		run = 0;

		while (i < n && p[i] == '\\')
		{
			run++;
			i++;
		}
		if (run % 2 == 1 && n - i >= 5 && (p[i] == 'u' || p[i] == 'U') &&
			strncmp(p + i + 1, "0000", 4) == 0)
			return true;
	}
	return false;
}

static const char *
tokener_code(enum json_tokener_error err)
{
	if (err == json_tokener_error_depth)
		return "nesting-too-deep";
	if (err == json_tokener_error_parse_utf8_string)
		return "invalid-utf8";
	return "invalid-json";
}

json_object *
tool_json_parse(const char *text, size_t len, const char **code)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error err;
	size_t		end;

	if (code)
		*code = "invalid-json";
	if (text == NULL || len > INT32_MAX)
		return NULL;
	if (has_nul_escape(text, len))
	{
		if (code)
			*code = "nul-character";
		return NULL;
	}
	if ((err = json_strict_check(text, len, TOOL_JSON_MAX_DEPTH, &end)) != json_tokener_success)
	{
		if (code)
			*code = tokener_code(err);
		return NULL;
	}
	if ((tok = json_tokener_new_ex(TOOL_JSON_MAX_DEPTH)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, json_strict_flags());
	obj = json_tokener_parse_ex(tok, text, (int) len);
	if (obj == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		obj = json_tokener_parse_ex(tok, "", 1);	/* ends a bare number */
	err = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (obj != NULL && err == json_tokener_success && end <= len &&
		only_space(text + end, len - end))
		return obj;
	json_object_put(obj);
	if (code && err != json_tokener_success)
		*code = tokener_code(err);
	return NULL;
}

const char *
tool_json_unstorable(json_object *obj)
{
	return json_strict_unstorable(obj, TOOL_JSON_MAX_DEPTH);
}

char *
tool_json_text(json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
												   JSON_C_TO_STRING_NOSLASHESCAPE);

	return s ? strdup(s) : NULL;
}

const char *
tool_json_str(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Cut buf back to its last whole UTF-8 sequence (its end was cut). */
static void
utf8_cut(char *buf, size_t used)
{
	while (used > 0 && ((unsigned char) buf[used - 1] & 0xC0) == 0x80)
		used--;
	if (used > 0 && ((unsigned char) buf[used - 1] & 0x80))
		used--;
	buf[used] = '\0';
}

const char *
tool_json_clip(char *buf, size_t buflen, const char *s)
{
	size_t		n = s ? strlen(s) : 0;

	if (buflen == 0)
		return "";
	if (n < buflen)
	{
		memcpy(buf, s ? s : "", n + 1);
		return buf;
	}
	memcpy(buf, s, buflen - 1);
	utf8_cut(buf, buflen - 1);
	return buf;
}

void
tool_json_setf(char *buf, size_t len, const char *fmt, ...)
{
	va_list		ap;
	int			n;
	size_t		used;

	if (len == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0)
	{
		buf[0] = '\0';
		return;
	}
	used = strlen(buf);
	if ((size_t) n >= len)
		utf8_cut(buf, used);	/* truncated: maybe inside a sequence */
}
