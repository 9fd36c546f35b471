/*
 * lww.c: field-level last-writer-wins merge of sync_changes rows (SPEC 2)
 * and the SQL aggregates mana_ai.lww_merge / mana_ai.lww_merge_report.
 *
 * Owns the fold rules: the first non-delete row starts the record, later
 * fields take when their stamp is not older (ties: the later row wins), a
 * delete is terminal, stamps compare as instants (src/core/iso8601.c),
 * bad rows are skipped and counted.  Works on jsonb values directly, never
 * through text.  Must never depend on the order of rows beyond the order it
 * is fed: callers feed rows ORDER BY created_at, id.
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/iso8601.h"
#include "projection/lww.h"
#include "shared/instants.h"
#include "shared/jsonb_write.h"

/* One field of the record being merged: a value, a stamp, or both. */
struct LwwField
{
	char	   *key;
	int			keylen;
	bool		has_value;
	JsonbValue	value;
	bool		has_stamp;
	int64		stamp;			/* microseconds since the Unix epoch */
	JsonbValue	stamp_text;		/* jbvString, as the writer spelled it */
};

/* How an incoming entry combines with the field of the same key. */
typedef enum MergeMode
{
	MERGE_LWW,					/* take value+stamp if not older */
	MERGE_SET_STAMP				/* the starting row's stamps: set as given */
} MergeMode;

/* jsonb's own key order: shorter first, then bytewise. */
static int
key_cmp(const char *a, int alen, const char *b, int blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/* Copy v (scalar or binary container) into the current memory context. */
static void
copy_jsonb_value(JsonbValue *dst, const JsonbValue *src)
{
	*dst = *src;
	switch (src->type)
	{
		case jbvString:
			dst->val.string.val = palloc(src->val.string.len + 1);
			memcpy(dst->val.string.val, src->val.string.val, src->val.string.len);
			dst->val.string.val[src->val.string.len] = '\0';
			break;
		case jbvNumeric:
			dst->val.numeric = (Numeric) palloc(VARSIZE(src->val.numeric));
			memcpy(dst->val.numeric, src->val.numeric, VARSIZE(src->val.numeric));
			break;
		case jbvBinary:
			dst->val.binary.data = palloc(src->val.binary.len);
			memcpy(dst->val.binary.data, src->val.binary.data, src->val.binary.len);
			break;
		default:
			break;
	}
}

static void
make_string_value(JsonbValue *dst, const char *s, int len)
{
	dst->type = jbvString;
	dst->val.string.len = len;
	dst->val.string.val = palloc(len + 1);
	memcpy(dst->val.string.val, s, len);
	dst->val.string.val[len] = '\0';
}

/* created_at as the stamp text of a field that carried none. */
static void
stamp_text_from_timestamp(JsonbValue *dst, TimestampTz ts)
{
	char	   *text = mana_ai_iso_utc(ts, 6);

	/* lww_row_is_wellformed refused rows with an infinite created_at */
	if (text == NULL)
		elog(ERROR, "timestamp out of range");
	dst->type = jbvString;
	dst->val.string.val = text;
	dst->val.string.len = strlen(text);
}

/*
 * Resolve a stamp value: a parseable string keeps its own text; anything
 * else falls back to created_at (and counts as a bad stamp when present).
 */
static void
resolve_stamp(LwwState *state, JsonbValue *given, TimestampTz created_at,
			  LwwField *out)
{
	int64_t		usec;

	out->has_stamp = true;
	if (given != NULL && given->type == jbvString &&
		iso8601_parse(given->val.string.val, given->val.string.len, &usec))
	{
		out->stamp = usec;
		copy_jsonb_value(&out->stamp_text, given);
		return;
	}
	if (given != NULL)
		state->bad_stamps++;
	out->stamp = mana_ai_unix_usec(created_at);
	stamp_text_from_timestamp(&out->stamp_text, created_at);
}

/*
 * Merge the sorted incoming entries into the state's sorted fields
 * (both in jsonb key order), replacing the state's array.
 */
static void
merge_fields(LwwState *state, LwwField *in, int nin, MergeMode mode)
{
	LwwField   *out = palloc(sizeof(LwwField) * (state->nfields + nin + 1));
	int			i = 0,
				j = 0,
				n = 0;

	while (i < state->nfields || j < nin)
	{
		int			c;

		if (i >= state->nfields)
			c = 1;
		else if (j >= nin)
			c = -1;
		else
			c = key_cmp(state->fields[i].key, state->fields[i].keylen,
						in[j].key, in[j].keylen);

		if (c < 0)
			out[n++] = state->fields[i++];
		else if (c > 0)
			out[n++] = in[j++];
		else
		{
			LwwField	cur = state->fields[i++];
			LwwField   *inc = &in[j++];

			if (mode == MERGE_SET_STAMP)
			{
				cur.has_stamp = true;
				cur.stamp = inc->stamp;
				cur.stamp_text = inc->stamp_text;
			}
			else if (!cur.has_stamp || inc->stamp >= cur.stamp)
			{
				/* not older (ties: the later row wins) or no stamp yet */
				if (inc->has_value)
				{
					cur.has_value = true;
					cur.value = inc->value;
				}
				if (inc->has_stamp)
				{
					cur.has_stamp = true;
					cur.stamp = inc->stamp;
					cur.stamp_text = inc->stamp_text;
				}
			}
			out[n++] = cur;
		}
	}
	if (state->fields)
		pfree(state->fields);
	state->fields = out;
	state->nfields = n;
}

static bool
is_object(Jsonb *jb)
{
	return jb == NULL || (JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb));
}

static int
object_size(Jsonb *jb)
{
	return jb == NULL ? 0 : (int) JB_ROOT_COUNT(jb);
}

/*
 * The top-level entries of object jb as fields, in jsonb key order.
 * With_values: each entry's value; stamps: looked up in stamps_of (or
 * created_at) when stamp_each, otherwise none.
 */
static LwwField *
collect_data_fields(LwwState *state, Jsonb *jb, Jsonb *stamps_of,
					bool stamp_each, TimestampTz created_at, int *nout)
{
	LwwField   *arr = palloc0(sizeof(LwwField) * (object_size(jb) + 1));
	int			n = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	*nout = 0;
	if (jb == NULL)
		return arr;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		LwwField   *f;

		if (tok != WJB_KEY)
			continue;
		/* the stamps key is ours; a client cannot smuggle stamps in data */
		if (v.val.string.len == (int) strlen(LWW_STAMPS_KEY) &&
			memcmp(v.val.string.val, LWW_STAMPS_KEY, v.val.string.len) == 0)
		{
			(void) JsonbIteratorNext(&it, &v, true);
			continue;
		}
		f = &arr[n++];
		f->key = pnstrdup(v.val.string.val, v.val.string.len);
		f->keylen = v.val.string.len;
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		f->has_value = true;
		copy_jsonb_value(&f->value, &v);
		if (stamp_each)
		{
			JsonbValue	sv;
			JsonbValue *given = NULL;

			if (stamps_of != NULL)
				given = getKeyJsonValueFromContainer(&stamps_of->root, f->key,
													 f->keylen, &sv);
			resolve_stamp(state, given, created_at, f);
		}
	}
	*nout = n;
	return arr;
}

/* The entries of a stamps object as stamp-only fields. */
static LwwField *
collect_stamp_fields(LwwState *state, Jsonb *stamps, TimestampTz created_at,
					 bool from_snapshot, int *nout)
{
	LwwField   *arr = palloc0(sizeof(LwwField) * (object_size(stamps) + 1));
	int			n = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	*nout = 0;
	if (stamps == NULL)
		return arr;
	it = JsonbIteratorInit(&stamps->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		LwwField   *f;
		JsonbValue	sv;

		if (tok != WJB_KEY)
			continue;
		f = &arr[n];
		f->key = pnstrdup(v.val.string.val, v.val.string.len);
		f->keylen = v.val.string.len;
		(void) JsonbIteratorNext(&it, &sv, true);
		if (from_snapshot)
		{
			int64_t		usec;

			/* our own stamps always parse; drop one that does not */
			if (sv.type != jbvString ||
				!iso8601_parse(sv.val.string.val, sv.val.string.len, &usec))
			{
				state->bad_stamps++;
				continue;
			}
			f->has_stamp = true;
			f->stamp = usec;
			copy_jsonb_value(&f->stamp_text, &sv);
		}
		else
			resolve_stamp(state, &sv, created_at, f);
		n++;
	}
	*nout = n;
	return arr;
}

LwwState *
lww_state_create(MemoryContext cxt, const char *record_id)
{
	LwwState   *state = MemoryContextAllocZero(cxt, sizeof(LwwState));

	state->cxt = cxt;
	state->record_id = MemoryContextStrdup(cxt, record_id);
	return state;
}

/* Put {"id": record_id} in as the first field of a starting record. */
static void
start_with_id(LwwState *state)
{
	LwwField	idf;

	memset(&idf, 0, sizeof(idf));
	idf.key = pstrdup("id");
	idf.keylen = 2;
	idf.has_value = true;
	make_string_value(&idf.value, state->record_id, strlen(state->record_id));
	merge_fields(state, &idf, 1, MERGE_LWW);
	state->started = true;
}

void
lww_state_load(LwwState *state, Jsonb *record)
{
	MemoryContext old;
	LwwField   *vals;
	LwwField   *stamps;
	int			nvals,
				nstamps;
	JsonbValue	sv;
	JsonbValue *stamps_val;
	Jsonb	   *stamps_jb = NULL;

	if (record == NULL || !is_object(record))
		return;
	old = MemoryContextSwitchTo(state->cxt);
	vals = collect_data_fields(state, record, NULL, false, 0, &nvals);
	merge_fields(state, vals, nvals, MERGE_LWW);
	stamps_val = getKeyJsonValueFromContainer(&record->root, LWW_STAMPS_KEY,
											  strlen(LWW_STAMPS_KEY), &sv);
	if (stamps_val != NULL && stamps_val->type == jbvBinary &&
		JsonContainerIsObject(stamps_val->val.binary.data))
		stamps_jb = JsonbValueToJsonb(stamps_val);
	stamps = collect_stamp_fields(state, stamps_jb, 0, true, &nstamps);
	merge_fields(state, stamps, nstamps, MERGE_SET_STAMP);
	state->started = true;
	MemoryContextSwitchTo(old);
}

bool
lww_row_is_wellformed(const char *op, Jsonb *data, Jsonb *field_timestamps,
					  TimestampTz created_at)
{
	if (strcmp(op, "delete") == 0)
		return true;
	return is_object(data) && is_object(field_timestamps) &&
		!TIMESTAMP_NOT_FINITE(created_at);
}

void
lww_fold_row(LwwState *state, const char *op, Jsonb *data,
			 Jsonb *field_timestamps, TimestampTz created_at)
{
	MemoryContext old;
	LwwField   *in;
	int			nin;

	if (state->tombstoned)
	{
		state->rows_applied++;
		return;
	}
	if (strcmp(op, "delete") == 0)
	{
		state->tombstoned = true;
		state->rows_applied++;
		return;
	}
	if (!is_object(data) || !is_object(field_timestamps) ||
		TIMESTAMP_NOT_FINITE(created_at))
	{
		state->rows_skipped++;
		return;
	}

	old = MemoryContextSwitchTo(state->cxt);
	if (!state->started)
	{
		/* {"id": record_id} ∪ data; the row's stamps become the record's */
		start_with_id(state);
		in = collect_data_fields(state, data, NULL, false, created_at, &nin);
		merge_fields(state, in, nin, MERGE_LWW);
		pfree(in);
		in = collect_stamp_fields(state, field_timestamps, created_at, false, &nin);
		merge_fields(state, in, nin, MERGE_SET_STAMP);
	}
	else
	{
		in = collect_data_fields(state, data, field_timestamps, true,
								 created_at, &nin);
		merge_fields(state, in, nin, MERGE_LWW);
	}
	pfree(in);
	state->rows_applied++;
	MemoryContextSwitchTo(old);
}

static void
push_string_key(JsonbParseState **ps, const char *key, int keylen)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = keylen;
	pushJsonbValue(ps, WJB_KEY, &k);
}

/*
 * The merged record: every field with a value, and under
 * __fieldTimestamps every field with a stamp, written straight into
 * jsonb's binary format (jsonb_write.c): the fields are already unique
 * and in jsonb key order, and nested values are copied as they are.
 */
Jsonb *
lww_state_result(LwwState *state)
{
	JsonbPairRef *pairs;
	int			n = 0;
	StringInfoData stamps;
	JsonbValue	stamps_val;
	JsonbPairRef stamps_pair = {LWW_STAMPS_KEY, (int) strlen(LWW_STAMPS_KEY), &stamps_val};
	bool		stamps_placed = false;

	if (state->tombstoned || !state->started)
		return NULL;

	pairs = palloc(sizeof(JsonbPairRef) * (state->nfields + 1));
	for (int i = 0; i < state->nfields; i++)
	{
		LwwField   *f = &state->fields[i];

		if (f->has_stamp)
			pairs[n++] = (JsonbPairRef) {f->key, f->keylen, &f->stamp_text};
	}
	/* a container of its own, int-aligned at its start, then copied in */
	initStringInfo(&stamps);
	jsonb_write_object(&stamps, pairs, n);
	stamps_val.type = jbvBinary;
	stamps_val.val.binary.data = (JsonbContainer *) stamps.data;
	stamps_val.val.binary.len = stamps.len;

	n = 0;
	for (int i = 0; i < state->nfields; i++)
	{
		LwwField   *f = &state->fields[i];

		if (!f->has_value)
			continue;
		/* data never carries the stamps key (collect_data_fields drops it) */
		Assert(key_cmp(stamps_pair.key, stamps_pair.keylen, f->key, f->keylen) != 0);
		if (!stamps_placed && key_cmp(stamps_pair.key, stamps_pair.keylen, f->key, f->keylen) < 0)
		{
			pairs[n++] = stamps_pair;
			stamps_placed = true;
		}
		pairs[n++] = (JsonbPairRef) {f->key, f->keylen, &f->value};
	}
	if (!stamps_placed)
		pairs[n++] = stamps_pair;
	return jsonb_from_pairs(pairs, n);
}

/* ---- SQL aggregates ---- */

PG_FUNCTION_INFO_V1(mana_ai_lww_merge_trans);
PG_FUNCTION_INFO_V1(mana_ai_lww_merge_final);
PG_FUNCTION_INFO_V1(mana_ai_lww_merge_report_final);

/*
 * Transition: (state, record_id, op, data, field_timestamps, created_at).
 * A row with a NULL record_id, op or created_at is skipped and counted.
 */
Datum
mana_ai_lww_merge_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	LwwState   *state;
	char	   *op;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "mana_ai_lww_merge_trans called in non-aggregate context");

	if (PG_ARGISNULL(0))
	{
		char	   *rid = PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1));

		state = lww_state_create(aggcxt, rid);
	}
	else
		state = (LwwState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(5))
	{
		state->rows_skipped++;
		PG_RETURN_POINTER(state);
	}
	op = text_to_cstring(PG_GETARG_TEXT_PP(2));
	lww_fold_row(state, op,
				 PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3),
				 PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4),
				 PG_GETARG_TIMESTAMPTZ(5));
	pfree(op);
	PG_RETURN_POINTER(state);
}

Datum
mana_ai_lww_merge_final(PG_FUNCTION_ARGS)
{
	LwwState   *state;
	Jsonb	   *res;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (LwwState *) PG_GETARG_POINTER(0);
	res = lww_state_result(state);
	if (res == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(res);
}

/* {record, rowsApplied, skippedRows, badStamps, tombstoned}: for tests and DBAs. */
Datum
mana_ai_lww_merge_report_final(PG_FUNCTION_ARGS)
{
	LwwState   *state = PG_ARGISNULL(0) ? NULL : (LwwState *) PG_GETARG_POINTER(0);
	Jsonb	   *rec = state ? lww_state_result(state) : NULL;
	JsonbParseState *ps = NULL;
	JsonbValue	v;
	JsonbValue *res;

	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	push_string_key(&ps, "record", 6);
	if (rec)
	{
		v.type = jbvBinary;
		v.val.binary.data = &rec->root;
		v.val.binary.len = VARSIZE(rec) - VARHDRSZ;
	}
	else
		v.type = jbvNull;
	pushJsonbValue(&ps, WJB_VALUE, &v);

#define PUSH_COUNT(name, n) do { \
	push_string_key(&ps, name, strlen(name)); \
	v.type = jbvNumeric; \
	v.val.numeric = int64_to_numeric(n); \
	pushJsonbValue(&ps, WJB_VALUE, &v); \
} while (0)
	PUSH_COUNT("rowsApplied", state ? state->rows_applied : 0);
	PUSH_COUNT("skippedRows", state ? state->rows_skipped : 0);
	PUSH_COUNT("badStamps", state ? state->bad_stamps : 0);
#undef PUSH_COUNT
	push_string_key(&ps, "tombstoned", 10);
	v.type = jbvBool;
	v.val.boolean = state ? state->tombstoned : false;
	pushJsonbValue(&ps, WJB_VALUE, &v);
	res = pushJsonbValue(&ps, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}

PG_FUNCTION_INFO_V1(mana_ai_iso_timestamp);

/*
 * SQL: mana_ai.iso_timestamp(text) → timestamptz, NULL when the text is not
 * a strict zoned ISO-8601 stamp.  Lets the views type client strings
 * without one bad value failing a whole query.
 */
Datum
mana_ai_iso_timestamp(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int64_t		usec;

	if (!iso8601_parse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &usec))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(mana_ai_from_unix_usec(usec));
}
