/*
 * exec_rules.c: the web app executor's parameter rules (exec_rules.h).
 *
 * Owns JavaScript's Number(), String() and the executor's boolean
 * coercion for JSON values, and the six rules in the executor's order.
 * The checks read the offered function's JSON Schema (properties with
 * type and enum, required), which tool_schema.c maps one to one from the
 * catalog row.  Must never accept a step the app would fail, never read
 * past a length, never include a PostgreSQL header.
 */
#include "exec_rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_json.h"
#include "tool_schema.h"

/* Bytes of the JavaScript white space or line terminator at s, else 0. */
static size_t
js_space_at(const unsigned char *s, size_t len)
{
	unsigned int cp;

	if (len == 0)
		return 0;
	if (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0D))
		return 1;
	if (s[0] == 0xC2 && len >= 2 && s[1] == 0xA0)
		return 2;				/* U+00A0 */
	if (s[0] == 0xE1 && len >= 3 && s[1] == 0x9A && s[2] == 0x80)
		return 3;				/* U+1680 */
	if ((s[0] == 0xE2 || s[0] == 0xE3 || s[0] == 0xEF) && len >= 3)
	{
		cp = ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		if ((cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
			cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF)
			return 3;
	}
	return 0;
}

/* The same, ending at s + len (for trimming from the right). */
static size_t
js_space_before(const unsigned char *s, size_t len)
{
	for (size_t w = 1; w <= 3 && w <= len; w++)
		if (js_space_at(s + len - w, w) == w)
			return w;
	return 0;
}

static bool
is_digit_of(char c, int base)
{
	int			d;

	if (c >= '0' && c <= '9')
		d = c - '0';
	else if (c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	else
		return false;
	return d < base;
}

/* 0x.., 0o.., 0b..: unsigned, at least one digit, nothing else. */
static bool
non_decimal(const char *s, size_t len, double *out)
{
	int			base;
	double		v = 0;

	if (len < 3 || s[0] != '0')
		return false;
	switch (s[1])
	{
		case 'x': case 'X': base = 16; break;
		case 'o': case 'O': base = 8; break;
		case 'b': case 'B': base = 2; break;
		default: return false;
	}
	for (size_t i = 2; i < len; i++)
	{
		char		c = s[i];

		if (!is_digit_of(c, base))
			return false;
		v = v * base + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	*out = v;
	return true;
}

/* [+-] (Infinity | digits [. digits] | . digits) [e [+-] digits]. */
static bool
decimal(const char *s, size_t len, double *out)
{
	size_t		i = 0;
	size_t		int_digits = 0;
	size_t		frac_digits = 0;
	char		buf[400];
	bool		neg = false;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (len - i == 8 && memcmp(s + i, "Infinity", 8) == 0)
	{
		*out = neg ? -INFINITY : INFINITY;
		return true;
	}
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, int_digits++;
	if (i < len && s[i] == '.')
	{
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, frac_digits++;
	}
	if (int_digits + frac_digits == 0)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		exp_digits = 0;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, exp_digits++;
		if (exp_digits == 0)
			return false;
	}
	if (i != len)
		return false;
	if (len >= sizeof(buf))
	{
		/* A very long literal: strtod needs it whole, so copy it whole. */
		char	   *copy = malloc(len + 1);

		if (copy == NULL)
			return false;
		memcpy(copy, s, len);
		copy[len] = '\0';
		*out = strtod(copy, NULL);
		free(copy);
		return true;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	*out = strtod(buf, NULL);	/* the grammar above is a subset of strtod's */
	return true;
}

bool
exec_js_string_number(const char *s, size_t len, double *out)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		w;
	double		v = 0;

	while ((w = js_space_at(u, len)) > 0)
		u += w, len -= w;
	while ((w = js_space_before(u, len)) > 0)
		len -= w;
	if (len == 0)
		v = 0;					/* Number("") and Number("  ") are 0 */
	else if (!non_decimal((const char *) u, len, &v) &&
			 !decimal((const char *) u, len, &v))
		return false;
	if (out)
		*out = v;
	return true;
}

bool
exec_js_number(json_object *v, double *out)
{
	double		d = 0;
	bool		ok = true;

	switch (json_object_get_type(v))
	{
		case json_type_null:
			d = 0;
			break;
		case json_type_boolean:
			d = json_object_get_boolean(v) ? 1 : 0;
			break;
		case json_type_int:
		case json_type_double:
			d = json_object_get_double(v);
			ok = !isnan(d);
			break;
		case json_type_string:
			ok = exec_js_string_number(json_object_get_string(v),
									   (size_t) json_object_get_string_len(v), &d);
			break;
		case json_type_array:
			{
				/* String([]) is "", of [x] String(x) (null ""), else has a ",". */
				size_t		n = json_object_array_length(v);
				json_object *e = n == 1 ? json_object_array_get_idx(v, 0) : NULL;

				if (n == 0 || (n == 1 && e == NULL))
					d = 0;
				else if (n > 1 || json_object_is_type(e, json_type_boolean) ||
						 json_object_is_type(e, json_type_object))
					ok = false; /* "a,b", "true", "[object Object]" */
				else
					ok = exec_js_number(e, &d);
				break;
			}
		default:
			ok = false;			/* an object: "[object Object]" */
			break;
	}
	if (ok && out)
		*out = d;
	return ok;
}

bool
exec_js_boolean(json_object *v)
{
	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v);
	return json_object_is_type(v, json_type_string) &&
		strcmp(json_object_get_string(v), "true") == 0;
}

/* Number::toString(10) of a finite double. */
static void
js_double_string(double x, char *buf, size_t buflen)
{
	char		sci[40];
	char		digits[24];
	char		out[64];
	int			k = 0;
	int			e;
	int			n;
	char	   *p;

	if (isnan(x))
	{
		snprintf(buf, buflen, "NaN");
		return;
	}
	if (isinf(x))
	{
		snprintf(buf, buflen, "%sInfinity", x < 0 ? "-" : "");
		return;
	}
	if (x == 0)
	{
		snprintf(buf, buflen, "0");
		return;
	}
	/* the shortest digits that read back as x */
	for (int prec = 1; prec <= 17; prec++)
	{
		snprintf(sci, sizeof(sci), "%.*e", prec - 1, fabs(x));
		if (strtod(sci, NULL) == fabs(x))
			break;
	}
	for (p = sci; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[k++] = *p;
	digits[k] = '\0';
	e = atoi(p + 1);
	while (k > 1 && digits[k - 1] == '0')
		digits[--k] = '\0';
	n = e + 1;
	p = out;
	if (x < 0)
		*p++ = '-';
	if (k <= n && n <= 21)
	{
		p += sprintf(p, "%s", digits);
		for (int z = 0; z < n - k; z++)
			*p++ = '0';
		*p = '\0';
	}
	else if (0 < n && n <= 21)
		sprintf(p, "%.*s.%s", n, digits, digits + n);
	else if (-6 < n && n <= 0)
	{
		p += sprintf(p, "0.");
		for (int z = 0; z < -n; z++)
			*p++ = '0';
		sprintf(p, "%s", digits);
	}
	else
		sprintf(p, "%c%s%se%c%d", digits[0], k > 1 ? "." : "", digits + 1,
				n - 1 < 0 ? '-' : '+', abs(n - 1));
	snprintf(buf, buflen, "%s", out);
}

void
exec_js_string(json_object *v, char *buf, size_t buflen)
{
	size_t		used = 0;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	switch (json_object_get_type(v))
	{
		case json_type_null:
			snprintf(buf, buflen, "null");
			break;
		case json_type_boolean:
			snprintf(buf, buflen, "%s", json_object_get_boolean(v) ? "true" : "false");
			break;
		case json_type_int:
			snprintf(buf, buflen, "%lld", (long long) json_object_get_int64(v));
			break;
		case json_type_double:
			js_double_string(json_object_get_double(v), buf, buflen);
			break;
		case json_type_string:
			snprintf(buf, buflen, "%s", json_object_get_string(v));
			break;
		case json_type_array:
			for (size_t i = 0; i < json_object_array_length(v) && used + 1 < buflen; i++)
			{
				json_object *e = json_object_array_get_idx(v, i);

				if (i > 0)
					buf[used++] = ',', buf[used] = '\0';
				if (e != NULL && used + 1 < buflen)	/* null and undefined join as "" */
					exec_js_string(e, buf + used, buflen - used);
				used = strlen(buf);
			}
			break;
		default:
			snprintf(buf, buflen, "[object Object]");
			break;
	}
}

json_object *
exec_find_function(json_object *offered, const char *tool)
{
	size_t		n = json_object_is_type(offered, json_type_array) ?
		json_object_array_length(offered) : 0;

	for (size_t i = 0; tool && i < n; i++)
	{
		json_object *fn = NULL;
		const char *name;

		if (!json_object_object_get_ex(json_object_array_get_idx(offered, i), "function", &fn))
			continue;
		name = tool_json_str(fn, "name");
		if (name && strcmp(name, tool) == 0)
			return fn;
	}
	return NULL;
}

static bool
verdict(ExecVerdict *v, int rule, const char *code, const char *fmt, const char *a,
		const char *b)
{
	char		clip_a[81];
	char		clip_b[81];

	v->ok = false;
	v->rule = rule;
	snprintf(v->code, sizeof(v->code), "%s", code);
	tool_json_setf(v->error, sizeof(v->error), fmt,
				   tool_json_clip(clip_a, sizeof(clip_a), a ? a : ""),
				   tool_json_clip(clip_b, sizeof(clip_b), b ? b : ""));
	return false;
}

/* A parameter's value; NULL when absent or JSON null. */
static json_object *
param_value(json_object *params, const char *name)
{
	json_object *v = NULL;

	if (params == NULL || !json_object_object_get_ex(params, name, &v))
		return NULL;
	return v;
}

/* Rules 3 and 5 over every declared parameter that has a value. */
static bool
check_values(json_object *props, json_object *params, int rule, ExecVerdict *v)
{
	json_object_object_foreach(props, name, prop)
	{
		json_object *val = param_value(params, name);
		const char *type = tool_json_str(prop, "type");
		json_object *e = NULL;
		char		s[512];

		if (val == NULL || strcmp(name, TOOL_RATIONALE_ARG) == 0)
			continue;
		if (rule == 3 && type && (strcmp(type, "number") == 0 || strcmp(type, "integer") == 0) &&
			!exec_js_number(val, NULL))
		{
			exec_js_string(val, s, sizeof(s));
			return verdict(v, 3, "not-a-number", "argument \"%s\" is not a number: Number(%s) is NaN",
						   name, s);
		}
		if (rule == 5 && json_object_object_get_ex(prop, "enum", &e) &&
			json_object_is_type(e, json_type_array))
		{
			bool		found = false;

			exec_js_string(val, s, sizeof(s));
			for (size_t i = 0; !found && i < json_object_array_length(e); i++)
			{
				char		ev[512];

				exec_js_string(json_object_array_get_idx(e, i), ev, sizeof(ev));
				found = strcmp(ev, s) == 0;
			}
			if (!found)
				return verdict(v, 5, "not-in-enum", "argument \"%s\" is \"%s\", not one of its enum values",
							   name, s);
		}
	}
	return true;
}

bool
exec_check_step(json_object *offered, const char *tool, json_object *params,
				bool denied, ExecVerdict *v)
{
	json_object *fn = exec_find_function(offered, tool);
	json_object *schema = NULL;
	json_object *props = NULL;
	json_object *req = NULL;

	memset(v, 0, sizeof(*v));
	if (fn == NULL)
		return verdict(v, 1, "unknown-tool", "unknown tool \"%s\"%s", tool, NULL);
	if (params != NULL && !json_object_is_type(params, json_type_object))
		params = NULL;			/* the app reads params[name]: nothing there */
	json_object_object_get_ex(fn, "parameters", &schema);
	if (schema && json_object_object_get_ex(schema, "required", &req) &&
		json_object_is_type(req, json_type_array))
		for (size_t i = 0; i < json_object_array_length(req); i++)
		{
			const char *name = json_object_get_string(json_object_array_get_idx(req, i));

			if (name && strcmp(name, TOOL_RATIONALE_ARG) != 0 && param_value(params, name) == NULL)
				return verdict(v, 2, "missing-argument", "missing required argument \"%s\"%s",
							   name, NULL);
		}
	if (schema && json_object_object_get_ex(schema, "properties", &props) &&
		json_object_is_type(props, json_type_object))
	{
		/* rule 4 converts and never fails */
		if (!check_values(props, params, 3, v) || !check_values(props, params, 5, v))
			return false;
	}
	if (denied)
		return verdict(v, 6, "tool-denied", "the agent's policy denies tool \"%s\"%s", tool, NULL);
	v->ok = true;
	return true;
}
