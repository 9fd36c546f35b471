/*
 * json_strict.c: the one json-c entry point the core parsers share.
 *
 * Owns how untrusted JSON text (grants, derivations) becomes a json-c
 * tree: exactly one value over all the bytes, a bounded nesting depth,
 * strict syntax.  Must never accept trailing garbage or an embedded NUL,
 * and never allocate anything the caller does not free with
 * json_object_put.
 *
 * Strictness does not rest on json-c alone: json_strict_check() checks
 * RFC 8259 syntax and well-formed UTF-8 itself, before json-c sees the
 * text, so every json-c version refuses the same inputs.  json-c 0.18's
 * strict mode refuses every non-ASCII byte in a string (json-c issues 875
 * and 892); json_strict_flags() finds that out once and then leaves
 * JSON_TOKENER_STRICT off, the check above keeping the text strict.
 */
#include "json_strict.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/*
 * Past max_depth (and this) the check stops and leaves the depth error to
 * json-c, whose tokener has the same depth and has met the same prefix.
 */
#define CHECK_MAX_DEPTH 1024

static int	strict_flags = 0;	/* 0: not probed yet */

int
json_strict_flags(void)
{
	json_tokener *tok;
	json_object *obj;

	if (strict_flags != 0)
		return strict_flags;
	if ((tok = json_tokener_new_ex(4)) == NULL)
		return JSON_TOKENER_VALIDATE_UTF8;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, "\"\xc3\xa4\"", 4);	/* "\u00e4" as UTF-8 */
	strict_flags = obj != NULL ? JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8
		: JSON_TOKENER_VALIDATE_UTF8;
	json_object_put(obj);
	json_tokener_free(tok);
	return strict_flags;
}

void
json_strict_force_flags(int flags)
{
	strict_flags = flags;
}

/* Length of one well-formed UTF-8 sequence at p (RFC 3629), 0 if none. */
static size_t
utf8_sequence(const unsigned char *p, size_t avail)
{
	size_t		n;
	unsigned char lo = 0x80,
				hi = 0xBF;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
	{
		n = 3;
		if (p[0] == 0xE0)
			lo = 0xA0;			/* overlong */
		else if (p[0] == 0xED)
			hi = 0x9F;			/* UTF-16 surrogates */
	}
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
	{
		n = 4;
		if (p[0] == 0xF0)
			lo = 0x90;			/* overlong */
		else if (p[0] == 0xF4)
			hi = 0x8F;			/* past U+10FFFF */
	}
	else
		return 0;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

typedef struct Scan
{
	const unsigned char *s;
	size_t		len;
	size_t		pos;
	enum json_tokener_error err;
} Scan;

static bool
scan_fail(Scan *sc, enum json_tokener_error err)
{
	/* Running out of text is "ends early", as json-c says it. */
	sc->err = sc->pos >= sc->len ? json_tokener_continue : err;
	return false;
}

static void
skip_space(Scan *sc)
{
	while (sc->pos < sc->len && strchr(" \t\r\n", sc->s[sc->pos]) && sc->s[sc->pos])
		sc->pos++;
}

static bool
scan_string(Scan *sc)
{
	sc->pos++;					/* the opening quote */
	while (sc->pos < sc->len)
	{
		unsigned char c = sc->s[sc->pos];
		size_t		n;

		if (c == '"')
		{
			sc->pos++;
			return true;
		}
		if (c < 0x20)
			return scan_fail(sc, json_tokener_error_parse_string);
		if (c == '\\')
		{
			if (++sc->pos >= sc->len)
				break;
			c = sc->s[sc->pos];
			if (c == 'u')
			{
				for (int i = 1; i <= 4; i++)
					if (sc->pos + i >= sc->len || !isxdigit(sc->s[sc->pos + i]))
					{
						sc->pos += i;
						return scan_fail(sc, json_tokener_error_parse_string);
					}
				sc->pos += 5;
			}
			else if (strchr("\"\\/bfnrt", c) && c != '\0')
				sc->pos++;
			else
				return scan_fail(sc, json_tokener_error_parse_string);
			continue;
		}
		if ((n = utf8_sequence(sc->s + sc->pos, sc->len - sc->pos)) == 0)
		{
			sc->err = json_tokener_error_parse_utf8_string;
			return false;
		}
		sc->pos += n;
	}
	return scan_fail(sc, json_tokener_error_parse_string);
}

static size_t
digits(Scan *sc)
{
	size_t		start = sc->pos;

	while (sc->pos < sc->len && isdigit(sc->s[sc->pos]))
		sc->pos++;
	return sc->pos - start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
scan_number(Scan *sc)
{
	if (sc->s[sc->pos] == '-')
		sc->pos++;
	if (sc->pos < sc->len && sc->s[sc->pos] == '0')
		sc->pos++;
	else if (digits(sc) == 0)
		return scan_fail(sc, json_tokener_error_parse_number);
	if (sc->pos < sc->len && sc->s[sc->pos] == '.')
	{
		sc->pos++;
		if (digits(sc) == 0)
			return scan_fail(sc, json_tokener_error_parse_number);
	}
	if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E'))
	{
		sc->pos++;
		if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
			sc->pos++;
		if (digits(sc) == 0)
			return scan_fail(sc, json_tokener_error_parse_number);
	}
	/* "01", "1x": a number runs into what cannot follow one. */
	if (sc->pos < sc->len && (isalnum(sc->s[sc->pos]) || sc->s[sc->pos] == '.'))
		return scan_fail(sc, json_tokener_error_parse_number);
	return true;
}

static bool
scan_literal(Scan *sc)
{
	static const char *const words[] = {"true", "false", "null"};

	for (int i = 0; i < 3; i++)
	{
		size_t		n = strlen(words[i]);

		if (sc->len - sc->pos >= n && memcmp(sc->s + sc->pos, words[i], n) == 0 &&
			(sc->len - sc->pos == n || !isalnum(sc->s[sc->pos + n])))
		{
			sc->pos += n;
			return true;
		}
	}
	return scan_fail(sc, json_tokener_error_parse_unexpected);
}

/*
 * One JSON value (RFC 8259, no extension json-c's lenient mode allows),
 * iteratively: a stack of open containers, '{' or '['.
 */
static bool
scan_value(Scan *sc, int max_depth)
{
	char		stack[CHECK_MAX_DEPTH];
	int			depth = 0;

	for (;;)
	{
		unsigned char c;

		skip_space(sc);
		if (sc->pos >= sc->len)
			return scan_fail(sc, json_tokener_continue);
		c = sc->s[sc->pos];
		if (c == '{' || c == '[')
		{
			if (depth >= max_depth || depth == CHECK_MAX_DEPTH)
				return true;	/* json-c refuses the depth itself */
			stack[depth++] = (char) c;
			sc->pos++;
			skip_space(sc);
			if (sc->pos < sc->len && sc->s[sc->pos] == (c == '{' ? '}' : ']'))
			{
				sc->pos++;
				depth--;
				goto after_value;
			}
			if (c == '[')
				continue;
			/* an object's first key */
			if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
				return scan_fail(sc, json_tokener_error_parse_object_key_name);
			if (!scan_string(sc))
				return false;
			skip_space(sc);
			if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
				return scan_fail(sc, json_tokener_error_parse_object_key_sep);
			sc->pos++;
			continue;
		}
		if (c == '"')
		{
			if (!scan_string(sc))
				return false;
		}
		else if (c == '-' || isdigit(c))
		{
			if (!scan_number(sc))
				return false;
		}
		else if (!scan_literal(sc))
			return false;

after_value:
		for (;;)
		{
			if (depth == 0)
				return true;
			skip_space(sc);
			if (sc->pos >= sc->len)
				return scan_fail(sc, json_tokener_continue);
			c = sc->s[sc->pos];
			if (c == (stack[depth - 1] == '{' ? '}' : ']'))
			{
				sc->pos++;
				depth--;
				continue;
			}
			if (c != ',')
				return scan_fail(sc, stack[depth - 1] == '{'
								 ? json_tokener_error_parse_object_value_sep
								 : json_tokener_error_parse_array);
			sc->pos++;
			skip_space(sc);
			if (stack[depth - 1] == '{')
			{
				if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
					return scan_fail(sc, json_tokener_error_parse_object_key_name);
				if (!scan_string(sc))
					return false;
				skip_space(sc);
				if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
					return scan_fail(sc, json_tokener_error_parse_object_key_sep);
				sc->pos++;
			}
			break;
		}
	}
}

enum json_tokener_error
json_strict_check(const char *text, size_t len, int max_depth, size_t *end)
{
	Scan		sc = {(const unsigned char *) text, len, 0, json_tokener_success};
	bool		good;

	if (text == NULL)
		return json_tokener_error_parse_eof;
	good = scan_value(&sc, max_depth);
	if (end)
		*end = sc.pos;
	return good ? json_tokener_success : sc.err;
}

json_object *
mana_json_parse_strict(const char *text, size_t len)
{
	json_tokener *tok;
	json_object *obj;
	size_t		end;

	if (text == NULL || len > INT32_MAX || memchr(text, '\0', len) != NULL)
		return NULL;
	if (json_strict_check(text, len, 64, &end) != json_tokener_success)
		return NULL;
	/* Only white space may follow the value (json-c's lenient mode would skip comments). */
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", text[i]))
			return NULL;
	tok = json_tokener_new_ex(64);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, json_strict_flags());
	obj = json_tokener_parse_ex(tok, text, (int) len);
	if (obj == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		obj = json_tokener_parse_ex(tok, "", 1);	/* flush a bare number */
	if (obj != NULL && json_tokener_get_error(tok) != json_tokener_success)
	{
		json_object_put(obj);
		obj = NULL;
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
