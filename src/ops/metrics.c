/*
 * metrics.c: SPEC 10 counters and histograms in shared memory, and their
 * two readers (the mana_ai.metrics view and metrics_prometheus()).
 *
 * Owns the metric names (kept from the original service, plus the
 * planner's tool calls, rounds, LLM errors and fallbacks) and the label
 * slots.  Counters are atomics so the hot path takes no lock; a label
 * value is given a slot once, under the lock, and kept until restart.
 * Must never block a tick: when a family's slots are full the observation
 * goes to the label "other" (both labels of a two-label family).  Must
 * never store a label a user chose freely: a table label is one of the
 * known input tables or "other", and every label is cut on a UTF-8
 * boundary with invalid bytes replaced (an invalid label makes the
 * Prometheus exporter panic on every scrape).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#include "ops/metrics.h"
#include "ops/shmem.h"

/*
 * Label slots per family: a value keeps its slot until restart, so the
 * count bounds what a scrape can grow to.  The tool-call family holds the
 * catalog's tools (62 shipped) times two outcomes; model names come from
 * mana_ai.llm_model only.  A two-label family stores "v1\x1fv2".
 */
#define LABEL_LEN 264
#define LABEL_SEP '\x1f'

static const int family_slots[ML_NUM_FAMILIES] = {24, 24, 24, 24, 192, 48, 32, 16, 72, 48, 8};
#define TOTAL_SLOTS (24 * 4 + 192 + 48 + 32 + 16 + 72 + 48 + 8)

static const double seconds_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
};
static const double rounds_bounds[] = {1, 2, 3, 4, 5, 6, 8, 10, 15, 20};
#define MAX_BUCKETS lengthof(seconds_bounds)

typedef struct LabeledFamily
{
	pg_atomic_uint32 used;		/* slots handed out so far */
	int			first;			/* its first slot in the pool */
} LabeledFamily;

typedef struct Histogram
{
	pg_atomic_uint64 bucket[MAX_BUCKETS];	/* non-cumulative counts */
	pg_atomic_uint64 count;
	pg_atomic_uint64 sum_usec;	/* the sum times 1e6 */
} Histogram;

typedef struct MetricsShared
{
	pg_atomic_uint64 counter[MC_NUM_COUNTERS];
	pg_atomic_uint64 gauge[MG_NUM_GAUGES];
	LabeledFamily family[ML_NUM_FAMILIES];
	Histogram	histogram[MH_NUM_HISTOGRAMS];
	char		label[TOTAL_SLOTS][LABEL_LEN];
	pg_atomic_uint64 value[TOTAL_SLOTS];
} MetricsShared;

static MetricsShared *metrics = NULL;

static const char *const counter_names[MC_NUM_COUNTERS] = {
	"mana_ai_ticks_total",
	"mana_ai_plans_produced_total",
	"mana_ai_plans_written_back_total",
	"mana_ai_parse_failures_total",
	"mana_ai_mission_errors_total",
	"mana_ai_snapshots_new_total",
	"mana_ai_snapshots_updated_total",
	"mana_ai_snapshot_rows_applied_total",
	"mana_ai_lock_timeouts_total",
	"mana_ai_llm_rate_limited_total",
};

static const char *const gauge_names[MG_NUM_GAUGES] = {
	"mana_ai_llm_requests_in_flight",
};

static const char *const family_names[ML_NUM_FAMILIES] = {
	"mana_ai_decrypts_total",
	"mana_ai_grant_scope_violations_total",
	"mana_ai_grant_skips_total",
	"mana_ai_agent_decisions_total",
	"mana_ai_tool_calls_total",
	"mana_ai_llm_errors_total",
	"mana_ai_llm_fallbacks_total",
	"mana_ai_model_breaker_open_total",
	"mana_ai_injection_flags_total",
	"mana_ai_llm_tokens_total",
	"mana_ai_llm_limit_wait_seconds_total",
};

/* Stored value / divisor is shown (the wait is stored in microseconds). */
static const double family_divisor[ML_NUM_FAMILIES] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1e6};

/* Second key NULL: a one-label family. */
static const char *const family_label_keys[ML_NUM_FAMILIES][2] = {
	{"table", NULL}, {"table", NULL}, {"reason", NULL}, {"decision", NULL},
	{"tool", "outcome"}, {"model", "kind"}, {"from", "to"}, {"model", NULL}, {"tool", NULL},
	{"model", "direction"}, {"reason", NULL},
};

/*
 * The input tables a {table} label may name (SPEC 1.1, 6); a mission's
 * inputs name tables freely, so any other name counts as "other" and no
 * user can take the slots every other user's counts need.
 */
static const char *const known_tables[] = {
	"calendar", "companionGoals", "events", "journal", "kontext", "kontextDoc",
	"notes", "tasks", "todo", "userContext",
};

static const char *const histogram_names[MH_NUM_HISTOGRAMS] = {
	"mana_ai_tick_duration_seconds",
	"mana_ai_planner_request_duration_seconds",
	"mana_ai_planner_rounds",
};

static const double *
histogram_bounds(int h, int *n)
{
	if (h == MH_PLANNER_ROUNDS)
	{
		*n = lengthof(rounds_bounds);
		return rounds_bounds;
	}
	*n = lengthof(seconds_bounds);
	return seconds_bounds;
}

Size
mana_ai_metrics_shmem_size(void)
{
	return MAXALIGN(sizeof(MetricsShared));
}

void
mana_ai_metrics_shmem_attach(void)
{
	bool		found;
	int			first = 0;

	StaticAssertStmt(24 * 4 + 192 + 48 + 32 + 16 + 72 + 48 + 8 == TOTAL_SLOTS, "slot pool size");
	metrics = ShmemInitStruct("mana_ai metrics", sizeof(MetricsShared), &found);
	if (found)
		return;
	memset(metrics, 0, sizeof(MetricsShared));
	for (int i = 0; i < MC_NUM_COUNTERS; i++)
		pg_atomic_init_u64(&metrics->counter[i], 0);
	for (int i = 0; i < MG_NUM_GAUGES; i++)
		pg_atomic_init_u64(&metrics->gauge[i], 0);
	for (int f = 0; f < ML_NUM_FAMILIES; f++)
	{
		pg_atomic_init_u32(&metrics->family[f].used, 0);
		metrics->family[f].first = first;
		first += family_slots[f];
	}
	for (int s = 0; s < TOTAL_SLOTS; s++)
		pg_atomic_init_u64(&metrics->value[s], 0);
	for (int h = 0; h < MH_NUM_HISTOGRAMS; h++)
	{
		for (int b = 0; b < MAX_BUCKETS; b++)
			pg_atomic_init_u64(&metrics->histogram[h].bucket[b], 0);
		pg_atomic_init_u64(&metrics->histogram[h].count, 0);
		pg_atomic_init_u64(&metrics->histogram[h].sum_usec, 0);
	}
}

void
mana_ai_metric_inc(ManaAiCounter counter, uint64 n)
{
	if (metrics == NULL || counter < 0 || counter >= MC_NUM_COUNTERS)
		return;
	pg_atomic_fetch_add_u64(&metrics->counter[counter], n);
}

/*
 * Copy src into dst (size bytes) as valid UTF-8: whole characters only,
 * an invalid byte becomes '?', the separator of two-label values '_'.
 */
static void
clip_label(char *dst, const char *src, size_t size)
{
	const unsigned char *s = (const unsigned char *) src;
	size_t		len = 0;

	while (*s)
	{
		int			l = pg_utf_mblen(s);
		bool		legal = true;

		for (int k = 1; k < l && legal; k++)
			legal = s[k] != '\0';
		legal = legal && pg_utf8_islegal(s, l);
		if (!legal)
			l = 1;
		if (len + l > size - 1)
			break;
		if (!legal)
			dst[len] = '?';
		else if (*s == (unsigned char) LABEL_SEP)
			dst[len] = '_';
		else
			memcpy(dst + len, s, l);
		len += l;
		s += l;
	}
	dst[len] = '\0';
}

/* Find the pool slot of label in family, or -1; reads only published slots. */
static int
find_label_slot(int f, const char *label)
{
	LabeledFamily *fam = &metrics->family[f];
	uint32		used = pg_atomic_read_u32(&fam->used);

	pg_read_barrier();
	for (uint32 s = 0; s < used && s < family_slots[f]; s++)
		if (strncmp(metrics->label[fam->first + s], label, LABEL_LEN - 1) == 0)
			return fam->first + (int) s;
	return -1;
}

/* label is the stored form ("v" or "v1\x1fv2"); other is the overflow's. */
static void
inc_slot(int f, const char *label, const char *other, uint64 n)
{
	LabeledFamily *fam = &metrics->family[f];
	int			slot = find_label_slot(f, label);

	if (slot < 0)
	{
		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		slot = find_label_slot(f, label);
		if (slot < 0)
		{
			uint32		used = pg_atomic_read_u32(&fam->used);
			bool		is_other = strcmp(label, other) == 0;

			if (used < family_slots[f] - 1 || (used == family_slots[f] - 1 && is_other))
			{
				strlcpy(metrics->label[fam->first + used], label, LABEL_LEN);
				pg_write_barrier();
				pg_atomic_write_u32(&fam->used, used + 1);
				slot = fam->first + (int) used;
			}
		}
		LWLockRelease(mana_ai_shared->lock);
		/* Slots exhausted: count it as "other" rather than lose it. */
		if (slot < 0 && strcmp(label, other) != 0)
		{
			inc_slot(f, other, other, n);
			return;
		}
		if (slot < 0)
			return;
	}
	pg_atomic_fetch_add_u64(&metrics->value[slot], n);
}

void
mana_ai_metric_inc_labeled(ManaAiLabeledCounter family, const char *label, uint64 n)
{
	char		clipped[LABEL_LEN];

	if (metrics == NULL || mana_ai_shared == NULL || family < 0 || family >= ML_NUM_FAMILIES ||
		family_label_keys[family][1] != NULL)
		return;
	if (label == NULL || label[0] == '\0')
		label = "unknown";
	else if (family == ML_DECRYPTS || family == ML_GRANT_SCOPE_VIOLATIONS)
	{
		const char *known = "other";

		for (int i = 0; i < lengthof(known_tables); i++)
			if (strcmp(label, known_tables[i]) == 0)
				known = known_tables[i];
		label = known;
	}
	clip_label(clipped, label, sizeof(clipped));
	inc_slot(family, clipped, "other", n);
}

void
mana_ai_metric_inc_labeled2(ManaAiLabeledCounter family, const char *label1,
							const char *label2, uint64 n)
{
	char		label[LABEL_LEN];
	char		other[16];
	char	   *sep;

	if (metrics == NULL || mana_ai_shared == NULL || family < 0 || family >= ML_NUM_FAMILIES ||
		family_label_keys[family][1] == NULL)
		return;

	/* A separator inside a value would split it wrong: clip_label never stores one. */
	clip_label(label, label1 && label1[0] ? label1 : "unknown", LABEL_LEN / 2);
	sep = label + strlen(label);
	*sep = LABEL_SEP;
	clip_label(sep + 1, label2 && label2[0] ? label2 : "unknown", LABEL_LEN - (sep + 1 - label));
	snprintf(other, sizeof(other), "other%cother", LABEL_SEP);
	inc_slot(family, label, other, n);
}

void
mana_ai_metric_set(ManaAiGauge gauge, uint64 value)
{
	if (metrics == NULL || gauge < 0 || gauge >= MG_NUM_GAUGES)
		return;
	pg_atomic_write_u64(&metrics->gauge[gauge], value);
}

void
mana_ai_metric_observe(ManaAiHistogram histogram, double value)
{
	Histogram  *h;
	const double *bounds;
	int			nb;

	if (metrics == NULL || histogram < 0 || histogram >= MH_NUM_HISTOGRAMS)
		return;
	h = &metrics->histogram[histogram];
	bounds = histogram_bounds(histogram, &nb);
	if (value < 0)
		value = 0;
	for (int b = 0; b < nb; b++)
		if (value <= bounds[b])
		{
			pg_atomic_fetch_add_u64(&h->bucket[b], 1);
			break;
		}
	pg_atomic_fetch_add_u64(&h->count, 1);
	pg_atomic_fetch_add_u64(&h->sum_usec, (uint64) (value * 1e6));
}

/* One metric sample, as both readers see it. */
typedef struct Sample
{
	const char *name;
	int			n_labels;		/* 0, 1 or 2 */
	const char *label_key[2];
	const char *label_value[2];
	double		value;
} Sample;

typedef void (*sample_cb) (const Sample *s, void *arg);

/* The samples of one labeled family, two-label values split apart. */
static void
family_samples(int f, sample_cb cb, void *arg)
{
	LabeledFamily *fam = &metrics->family[f];
	uint32		used = pg_atomic_read_u32(&fam->used);

	pg_read_barrier();
	for (uint32 s = 0; s < used && s < family_slots[f]; s++)
	{
		char		stored[LABEL_LEN];
		char	   *sep;
		Sample		smp = {family_names[f], 1, {family_label_keys[f][0], family_label_keys[f][1]},
		{stored, NULL}, pg_atomic_read_u64(&metrics->value[fam->first + s]) / family_divisor[f]};

		strlcpy(stored, metrics->label[fam->first + s], sizeof(stored));
		if (family_label_keys[f][1] != NULL)
		{
			sep = strchr(stored, LABEL_SEP);
			smp.n_labels = 2;
			smp.label_value[1] = sep ? sep + 1 : "";
			if (sep)
				*sep = '\0';
		}
		cb(&smp, arg);
	}
}

/* Walk every sample in a stable order; histograms expand Prometheus-style. */
static void
for_each_sample(sample_cb cb, void *arg)
{
	char		le[32];

	for (int i = 0; i < MC_NUM_COUNTERS; i++)
	{
		Sample		s = {counter_names[i], 0, {NULL, NULL}, {NULL, NULL},
		(double) pg_atomic_read_u64(&metrics->counter[i])};

		cb(&s, arg);
	}
	for (int i = 0; i < MG_NUM_GAUGES; i++)
	{
		Sample		s = {gauge_names[i], 0, {NULL, NULL}, {NULL, NULL},
		(double) pg_atomic_read_u64(&metrics->gauge[i])};

		cb(&s, arg);
	}
	for (int f = 0; f < ML_NUM_FAMILIES; f++)
		family_samples(f, cb, arg);
	for (int h = 0; h < MH_NUM_HISTOGRAMS; h++)
	{
		Histogram  *hist = &metrics->histogram[h];
		uint64		cumulative = 0;
		char		bucket_name[96];
		char		sum_name[96];
		char		count_name[96];
		int			nb;
		const double *bounds = histogram_bounds(h, &nb);

		snprintf(bucket_name, sizeof(bucket_name), "%s_bucket", histogram_names[h]);
		snprintf(sum_name, sizeof(sum_name), "%s_sum", histogram_names[h]);
		snprintf(count_name, sizeof(count_name), "%s_count", histogram_names[h]);
		for (int b = 0; b < nb; b++)
		{
			Sample		s;

			cumulative += pg_atomic_read_u64(&hist->bucket[b]);
			snprintf(le, sizeof(le), "%g", bounds[b]);
			s = (Sample) {bucket_name, 1, {"le", NULL}, {le, NULL}, (double) cumulative};
			cb(&s, arg);
		}
		{
			Sample		inf = {bucket_name, 1, {"le", NULL}, {"+Inf", NULL},
			(double) pg_atomic_read_u64(&hist->count)};
			Sample		sum = {sum_name, 0, {NULL, NULL}, {NULL, NULL},
			pg_atomic_read_u64(&hist->sum_usec) / 1e6};
			Sample		cnt = {count_name, 0, {NULL, NULL}, {NULL, NULL},
			(double) pg_atomic_read_u64(&hist->count)};

			cb(&inf, arg);
			cb(&sum, arg);
			cb(&cnt, arg);
		}
	}
}

static void
append_prometheus_sample(const Sample *s, void *arg)
{
	StringInfo	buf = (StringInfo) arg;

	appendStringInfoString(buf, s->name);
	for (int l = 0; l < s->n_labels; l++)
	{
		appendStringInfo(buf, "%s%s=\"", l == 0 ? "{" : ",", s->label_key[l]);
		for (const char *p = s->label_value[l]; *p; p++)
		{
			if (*p == '\\' || *p == '"')
				appendStringInfoChar(buf, '\\');
			if (*p == '\n')
				appendStringInfoString(buf, "\\n");
			else
				appendStringInfoChar(buf, *p);
		}
		appendStringInfoChar(buf, '"');
	}
	if (s->n_labels > 0)
		appendStringInfoChar(buf, '}');
	appendStringInfo(buf, " %.17g\n", s->value);
}

static void
emit_type_lines(StringInfo buf)
{
	for (int i = 0; i < MC_NUM_COUNTERS; i++)
		appendStringInfo(buf, "# TYPE %s counter\n", counter_names[i]);
	for (int i = 0; i < MG_NUM_GAUGES; i++)
		appendStringInfo(buf, "# TYPE %s gauge\n", gauge_names[i]);
	for (int f = 0; f < ML_NUM_FAMILIES; f++)
		appendStringInfo(buf, "# TYPE %s counter\n", family_names[f]);
	for (int h = 0; h < MH_NUM_HISTOGRAMS; h++)
		appendStringInfo(buf, "# TYPE %s histogram\n", histogram_names[h]);
}

PG_FUNCTION_INFO_V1(mana_ai_metrics_prometheus);
Datum
mana_ai_metrics_prometheus(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (metrics == NULL)
	{
		appendStringInfoString(&buf, "# mana_ai is not in shared_preload_libraries: no metrics\n");
		PG_RETURN_TEXT_P(cstring_to_text(buf.data));
	}
	emit_type_lines(&buf);
	for_each_sample(append_prometheus_sample, &buf);
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}

typedef struct RowsArg
{
	Tuplestorestate *store;
	TupleDesc	desc;
} RowsArg;

static void
append_metric_row(const Sample *s, void *arg)
{
	RowsArg    *ra = (RowsArg *) arg;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int l = 0; l < s->n_labels; l++)
	{
		JsonbValue	k,
					v;

		k.type = jbvString;
		k.val.string.val = (char *) s->label_key[l];
		k.val.string.len = strlen(s->label_key[l]);
		v.type = jbvString;
		v.val.string.val = (char *) s->label_value[l];
		v.val.string.len = strlen(s->label_value[l]);
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	values[0] = CStringGetTextDatum(s->name);
	values[1] = PointerGetDatum(JsonbValueToJsonb(res));
	values[2] = Float8GetDatum(s->value);
	tuplestore_putvalues(ra->store, ra->desc, values, nulls);
}

PG_FUNCTION_INFO_V1(mana_ai_metrics_rows);
Datum
mana_ai_metrics_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RowsArg		ra;

	InitMaterializedSRF(fcinfo, 0);
	ra.store = rsinfo->setResult;
	ra.desc = rsinfo->setDesc;
	if (metrics != NULL)
		for_each_sample(append_metric_row, &ra);
	return (Datum) 0;
}
