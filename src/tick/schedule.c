/*
 * schedule.c: mana_ai.next_run_at — the next slot of a mission cadence.
 *
 * Owns reading a cadence (SPEC 1.2) out of jsonb, validating it with
 * errors a user can act on, and turning local wall-clock slots into
 * instants in a time zone.  The cron syntax and the calendar walk live in
 * core/cron.c; this file only adds the zone.  It reads no table and
 * never writes anything.
 *
 * Daylight saving time, the rule (also in docs/schedule.md):
 *  - A slot whose local time does not exist (spring-forward gap) moves
 *    forward by the length of the gap, exactly as PostgreSQL itself reads
 *    such a local time: 02:30 on the night Europe/Berlin jumps from 02:00
 *    to 03:00 becomes 03:30 CEST.
 *  - A slot whose local time occurs twice (fall-back fold) fires once, at
 *    its first occurrence: the search continues from the local time of the
 *    slot just taken, so the repeated hour is not re-run (a "*\/30" cron
 *    goes 02:30 CEST -> 03:00 CET).  The second occurrence is used only
 *    when from_ts itself lies in the repeated hour after the first one.
 *  - Interval cadences are elapsed time and ignore the zone.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "core/cron.h"
#include "ops/guc.h"
#include "tick/schedule.h"

PG_FUNCTION_INFO_V1(mana_ai_next_run_at_sql);
PG_FUNCTION_INFO_V1(mana_ai_next_run_at_in_sql);

/* Enough candidate slots to cross any fold; each step is one cron_next. */
#define MAX_SLOT_ATTEMPTS 10000

static const char *cadence_hint(const char *kind);
static bool cadence_value(Jsonb *cadence, const char *key, JsonbValue *out);
static char *cadence_text(Jsonb *cadence, const char *kind, const char *key);
static int	cadence_int(Jsonb *cadence, const char *kind, const char *key,
						int min, int max, bool required, int dflt);
static TimestampTz add_interval(Jsonb *cadence, TimestampTz from);
static void cadence_to_cron(Jsonb *cadence, const char *kind, CronExpr *expr,
							char **expr_text);
static TimestampTz next_local_slot(const CronExpr *expr, const char *expr_text,
								   TimestampTz from, pg_tz *tz);
static int	wall_to_instants(const CronTime *wall, pg_tz *tz, pg_time_t out[2]);
static void local_fields(pg_time_t t, const pg_tz *tz, CronTime *wall, long *gmtoff);
static pg_time_t floor_seconds(TimestampTz ts);

/* An example of a valid cadence of this kind, for errhint. */
static const char *
cadence_hint(const char *kind)
{
	if (strcmp(kind, "interval") == 0)
		return "An interval cadence looks like {\"kind\": \"interval\", \"everyMinutes\": 60}.";
	if (strcmp(kind, "daily") == 0)
		return "A daily cadence looks like {\"kind\": \"daily\", \"atHour\": 9, \"atMinute\": 30}.";
	if (strcmp(kind, "weekly") == 0)
		return "A weekly cadence looks like {\"kind\": \"weekly\", \"dayOfWeek\": 1, \"atHour\": 9} (dayOfWeek 0 is Sunday).";
	if (strcmp(kind, "cron") == 0)
		return "A cron expression has five fields, minute hour day-of-month month day-of-week, for example {\"kind\": \"cron\", \"expression\": \"30 9 * * mon-fri\"}.";
	return "The kind is one of manual, interval, daily, weekly or cron.";
}

/* Look up a top-level key; false when absent or JSON null. */
static bool
cadence_value(Jsonb *cadence, const char *key, JsonbValue *out)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&cadence->root, key,
												 (int) strlen(key), out);

	return v != NULL && v->type != jbvNull;
}

/* A required string field, or ERROR. */
static char *
cadence_text(Jsonb *cadence, const char *kind, const char *key)
{
	JsonbValue	v;

	if (!cadence_value(cadence, key, &v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cadence is missing \"%s\"", kind, key),
				 errhint("%s", cadence_hint(kind))));
	if (v.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cadence field \"%s\" must be a string", kind, key),
				 errhint("%s", cadence_hint(kind))));
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/*
 * An integer field within [min, max], or ERROR.  JSON numbers only (15.0
 * counts as 15); strings and fractions are refused rather than guessed.
 */
static int
cadence_int(Jsonb *cadence, const char *kind, const char *key,
			int min, int max, bool required, int dflt)
{
	JsonbValue	v;
	char	   *digits;
	const char *p;
	int64		value = 0;
	bool		in_range;

	if (!cadence_value(cadence, key, &v))
	{
		if (!required)
			return dflt;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cadence is missing \"%s\"", kind, key),
				 errhint("%s", cadence_hint(kind))));
	}
	if (v.type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cadence field \"%s\" must be a number", kind, key),
				 errdetail("\"%s\" must be an integer from %d to %d.", key, min, max),
				 errhint("%s", cadence_hint(kind))));

	/* Plain digits with an optional sign; a '.' means a real fraction. */
	digits = numeric_normalize(v.val.numeric);
	p = digits[0] == '-' ? digits + 1 : digits;
	in_range = strchr(digits, '.') == NULL && strlen(p) <= 10;
	for (; in_range && *p != '\0'; p++)
		value = value * 10 + (*p - '0');
	if (digits[0] == '-')
		value = -value;
	if (!in_range || value < min || value > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cadence field \"%s\" is out of range", kind, key),
				 errdetail("\"%s\" must be an integer from %d to %d, not %s.",
						   key, min, max, digits),
				 errhint("%s", cadence_hint(kind))));
	return (int) value;
}

/* interval: from + everyMinutes, zone-free. */
static TimestampTz
add_interval(Jsonb *cadence, TimestampTz from)
{
	int			minutes = cadence_int(cadence, "interval", "everyMinutes",
									  1, PG_INT32_MAX, true, 0);
	TimestampTz result = from + (int64) minutes * USECS_PER_MINUTE;

	if (!IS_VALID_TIMESTAMP(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("next run of the interval cadence is out of range")));
	return result;
}

/* daily, weekly and cron all become a CronExpr; expr_text names it in errors. */
static void
cadence_to_cron(Jsonb *cadence, const char *kind, CronExpr *expr, char **expr_text)
{
	char		err[CRON_ERR_LEN];
	char	   *text;

	if (strcmp(kind, "cron") == 0)
		text = cadence_text(cadence, kind, "expression");
	else if (strcmp(kind, "daily") == 0)
	{
		int			hour = cadence_int(cadence, kind, "atHour", 0, 23, true, 0);
		int			minute = cadence_int(cadence, kind, "atMinute", 0, 59, true, 0);

		text = psprintf("%d %d * * *", minute, hour);
	}
	else
	{
		int			dow = cadence_int(cadence, kind, "dayOfWeek", 0, 6, true, 0);
		int			hour = cadence_int(cadence, kind, "atHour", 0, 23, true, 0);
		/* Not in the SPEC's shape; honoured when a client writes it. */
		int			minute = cadence_int(cadence, kind, "atMinute", 0, 59, false, 0);

		text = psprintf("%d %d * * %d", minute, hour, dow);
	}

	if (!cron_parse(text, expr, err, sizeof(err)))
	{
		err[0] = (char) pg_toupper((unsigned char) err[0]);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\"", text),
				 errdetail("%s.", err),
				 errhint("%s", cadence_hint("cron"))));
	}
	*expr_text = text;
}

/* Seconds since the Unix epoch, rounded down (also before 2000). */
static pg_time_t
floor_seconds(TimestampTz ts)
{
	int64		frac = ts % USECS_PER_SEC;

	/* timestamptz_to_time_t truncates toward 2000-01-01: floor first */
	return timestamptz_to_time_t(frac < 0 ? ts - frac - USECS_PER_SEC : ts - frac);
}

/* Local wall minute of instant t in tz, and the UTC offset in force. */
static void
local_fields(pg_time_t t, const pg_tz *tz, CronTime *wall, long *gmtoff)
{
	struct pg_tm *tm = pg_localtime(&t, tz);

	if (tm == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range for time zone conversion")));
	wall->year = tm->tm_year + 1900;
	wall->month = tm->tm_mon + 1;
	wall->day = tm->tm_mday;
	wall->hour = tm->tm_hour;
	wall->minute = tm->tm_min;
	if (gmtoff != NULL)
		*gmtoff = tm->tm_gmtoff;
}

/*
 * The instants (0, 1 or 2, ascending) whose local time in tz is exactly
 * the wall minute.  Tries the offsets in force a day either side and at
 * the naive reading: real zones never change offset twice within a day.
 */
static int
wall_to_instants(const CronTime *wall, pg_tz *tz, pg_time_t out[2])
{
	pg_time_t	naive = (pg_time_t) (date2j(wall->year, wall->month, wall->day) - UNIX_EPOCH_JDATE) * SECS_PER_DAY
		+ wall->hour * SECS_PER_HOUR + wall->minute * SECS_PER_MINUTE;
	pg_time_t	probes[3] = {naive - SECS_PER_DAY, naive, naive + SECS_PER_DAY};
	int			n = 0;

	for (int i = 0; i < 3; i++)
	{
		CronTime	w;
		long		off;
		pg_time_t	t;

		local_fields(probes[i], tz, &w, &off);
		t = naive - off;
		local_fields(t, tz, &w, NULL);
		if (w.year != wall->year || w.month != wall->month || w.day != wall->day ||
			w.hour != wall->hour || w.minute != wall->minute)
			continue;
		if (n > 0 && out[n - 1] == t)
			continue;
		if (n == 1 && t < out[0])
		{
			out[1] = out[0];
			out[0] = t;
			n = 2;
		}
		else if (n < 2)
			out[n++] = t;
	}
	if (n == 0)
	{
		/* A gap: read the wall time as PostgreSQL does (the offset before the jump). */
		struct pg_tm tm = {0};

		tm.tm_year = wall->year;
		tm.tm_mon = wall->month;
		tm.tm_mday = wall->day;
		tm.tm_hour = wall->hour;
		tm.tm_min = wall->minute;
		out[n++] = naive + DetermineTimeZoneOffset(&tm, tz);
	}
	return n;
}

/* The first matching wall minute after from, as an instant after from. */
static TimestampTz
next_local_slot(const CronExpr *expr, const char *expr_text, TimestampTz from,
				pg_tz *tz)
{
	CronTime	wall;

	local_fields(floor_seconds(from), tz, &wall, NULL);
	for (int attempt = 0; attempt < MAX_SLOT_ATTEMPTS; attempt++)
	{
		CronTime	next;
		pg_time_t	instants[2];
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (!cron_next(expr, &wall, CRON_SEARCH_YEARS, &next))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cron expression \"%s\" never matches", expr_text),
					 errdetail("No time within %d years after %s matches it.",
							   CRON_SEARCH_YEARS, timestamptz_to_str(from)),
					 errhint("Check the day of the month against the month: February has no 30th, April no 31st.")));

		n = wall_to_instants(&next, tz, instants);
		for (int i = 0; i < n; i++)
		{
			TimestampTz ts = time_t_to_timestamptz(instants[i]);

			if (!IS_VALID_TIMESTAMP(ts))
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("next run of cadence \"%s\" is out of range", expr_text)));
			if (ts > from)
				return ts;
		}
		wall = next;
	}
	elog(ERROR, "no slot of \"%s\" after %s within %d candidates",
		 expr_text, timestamptz_to_str(from), MAX_SLOT_ATTEMPTS);
	return 0;					/* keep the compiler quiet */
}

TimestampTz
mana_ai_next_run_at_in_zone(Jsonb *cadence, TimestampTz from, const char *zone,
							bool *is_null)
{
	JsonbValue	v;
	char	   *kind;
	pg_tz	   *tz;
	CronExpr	expr;
	char	   *expr_text;

	*is_null = false;
	if (!JB_ROOT_IS_OBJECT(cadence) || JB_ROOT_IS_SCALAR(cadence))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cadence must be a JSON object"),
				 errhint("%s", cadence_hint("manual"))));
	if (!cadence_value(cadence, "kind", &v) || v.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cadence has no \"kind\" string"),
				 errhint("%s", cadence_hint("manual"))));
	kind = pnstrdup(v.val.string.val, v.val.string.len);

	if (strcmp(kind, "manual") == 0)
	{
		*is_null = true;
		return 0;
	}
	if (strcmp(kind, "interval") != 0 && strcmp(kind, "daily") != 0 &&
		strcmp(kind, "weekly") != 0 && strcmp(kind, "cron") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown cadence kind \"%s\"", kind),
				 errhint("%s", cadence_hint(kind))));

	if (TIMESTAMP_NOT_FINITE(from))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot schedule after an infinite timestamp")));
	if (strcmp(kind, "interval") == 0)
		return add_interval(cadence, from);

	/* Validate the cadence before the zone so its errors come first. */
	cadence_to_cron(cadence, kind, &expr, &expr_text);
	tz = pg_tzset(zone);
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", zone),
				 errhint("Use a name from pg_timezone_names, such as Europe/Berlin or UTC.")));
	return next_local_slot(&expr, expr_text, from, tz);
}

TimestampTz
mana_ai_next_run_at(Jsonb *cadence, TimestampTz from, bool *is_null)
{
	const char *zone = mana_ai_timezone != NULL ? mana_ai_timezone : "UTC";

	return mana_ai_next_run_at_in_zone(cadence, from, zone, is_null);
}

/* mana_ai.next_run_at(cadence jsonb, from_ts timestamptz) -> timestamptz */
Datum
mana_ai_next_run_at_sql(PG_FUNCTION_ARGS)
{
	bool		is_null;
	TimestampTz result = mana_ai_next_run_at(PG_GETARG_JSONB_P(0),
											 PG_GETARG_TIMESTAMPTZ(1), &is_null);

	if (is_null)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(result);
}

/* mana_ai.next_run_at_in(cadence jsonb, from_ts timestamptz, zone text) */
Datum
mana_ai_next_run_at_in_sql(PG_FUNCTION_ARGS)
{
	bool		is_null;
	char	   *zone = text_to_cstring(PG_GETARG_TEXT_PP(2));
	TimestampTz result = mana_ai_next_run_at_in_zone(PG_GETARG_JSONB_P(0),
													 PG_GETARG_TIMESTAMPTZ(1),
													 zone, &is_null);

	if (is_null)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(result);
}
