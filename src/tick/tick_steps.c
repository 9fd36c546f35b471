/*
 * tick_steps.c: what a tick reports about the steps a planner answer
 * proposed but mana_ai did not plan as proposed (issue 17): the steps the
 * json protocol dropped (a step the web app's executor would fail, or one
 * refused under mana_ai.injection_policy) and every step either protocol
 * flagged for a prompt-injection marker.
 *
 * Owns the LOG line per flag, mana_ai_injection_flags_total{tool}, and
 * the short note mana_ai.mission_runs shows.  Must never put the text of
 * a parameter into a log line, a metric label or a row: only tool names
 * (the catalog's), reason codes and marker labels (a closed set).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* json-c's json_object type clashes with fmgrprotos.h (see planner.c). */
#define json_object jsonc_object
#include <json-c/json.h>

#include "ops/metrics.h"
#include "shared/jsonb_members.h"
#include "tick/tick.h"
#include "tick/tick_internal.h"

#define NOTES_MAX 480

/* A catalog tool name (tools_name_format: ^[a-z][a-z0-9_]{0,62}$), else NULL. */
static const char *
catalog_name(json_object *entry)
{
	const char *s = json_object_get_string(json_object_object_get(entry, "toolName"));
	size_t		n = s ? strlen(s) : 0;

	if (n == 0 || n > 63 || s[0] < 'a' || s[0] > 'z')
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return NULL;
	return s;
}

/* A code or marker label of ours: [a-z-]+, else "other". */
static const char *
label_of(json_object *entry, const char *key)
{
	const char *s = json_object_get_string(json_object_object_get(entry, key));

	if (s == NULL || s[0] == '\0' || strlen(s) > 40)
		return "other";
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '-'))
			return "other";
	return s;
}

static void
note(StringInfo buf, const char *text)
{
	if (buf->len + strlen(text) + 2 > NOTES_MAX)
		return;
	if (buf->len > 0)
		appendStringInfoString(buf, "; ");
	appendStringInfoString(buf, text);
}

/* The JSON array text as a json-c array, or NULL. */
static json_object *
array_of(const char *text)
{
	json_object *arr = text ? json_tokener_parse(text) : NULL;

	if (arr != NULL && !json_object_is_type(arr, json_type_array))
	{
		json_object_put(arr);
		arr = NULL;
	}
	return arr;
}

void
tick_note_steps(Job *job, const char *flags_json, const char *dropped_json)
{
	json_object *flags = array_of(flags_json);
	json_object *dropped = array_of(dropped_json);
	StringInfoData buf;

	initStringInfo(&buf);
	for (size_t i = 0; dropped && i < json_object_array_length(dropped); i++)
	{
		json_object *d = json_object_array_get_idx(dropped, i);
		const char *tool = catalog_name(d);

		note(&buf, psprintf("dropped steps[%d] %s: %s",
							json_object_get_int(json_object_object_get(d, "step")),
							tool ? tool : "(unknown tool)", label_of(d, "code")));
	}
	for (size_t i = 0; flags && i < json_object_array_length(flags); i++)
	{
		json_object *f = json_object_array_get_idx(flags, i);
		const char *tool = catalog_name(f);
		const char *marker = label_of(f, "marker");
		bool		refused = json_object_get_boolean(json_object_object_get(f, "refused"));

		ereport(LOG,
				(errmsg("mana_ai: prompt-injection marker \"%s\" in the parameters of a "
						"\"%s\" step of mission \"%s\"%s", marker, tool ? tool : "other",
						job->mission_id, refused ? ", step refused" : ", step planned"),
				 errhint("mana_ai.injection_policy decides: off, log or refuse.")));
		mana_ai_metric_inc_labeled(ML_INJECTION_FLAGS, tool ? tool : "other", 1);
		/* the json protocol's refusals are among the dropped steps already */
		if (!refused || dropped == NULL)
			note(&buf, psprintf("%s %s: injection-marker %s", refused ? "refused" : "flagged",
								tool ? tool : "other", marker));
	}
	json_object_put(flags);
	json_object_put(dropped);
	job->step_notes = buf.len > 0 ? buf.data : NULL;
}
