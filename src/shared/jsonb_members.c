/*
 * jsonb_members.c: jsonb member helpers shared by every module.
 *
 * Owns reading one member of a jsonb object as text or as an object, and
 * pushing members onto a JsonbParseState, so no module writes its own
 * copy.  Works on jsonb directly, never through a text round trip (except
 * jb_from_cstring, which is that round trip on purpose).  Must never
 * throw for a member of the wrong type: it answers NULL.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "shared/jsonb_members.h"

char *
jb_field_text(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (c == NULL || !JsonContainerIsObject(c) ||
		getKeyJsonValueFromContainer(c, key, strlen(key), &v) == NULL)
		return NULL;
	switch (v.type)
	{
		case jbvString:
			return pnstrdup(v.val.string.val, v.val.string.len);
		case jbvBool:
			return pstrdup(v.val.boolean ? "true" : "false");
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
		case jbvBinary:
			return JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
		default:
			return NULL;		/* jbvNull */
	}
}

char *
jb_member_text(Jsonb *jb, const char *key)
{
	return jb == NULL ? NULL : jb_field_text(&jb->root, key);
}

Jsonb *
jb_member_object(Jsonb *jb, const char *key)
{
	JsonbValue *v;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return JsonbValueToJsonb(v);
}

bool
jb_has_member(Jsonb *jb, const char *key)
{
	JsonbValue	v;

	return jb != NULL && JB_ROOT_IS_OBJECT(jb) &&
		getKeyJsonValueFromContainer(&jb->root, key, strlen(key), &v) != NULL &&
		v.type != jbvNull;
}

Jsonb *
jb_from_cstring(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}

void
jb_push_text(JsonbParseState **state, JsonbIteratorToken seq, const char *s)
{
	JsonbValue	v;

	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	pushJsonbValue(state, seq, &v);
}

void
jb_push_value_member(JsonbParseState **state, const char *key, JsonbValue *v)
{
	jb_push_text(state, WJB_KEY, key);
	pushJsonbValue(state, WJB_VALUE, v);
}

void
jb_push_text_member(JsonbParseState **state, const char *key, const char *s)
{
	jb_push_text(state, WJB_KEY, key);
	jb_push_text(state, WJB_VALUE, s);
}

void
jb_push_int_member(JsonbParseState **state, const char *key, int64 n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	jb_push_value_member(state, key, &v);
}

void
jb_push_float_member(JsonbParseState **state, const char *key, double x)
{
	JsonbValue	v;

	/* JSON has no NaN or infinity: those are null. */
	if (isnan(x) || isinf(x))
		v.type = jbvNull;
	else
	{
		v.type = jbvNumeric;
		v.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(x)));
	}
	jb_push_value_member(state, key, &v);
}
