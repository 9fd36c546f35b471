/*
 * metrics.c: SPEC 10 counters and histograms in shared memory, and their
 * two readers (the mana_ai.metrics view and metrics_prometheus()).
 *
 * Owns the metric names (kept from the original service) and the label
 * slots.  Counters are atomics so the hot path takes no lock; a label
 * value is given a slot once, under the lock, and kept until restart.
 * Must never block a tick: when the label slots are full the observation
 * goes to the label "other".
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#include "metrics.h"
#include "shmem.h"

#define LABEL_SLOTS 24
#define LABEL_LEN 48

static const double bucket_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
};
#define NUM_BUCKETS lengthof(bucket_bounds)

typedef struct LabeledFamily
{
	pg_atomic_uint32 used;		/* slots handed out so far */
	char		label[LABEL_SLOTS][LABEL_LEN];
	pg_atomic_uint64 value[LABEL_SLOTS];
} LabeledFamily;

typedef struct Histogram
{
	pg_atomic_uint64 bucket[NUM_BUCKETS];	/* non-cumulative counts */
	pg_atomic_uint64 count;
	pg_atomic_uint64 sum_usec;
} Histogram;

typedef struct MetricsShared
{
	pg_atomic_uint64 counter[MC_NUM_COUNTERS];
	LabeledFamily family[ML_NUM_FAMILIES];
	Histogram	histogram[MH_NUM_HISTOGRAMS];
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
};

static const char *const family_names[ML_NUM_FAMILIES] = {
	"mana_ai_decrypts_total",
	"mana_ai_grant_scope_violations_total",
	"mana_ai_grant_skips_total",
	"mana_ai_agent_decisions_total",
};

static const char *const family_label_keys[ML_NUM_FAMILIES] = {
	"table", "table", "reason", "decision",
};

static const char *const histogram_names[MH_NUM_HISTOGRAMS] = {
	"mana_ai_tick_duration_seconds",
	"mana_ai_planner_request_duration_seconds",
};

Size
mana_ai_metrics_shmem_size(void)
{
	return MAXALIGN(sizeof(MetricsShared));
}

void
mana_ai_metrics_shmem_attach(void)
{
	bool		found;

	metrics = ShmemInitStruct("mana_ai metrics", sizeof(MetricsShared), &found);
	if (found)
		return;
	memset(metrics, 0, sizeof(MetricsShared));
	for (int i = 0; i < MC_NUM_COUNTERS; i++)
		pg_atomic_init_u64(&metrics->counter[i], 0);
	for (int f = 0; f < ML_NUM_FAMILIES; f++)
	{
		pg_atomic_init_u32(&metrics->family[f].used, 0);
		for (int s = 0; s < LABEL_SLOTS; s++)
			pg_atomic_init_u64(&metrics->family[f].value[s], 0);
	}
	for (int h = 0; h < MH_NUM_HISTOGRAMS; h++)
	{
		for (int b = 0; b < NUM_BUCKETS; b++)
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

/* Find the slot of label in family, or -1; reads only published slots. */
static int
find_label_slot(LabeledFamily *fam, const char *label)
{
	uint32		used = pg_atomic_read_u32(&fam->used);

	for (uint32 s = 0; s < used && s < LABEL_SLOTS; s++)
		if (strncmp(fam->label[s], label, LABEL_LEN - 1) == 0)
			return (int) s;
	return -1;
}

void
mana_ai_metric_inc_labeled(ManaAiLabeledCounter family, const char *label, uint64 n)
{
	LabeledFamily *fam;
	int			slot;

	if (metrics == NULL || mana_ai_shared == NULL || family < 0 || family >= ML_NUM_FAMILIES)
		return;
	fam = &metrics->family[family];
	if (label == NULL || label[0] == '\0')
		label = "unknown";

	slot = find_label_slot(fam, label);
	if (slot < 0)
	{
		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		slot = find_label_slot(fam, label);
		if (slot < 0)
		{
			uint32		used = pg_atomic_read_u32(&fam->used);

			if (used < LABEL_SLOTS - 1 || (used == LABEL_SLOTS - 1 && strcmp(label, "other") == 0))
			{
				strlcpy(fam->label[used], label, LABEL_LEN);
				pg_write_barrier();
				pg_atomic_write_u32(&fam->used, used + 1);
				slot = (int) used;
			}
		}
		LWLockRelease(mana_ai_shared->lock);
		/* Slots exhausted: count it as "other" rather than lose it. */
		if (slot < 0 && strcmp(label, "other") != 0)
		{
			mana_ai_metric_inc_labeled(family, "other", n);
			return;
		}
		if (slot < 0)
			return;
	}
	pg_atomic_fetch_add_u64(&fam->value[slot], n);
}

void
mana_ai_metric_observe(ManaAiHistogram histogram, double seconds)
{
	Histogram  *h;
	int			b;

	if (metrics == NULL || histogram < 0 || histogram >= MH_NUM_HISTOGRAMS)
		return;
	h = &metrics->histogram[histogram];
	if (seconds < 0)
		seconds = 0;
	for (b = 0; b < NUM_BUCKETS; b++)
		if (seconds <= bucket_bounds[b])
		{
			pg_atomic_fetch_add_u64(&h->bucket[b], 1);
			break;
		}
	pg_atomic_fetch_add_u64(&h->count, 1);
	pg_atomic_fetch_add_u64(&h->sum_usec, (uint64) (seconds * 1e6));
}

/* One metric sample, as both readers see it. */
typedef struct Sample
{
	const char *name;
	const char *label_key;		/* NULL: no label */
	const char *label_value;
	double		value;
} Sample;

typedef void (*sample_cb) (const Sample *s, void *arg);

/* Walk every sample in a stable order; histograms expand Prometheus-style. */
static void
for_each_sample(sample_cb cb, void *arg)
{
	char		le[32];

	for (int i = 0; i < MC_NUM_COUNTERS; i++)
	{
		Sample		s = {counter_names[i], NULL, NULL,
		(double) pg_atomic_read_u64(&metrics->counter[i])};

		cb(&s, arg);
	}
	for (int f = 0; f < ML_NUM_FAMILIES; f++)
	{
		LabeledFamily *fam = &metrics->family[f];
		uint32		used = pg_atomic_read_u32(&fam->used);

		pg_read_barrier();
		for (uint32 s = 0; s < used && s < LABEL_SLOTS; s++)
		{
			Sample		smp = {family_names[f], family_label_keys[f], fam->label[s],
			(double) pg_atomic_read_u64(&fam->value[s])};

			cb(&smp, arg);
		}
	}
	for (int h = 0; h < MH_NUM_HISTOGRAMS; h++)
	{
		Histogram  *hist = &metrics->histogram[h];
		uint64		cumulative = 0;
		char		bucket_name[96];
		char		sum_name[96];
		char		count_name[96];

		snprintf(bucket_name, sizeof(bucket_name), "%s_bucket", histogram_names[h]);
		snprintf(sum_name, sizeof(sum_name), "%s_sum", histogram_names[h]);
		snprintf(count_name, sizeof(count_name), "%s_count", histogram_names[h]);
		for (int b = 0; b < NUM_BUCKETS; b++)
		{
			Sample		s;

			cumulative += pg_atomic_read_u64(&hist->bucket[b]);
			snprintf(le, sizeof(le), "%g", bucket_bounds[b]);
			s = (Sample) {bucket_name, "le", le, (double) cumulative};
			cb(&s, arg);
		}
		{
			Sample		inf = {bucket_name, "le", "+Inf", (double) pg_atomic_read_u64(&hist->count)};
			Sample		sum = {sum_name, NULL, NULL, pg_atomic_read_u64(&hist->sum_usec) / 1e6};
			Sample		cnt = {count_name, NULL, NULL, (double) pg_atomic_read_u64(&hist->count)};

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
	if (s->label_key)
	{
		appendStringInfo(buf, "{%s=\"", s->label_key);
		for (const char *p = s->label_value; *p; p++)
		{
			if (*p == '\\' || *p == '"')
				appendStringInfoChar(buf, '\\');
			if (*p == '\n')
				appendStringInfoString(buf, "\\n");
			else
				appendStringInfoChar(buf, *p);
		}
		appendStringInfoString(buf, "\"}");
	}
	appendStringInfo(buf, " %.17g\n", s->value);
}

static void
emit_type_lines(StringInfo buf)
{
	for (int i = 0; i < MC_NUM_COUNTERS; i++)
		appendStringInfo(buf, "# TYPE %s counter\n", counter_names[i]);
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
	if (s->label_key)
	{
		JsonbValue	k,
					v;

		k.type = jbvString;
		k.val.string.val = (char *) s->label_key;
		k.val.string.len = strlen(s->label_key);
		v.type = jbvString;
		v.val.string.val = (char *) s->label_value;
		v.val.string.len = strlen(s->label_value);
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
