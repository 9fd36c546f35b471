/*
 * tool_schema.c: a catalog row's parameter list as an OpenAI function.
 *
 * Owns the parameter-list rules (shape, names, types, enums) and the
 * JSON Schema they map to; every refusal names the parameter (index and
 * name) and what is wrong with it.  Must never emit a schema for a list
 * it had to guess about, and never include a PostgreSQL header.
 */
#include "tool_schema.h"

#include <ctype.h>
#include <string.h>

#include "tool_json.h"

static const char *const param_types[] = {
	"string", "number", "integer", "boolean", "array", "object"
};
static const char *const param_keys[] = {
	"name", "type", "required", "description", "enum"
};

#define TYPE_LIST "string, number, integer, boolean, array, object"
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ^[A-Za-z_][A-Za-z0-9_]{0,62}$, as the tools_validate trigger has it. */
static bool
valid_param_name(const char *s)
{
	size_t		n = strlen(s);

	if (n == 0 || n > 63 || !(isalpha((unsigned char) s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_'))
			return false;
	return true;
}

/* ^[a-zA-Z0-9_-]{1,64}$, what OpenAI accepts as a function name. */
static bool
valid_function_name(const char *s)
{
	size_t		n = s ? strlen(s) : 0;

	if (n == 0 || n > TOOL_SCHEMA_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static bool
in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* "parameter 2 (\"dueDate\")" or "parameter 2" before the name is known. */
static void
label(char *buf, size_t len, size_t i, const char *name)
{
	char		clip[64];

	if (name)
		tool_json_setf(buf, len, "parameter %zu (\"%s\")", i,
					   tool_json_clip(clip, sizeof(clip), name));
	else
		tool_json_setf(buf, len, "parameter %zu", i);
}

static bool
check_keys(json_object *p, const char *lab, char *err, size_t errlen)
{
	json_object_object_foreach(p, key, val)
	{
		(void) val;
		if (!in_list(key, param_keys, N_OF(param_keys)))
		{
			char		clip[41];

			tool_json_setf(err, errlen, "%s has unknown key \"%s\" (allowed: "
						   "name, type, required, description, enum)", lab,
						   tool_json_clip(clip, sizeof(clip), key));
			return false;
		}
	}
	return true;
}

/* The parameter's name: a fresh identifier, not "rationale", not seen. */
static const char *
check_name(json_object *p, size_t i, json_object *props, char *err, size_t errlen)
{
	const char *name = tool_json_str(p, "name");
	char		lab[96];
	char		clip[64];

	label(lab, sizeof(lab), i, NULL);
	if (name == NULL || name[0] == '\0')
		tool_json_setf(err, errlen, "%s has no name (a non-empty string)", lab);
	else if (!valid_param_name(name))
		tool_json_setf(err, errlen, "%s has an invalid name \"%s\" (an identifier "
					   "of at most 63 characters, such as dueDate)", lab,
					   tool_json_clip(clip, sizeof(clip), name));
	else if (strcmp(name, TOOL_RATIONALE_ARG) == 0)
		tool_json_setf(err, errlen, "%s may not be named \"rationale\": every function "
					   "gets that argument already", lab);
	else if (json_object_object_get_ex(props, name, NULL))
		tool_json_setf(err, errlen, "parameter name \"%s\" is used twice", name);
	else
		return name;
	return NULL;
}

static bool
number_value(json_object *v, bool integer)
{
	if (json_object_is_type(v, json_type_int))
		return true;
	return !integer && json_object_is_type(v, json_type_double);
}

static bool
same_value(json_object *a, json_object *b, bool strings)
{
	if (strings)
		return strcmp(json_object_get_string(a), json_object_get_string(b)) == 0;
	return json_object_get_double(a) == json_object_get_double(b);
}

/* enum: a non-empty array of distinct values of the parameter's type. */
static bool
check_enum(json_object *e, const char *type, const char *lab,
		   char *err, size_t errlen)
{
	bool		strings = strcmp(type, "string") == 0;
	bool		integer = strcmp(type, "integer") == 0;
	size_t		n;

	if (!strings && !integer && strcmp(type, "number") != 0)
	{
		tool_json_setf(err, errlen, "%s: enum is allowed only on string, number "
					   "and integer parameters, not on %s", lab, type);
		return false;
	}
	if (!json_object_is_type(e, json_type_array) ||
		(n = json_object_array_length(e)) == 0 || n > TOOL_SCHEMA_MAX_ENUM ||
		tool_json_unstorable(e) != NULL)
	{
		tool_json_setf(err, errlen, "%s: enum must be a non-empty array of at most "
					   "%d values", lab, TOOL_SCHEMA_MAX_ENUM);
		return false;
	}
	for (size_t k = 0; k < n; k++)
	{
		json_object *v = json_object_array_get_idx(e, k);

		if (strings ? !json_object_is_type(v, json_type_string) : !number_value(v, integer))
		{
			tool_json_setf(err, errlen, "%s: enum value %zu is not of type %s", lab, k, type);
			return false;
		}
		for (size_t j = 0; j < k; j++)
			if (same_value(json_object_array_get_idx(e, j), v, strings))
			{
				tool_json_setf(err, errlen, "%s: enum value %zu repeats value %zu",
							   lab, k, j);
				return false;
			}
	}
	return true;
}

/* type, required, description and enum of one named parameter. */
static bool
check_fields(json_object *p, const char *lab, const char **type,
			 bool *required, char *err, size_t errlen)
{
	json_object *v = NULL;

	*type = tool_json_str(p, "type");
	*required = false;
	if (*type == NULL)
	{
		tool_json_setf(err, errlen, "%s has no type (one of %s)", lab, TYPE_LIST);
		return false;
	}
	if (!in_list(*type, param_types, N_OF(param_types)))
	{
		char		clip[21];

		tool_json_setf(err, errlen, "%s has an unknown type \"%s\" (one of %s)",
					   lab, tool_json_clip(clip, sizeof(clip), *type), TYPE_LIST);
		return false;
	}
	if (json_object_object_get_ex(p, "required", &v))
	{
		if (!json_object_is_type(v, json_type_boolean))
		{
			tool_json_setf(err, errlen, "%s: required must be true or false", lab);
			return false;
		}
		*required = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(p, "description", &v) &&
		(!json_object_is_type(v, json_type_string) || tool_json_unstorable(v)))
	{
		tool_json_setf(err, errlen, "%s: description must be a string (without \\u0000)", lab);
		return false;
	}
	if (json_object_object_get_ex(p, "enum", &v))
		return check_enum(v, *type, lab, err, errlen);
	return true;
}

static bool
is_blank(const char *s)
{
	for (; s && *s; s++)
		if (!isspace((unsigned char) *s))
			return false;
	return true;
}

/* The JSON Schema of one parameter that passed the checks. */
static json_object *
property_schema(json_object *p, const char *type)
{
	json_object *prop = json_object_new_object();
	json_object *e = NULL;
	const char *desc = tool_json_str(p, "description");

	json_object_object_add(prop, "type", json_object_new_string(type));
	if (!is_blank(desc))
		json_object_object_add(prop, "description", json_object_new_string(desc));
	if (json_object_object_get_ex(p, "enum", &e))
		json_object_object_add(prop, "enum", json_object_get(e));
	/* OpenAI refuses an array schema without items; any item is fine here. */
	if (strcmp(type, "array") == 0)
		json_object_object_add(prop, "items", json_object_new_object());
	return prop;
}

/* Check parameter i and add it to props (and to required). */
static bool
add_param(json_object *p, size_t i, json_object *props, json_object *req,
		  char *err, size_t errlen)
{
	char		lab[96];
	const char *name;
	const char *type;
	bool		required;

	label(lab, sizeof(lab), i, NULL);
	if (!json_object_is_type(p, json_type_object))
	{
		tool_json_setf(err, errlen, "%s is not a JSON object {name, type, required, "
					   "description, enum?}", lab);
		return false;
	}
	if ((name = check_name(p, i, props, err, errlen)) == NULL)
		return false;
	label(lab, sizeof(lab), i, name);
	if (!check_keys(p, lab, err, errlen) ||
		!check_fields(p, lab, &type, &required, err, errlen))
		return false;
	json_object_object_add(props, name, property_schema(p, type));
	if (required)
		json_object_array_add(req, json_object_new_string(name));
	return true;
}

static json_object *
rationale_schema(void)
{
	json_object *prop = json_object_new_object();

	json_object_object_add(prop, "type", json_object_new_string("string"));
	json_object_object_add(prop, "description", json_object_new_string(
		"Warum dieser Schritt der Mission dient, in einem Satz; "
		"der Nutzer liest das, bevor er den Vorschlag freigibt."));
	return prop;
}

json_object *
tool_schema_parameters(json_object *params, char *err, size_t errlen)
{
	json_object *props;
	json_object *req;
	json_object *schema;
	size_t		n;

	if (!json_object_is_type(params, json_type_array))
	{
		tool_json_setf(err, errlen, "parameters must be a JSON array ([] for none)");
		return NULL;
	}
	if ((n = json_object_array_length(params)) > TOOL_SCHEMA_MAX_PARAMS)
	{
		tool_json_setf(err, errlen, "a tool has at most %d parameters, not %zu",
					   TOOL_SCHEMA_MAX_PARAMS, n);
		return NULL;
	}
	props = json_object_new_object();
	req = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		if (!add_param(json_object_array_get_idx(params, i), i, props, req, err, errlen))
		{
			json_object_put(props);
			json_object_put(req);
			return NULL;
		}
	json_object_object_add(props, TOOL_RATIONALE_ARG, rationale_schema());
	json_object_array_add(req, json_object_new_string(TOOL_RATIONALE_ARG));
	schema = json_object_new_object();
	json_object_object_add(schema, "type", json_object_new_string("object"));
	json_object_object_add(schema, "properties", props);
	json_object_object_add(schema, "required", req);
	json_object_object_add(schema, "additionalProperties", json_object_new_boolean(0));
	return schema;
}

json_object *
tool_schema_function(const char *name, const char *description,
					 json_object *params, char *err, size_t errlen)
{
	json_object *schema;
	json_object *fn;
	json_object *entry;

	if (!valid_function_name(name))
	{
		char		clip[65];

		tool_json_setf(err, errlen, "invalid tool name \"%s\" (1 to 64 of a-z, A-Z, "
					   "0-9, _ and -)", tool_json_clip(clip, sizeof(clip), name));
		return NULL;
	}
	if ((schema = tool_schema_parameters(params, err, errlen)) == NULL)
		return NULL;
	fn = json_object_new_object();
	json_object_object_add(fn, "name", json_object_new_string(name));
	if (!is_blank(description))
		json_object_object_add(fn, "description", json_object_new_string(description));
	json_object_object_add(fn, "parameters", schema);
	entry = json_object_new_object();
	json_object_object_add(entry, "type", json_object_new_string("function"));
	json_object_object_add(entry, "function", fn);
	return entry;
}

static json_object *
parse_params(const char *params_json, size_t len, char *err, size_t errlen)
{
	json_object *params = tool_json_parse(params_json, len, NULL);

	if (params == NULL)
		tool_json_setf(err, errlen, "parameters are not valid JSON");
	return params;
}

bool
tool_schema_check_text(const char *params_json, size_t len,
					   char *err, size_t errlen)
{
	json_object *params = parse_params(params_json, len, err, errlen);
	json_object *schema;

	if (params == NULL)
		return false;
	schema = tool_schema_parameters(params, err, errlen);
	json_object_put(params);
	json_object_put(schema);
	return schema != NULL;
}

char *
tool_schema_function_text(const char *name, const char *description,
						  const char *params_json, size_t len,
						  char *err, size_t errlen)
{
	json_object *params = parse_params(params_json, len, err, errlen);
	json_object *entry;
	char	   *text;

	if (params == NULL)
		return NULL;
	entry = tool_schema_function(name, description, params, err, errlen);
	json_object_put(params);
	if (entry == NULL)
		return NULL;
	text = tool_json_text(entry);
	json_object_put(entry);
	if (text == NULL)
		tool_json_setf(err, errlen, "out of memory");
	return text;
}
