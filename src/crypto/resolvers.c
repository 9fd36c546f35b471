/*
 * resolvers.c: the input resolvers of SPEC 6, and the user's profile
 * (SPEC 11.4).
 *
 * Owns turning a mission's inputs [{module, table, id}] into the
 * ResolvedInput lines the planner prompt shows (exact German content
 * lines, truncation by characters), and mana_ai.resolve_inputs() for
 * checking them from SQL.  Encrypted modules go through
 * mana_ai_decrypt_record (allowlist, audit); without a usable grant they
 * are dropped silently.  Must never put ciphertext or key bytes into a
 * content line.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "crypto/decrypt.h"
#include "crypto/mission_grant.h"
#include "crypto/resolvers.h"
#include "ops/metrics.h"
#include "projection/replay.h"
#include "projection/snapshot_load.h"
#include "shared/jsonb_members.h"

typedef struct ResolverSpec
{
	const char *module;
	const char *label;			/* title when the record has none */
	int			max_chars;		/* content truncation, 0 = none */
	bool		fixed_title;	/* always the label (kontext) */
	char	   *(*content) (Jsonb *record);
} ResolverSpec;

static char *goal_content(Jsonb *record);
static char *content_field(Jsonb *record);
static char *task_content(Jsonb *record);
static char *event_content(Jsonb *record);
static char *profile_content(Jsonb *record);

static const ResolverSpec resolvers[] = {
	{"goals", "Goal", 0, false, goal_content},
	{"notes", "Notiz", 500, false, content_field},
	{"tasks", "Task", 500, false, task_content},
	{"todo", "Task", 500, false, task_content},
	{"calendar", "Termin", 500, false, event_content},
	{"journal", "Journal-Eintrag", 500, false, content_field},
	{"kontext", "Mana-Kontext", 1500, true, content_field},
	{"profile", "Nutzerprofil", 2000, true, profile_content},
};

/* The profile's fields in the order its text shows them (SPEC 11.4). */
static const char *const profile_fields[] = {
	"about", "interests", "routine", "nutrition", "goals", "social", "freeform"
};

/* Field of an object container as text; NULL for missing, null or "". */
static char *
field_in(JsonbContainer *c, const char *key)
{
	char	   *s = jb_field_text(c, key);

	return s != NULL && s[0] != '\0' ? s : NULL;
}

static char *
field(Jsonb *record, const char *key)
{
	return field_in(&record->root, key);
}

/* SPEC 6 truncation: max characters, then an ellipsis. */
static char *
truncate_chars(const char *s, int max_chars)
{
	int			len = strlen(s);
	int			cut;

	if (max_chars <= 0 || pg_mbstrlen_with_len(s, len) <= max_chars)
		return pstrdup(s);
	cut = pg_mbcharcliplen(s, len, max_chars);
	return psprintf("%.*s\xE2\x80\xA6", cut, s);
}

/* Fortschritt: <currentValue or 0> / <target.value or ?> (<period>) */
static char *
goal_content(Jsonb *record)
{
	JsonbValue	tv;
	JsonbContainer *target = NULL;
	char	   *current = field(record, "currentValue");
	char	   *target_value;
	char	   *period;

	if (getKeyJsonValueFromContainer(&record->root, "target", 6, &tv) != NULL &&
		tv.type == jbvBinary)
		target = tv.val.binary.data;
	target_value = field_in(target, "value");
	period = field_in(target, "period");
	if (period == NULL)
		period = field(record, "period");
	return psprintf("Fortschritt: %s / %s (%s)",
					current ? current : "0",
					target_value ? target_value : "?",
					period ? period : "unbekannt");
}

static char *
content_field(Jsonb *record)
{
	char	   *c = field(record, "content");

	return c ? c : pstrdup("");
}

/* [status] title — description (faellig: dueDate), empty parts omitted */
static char *
task_content(Jsonb *record)
{
	StringInfoData buf;
	char	   *status = field(record, "status");
	char	   *title = field(record, "title");
	char	   *description = field(record, "description");
	char	   *due = field(record, "dueDate");

	initStringInfo(&buf);
	if (status)
		appendStringInfo(&buf, "[%s]", status);
	if (title)
		appendStringInfo(&buf, "%s%s", buf.len ? " " : "", title);
	if (description)
		appendStringInfo(&buf, "%s\xE2\x80\x94 %s", buf.len ? " " : "", description);
	if (due)
		appendStringInfo(&buf, "%s(faellig: %s)", buf.len ? " " : "", due);
	return buf.data;
}

/* title @ startDate in location, empty parts omitted */
static char *
event_content(Jsonb *record)
{
	StringInfoData buf;
	char	   *title = field(record, "title");
	char	   *start = field(record, "startDate");
	char	   *location = field(record, "location");

	initStringInfo(&buf);
	if (title)
		appendStringInfoString(&buf, title);
	if (start)
		appendStringInfo(&buf, "%s@ %s", buf.len ? " " : "", start);
	if (location)
		appendStringInfo(&buf, "%sin %s", buf.len ? " " : "", location);
	return buf.data;
}

/* A value with nothing to show: blank text, or an empty object or array. */
static bool
blank_value(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return *s == '\0' || strcmp(s, "{}") == 0 || strcmp(s, "[]") == 0;
}

/* The non-empty fields, one per line (an object or array as its JSON text). */
static char *
profile_content(Jsonb *record)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(profile_fields); i++)
	{
		char	   *v = field(record, profile_fields[i]);

		if (v == NULL || blank_value(v))
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, '\n');
		appendStringInfoString(&buf, v);
	}
	return buf.data;
}

static const ResolverSpec *
find_resolver(const char *module)
{
	int			i;

	for (i = 0; i < lengthof(resolvers); i++)
		if (strcmp(resolvers[i].module, module) == 0)
			return &resolvers[i];
	return NULL;
}

static ResolvedInput *
make_input(const ResolverSpec *spec, const char *table, Jsonb *record)
{
	ResolvedInput *in = palloc0(sizeof(ResolvedInput));
	char	   *title = spec->fixed_title ? NULL : field(record, "title");
	char	   *content = spec->content(record);

	in->module = pstrdup(spec->module);
	in->table = pstrdup(table);
	in->title = title ? title : pstrdup(spec->label);
	in->content = truncate_chars(content, spec->max_chars);
	return in;
}

static bool
deleted(Jsonb *record)
{
	return field(record, "deletedAt") != NULL;
}

/* One input reference; NULL when it is dropped. */
static ResolvedInput *
resolve_one(const ResolverSpec *spec, const char *table, const char *id,
			const DecryptScope *scope)
{
	const char *app_id = mana_ai_encrypted_module_app(spec->module);
	Jsonb	   *record;

	if (app_id == NULL)
	{
		/* goals: plaintext, no grant, no audit */
		record = mana_ai_replay_record(scope->user_id, "companion", table, id);
		if (record == NULL || !JB_ROOT_IS_OBJECT(record) || deleted(record))
			return NULL;
		return make_input(spec, table, record);
	}
	if (scope->mdk == NULL || scope->grant == NULL)
		return NULL;			/* no usable grant: dropped, nothing decrypted */
	record = mana_ai_decrypt_record(scope, app_id, table, id);
	return record ? make_input(spec, table, record) : NULL;
}

List *
mana_ai_resolve_inputs(const char *user_id, const char *mission_id, Jsonb *mission,
					   const unsigned char *mdk, const char *iteration_id)
{
	JsonbValue	iv;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *volatile result = NIL;
	bool		present;
	MissionGrant *volatile grant = NULL;
	DecryptScope scope = {user_id, mission_id, iteration_id, NULL, mdk};

	if (mission == NULL || !JB_ROOT_IS_OBJECT(mission) ||
		getKeyJsonValueFromContainer(&mission->root, "inputs", 6, &iv) == NULL ||
		iv.type != jbvBinary || !JsonContainerIsArray(iv.val.binary.data))
		return NIL;
	if (mdk != NULL)
		grant = mana_ai_mission_grant(mission, &present);
	scope.grant = grant;

	PG_TRY();
	{
		it = JsonbIteratorInit(iv.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *module;
			char	   *table;
			char	   *id;
			const ResolverSpec *spec;
			ResolvedInput *in;

			CHECK_FOR_INTERRUPTS();
			if (tok != WJB_ELEM || v.type != jbvBinary)
				continue;
			module = field_in(v.val.binary.data, "module");
			table = field_in(v.val.binary.data, "table");
			id = field_in(v.val.binary.data, "id");
			spec = module ? find_resolver(module) : NULL;
			if (spec == NULL || table == NULL || id == NULL)
				continue;		/* unknown module or broken reference: dropped */
			in = resolve_one(spec, table, id, &scope);
			if (in != NULL)
				result = lappend(result, in);
		}
	}
	PG_FINALLY();
	{
		grant_free(grant);
	}
	PG_END_TRY();
	return result;
}

/* The resolved inputs as a jsonb array of {module, table, title, content}. */
static Jsonb *
inputs_to_jsonb(List *inputs)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, inputs)
	{
		ResolvedInput *in = lfirst(lc);

		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, "{\"module\":");
		escape_json(&buf, in->module);
		appendStringInfoString(&buf, ",\"table\":");
		escape_json(&buf, in->table);
		appendStringInfoString(&buf, ",\"title\":");
		escape_json(&buf, in->title);
		appendStringInfoString(&buf, ",\"content\":");
		escape_json(&buf, in->content);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, ']');
	return jb_from_cstring(buf.data);
}

/*
 * The mission's grant unwrapped (when it has one) and its inputs resolved
 * with the MDK, which lives on this frame only and is wiped however the
 * frame is left.
 */
List *
mana_ai_resolve_mission_inputs(const char *user_id, const char *mission_id,
							   Jsonb *mission, const char *iteration_id,
							   bool count_grant_skips)
{
	unsigned char mdk[32];
	Jsonb	   *grant = jb_member_object(mission, "grant");
	volatile bool have_mdk = false;
	List	   *volatile inputs = NIL;

	PG_TRY();
	{
		if (grant != NULL)
		{
			const char *outcome = mana_ai_unwrap_grant(grant, mission_id, mdk);

			have_mdk = strcmp(outcome, "ok") == 0;
			if (!have_mdk && count_grant_skips)
				mana_ai_metric_inc_labeled(ML_GRANT_SKIPS, outcome, 1);
		}
		inputs = mana_ai_resolve_inputs(user_id, mission_id, mission,
										have_mdk ? mdk : NULL, iteration_id);
	}
	PG_FINALLY();
	{
		explicit_bzero(mdk, sizeof(mdk));
	}
	PG_END_TRY();
	return inputs;
}

PG_FUNCTION_INFO_V1(mana_ai_resolve_inputs_sql);
Datum
mana_ai_resolve_inputs_sql(PG_FUNCTION_ARGS)
{
	char	   *user_id;
	char	   *mission_id;
	Jsonb	   *mission = mana_ai_load_mission_args(fcinfo, &user_id, &mission_id);

	if (mission == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(inputs_to_jsonb(mana_ai_resolve_mission_inputs(user_id, mission_id,
																	  mission, NULL, false)));
}
