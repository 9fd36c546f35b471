/*
 * cron.c: 5-field cron parsing and next-match search, Postgres-free.
 *
 * Owns the syntax and the calendar walk.  It must never depend on a time
 * zone (callers do that), allocate, or loop without a bound: an
 * expression that can never match ("0 0 30 2 *") ends the search after
 * max_years with a "no match".
 */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct FieldSpec
{
	const char *name;			/* for error messages */
	int			min;
	int			max;			/* inclusive; day-of-week allows 7 */
	const char *const *names;	/* 3-letter names for min.., or NULL */
} FieldSpec;

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const FieldSpec fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day-of-month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day-of-week", 0, 7, dow_names},
};

static const struct
{
	const char *macro;
	const char *expansion;
}			macros[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

static bool set_error(char *err, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
static bool parse_value(const FieldSpec *f, const char **p, int *value,
						char *err, size_t errlen);
static bool parse_item(const FieldSpec *f, const char *item, uint64_t *bits,
					   char *err, size_t errlen);
static bool parse_field(const FieldSpec *f, const char *text, uint64_t *bits,
						char *err, size_t errlen);
static int	first_bit_from(uint64_t bits, int from, int max);

/* Write a message into err (if any) and report failure. */
static bool
set_error(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

/* Parse one number or name at *p, advancing *p past it. */
static bool
parse_value(const FieldSpec *f, const char **p, int *value, char *err, size_t errlen)
{
	const char *s = *p;

	if (isdigit((unsigned char) *s))
	{
		long		v = 0;
		int			ndigits = 0;

		while (isdigit((unsigned char) *s))
		{
			if (++ndigits > 4)
				return set_error(err, errlen, "%s: number too long in \"%s\"", f->name, *p);
			v = v * 10 + (*s - '0');
			s++;
		}
		if (v < f->min || v > f->max)
			return set_error(err, errlen, "%s: value %ld out of range %d-%d",
							 f->name, v, f->min, f->max);
		*value = (int) v;
		*p = s;
		return true;
	}
	if (f->names != NULL && isalpha((unsigned char) *s))
	{
		char		word[4] = {0};
		int			len = 0;

		while (isalpha((unsigned char) s[len]) && len < 4)
			len++;
		if (len == 3)
		{
			for (int i = 0; i < 3; i++)
				word[i] = (char) tolower((unsigned char) s[i]);
			for (int i = 0; f->names[i] != NULL; i++)
				if (strcmp(word, f->names[i]) == 0)
				{
					*value = f->min + i;
					*p = s + 3;
					return true;
				}
		}
		return set_error(err, errlen, "%s: unknown name \"%.*s\" (expected %s)",
						 f->name, len, s,
						 f->names == month_names ? "jan..dec" : "sun..sat");
	}
	if (*s == '\0')
		return set_error(err, errlen, "%s: value missing", f->name);
	return set_error(err, errlen, "%s: unexpected \"%c\" in \"%s\"",
					 f->name, *s, *p);
}

/* One comma-separated item: '*', 'N', 'A-B', any of those with '/STEP'. */
static bool
parse_item(const FieldSpec *f, const char *item, uint64_t *bits, char *err, size_t errlen)
{
	const char *p = item;
	int			lo,
				hi,
				step = 1;
	bool		single = false;

	if (*p == '\0')
		return set_error(err, errlen, "%s: empty list element", f->name);
	if (*p == '*')
	{
		/* '*' never includes day-of-week 7: 0 already is Sunday. */
		lo = f->min;
		hi = f->max == 7 ? 6 : f->max;
		p++;
	}
	else
	{
		if (!parse_value(f, &p, &lo, err, errlen))
			return false;
		hi = lo;
		single = true;
		if (*p == '-')
		{
			p++;
			if (!parse_value(f, &p, &hi, err, errlen))
				return false;
			if (hi < lo)
				return set_error(err, errlen, "%s: range \"%s\" runs backwards",
								 f->name, item);
			single = false;
		}
	}
	if (*p == '/')
	{
		long		v = 0;
		int			ndigits = 0;

		p++;
		if (!isdigit((unsigned char) *p))
			return set_error(err, errlen, "%s: step missing or not a number in \"%s\"",
							 f->name, item);
		while (isdigit((unsigned char) *p))
		{
			if (++ndigits > 4)
				return set_error(err, errlen, "%s: step too long in \"%s\"", f->name, item);
			v = v * 10 + (*p++ - '0');
		}
		if (v < 1)
			return set_error(err, errlen, "%s: step must be at least 1 in \"%s\"",
							 f->name, item);
		step = (int) v;
		/* "N/S" means "N-max/S" (as cronie reads it). */
		if (single)
			hi = f->max;
	}
	if (*p != '\0')
		return set_error(err, errlen, "%s: unexpected \"%s\" in \"%s\"",
						 f->name, p, item);
	for (int v = lo; v <= hi; v += step)
		*bits |= UINT64_C(1) << v;
	return true;
}

/* A whole field: comma list of items, into a bit set. */
static bool
parse_field(const FieldSpec *f, const char *text, uint64_t *bits, char *err, size_t errlen)
{
	char		buf[CRON_MAX_EXPR_LEN + 1];
	char	   *item = buf;

	snprintf(buf, sizeof(buf), "%s", text);
	*bits = 0;
	for (;;)
	{
		char	   *comma = strchr(item, ',');

		if (comma != NULL)
			*comma = '\0';
		if (!parse_item(f, item, bits, err, errlen))
			return false;
		if (comma == NULL)
			break;
		item = comma + 1;
	}
	return true;
}

bool
cron_parse(const char *expr, CronExpr *out, char *err, size_t errlen)
{
	char		buf[CRON_MAX_EXPR_LEN + 1];
	char	   *words[6];
	int			nwords = 0;
	uint64_t	bits[5];
	char	   *s;
	size_t		len;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (expr == NULL)
		return set_error(err, errlen, "cron expression is missing");
	len = strlen(expr);
	if (len > CRON_MAX_EXPR_LEN)
		return set_error(err, errlen, "cron expression longer than %d characters",
						 CRON_MAX_EXPR_LEN);
	memcpy(buf, expr, len + 1);

	/* Split on whitespace; keep at most six words to report "too many". */
	for (s = buf; *s != '\0' && nwords < 6;)
	{
		while (isspace((unsigned char) *s))
			s++;
		if (*s == '\0')
			break;
		words[nwords++] = s;
		while (*s != '\0' && !isspace((unsigned char) *s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
	}

	if (nwords == 1 && words[0][0] == '@')
	{
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (strcmp(words[0], macros[i].macro) == 0)
				return cron_parse(macros[i].expansion, out, err, errlen);
		return set_error(err, errlen, "unknown cron macro \"%s\" (expected @yearly, @monthly, @weekly, @daily or @hourly)",
						 words[0]);
	}
	if (nwords != 5)
		return set_error(err, errlen,
						 "cron expression needs 5 fields (minute hour day-of-month month day-of-week), found %s%d",
						 nwords > 5 ? "more than " : "", nwords > 5 ? 5 : nwords);

	for (int i = 0; i < 5; i++)
		if (!parse_field(&fields[i], words[i], &bits[i], err, errlen))
			return false;

	/* Day-of-week 7 is Sunday too. */
	if (bits[4] & (UINT64_C(1) << 7))
		bits[4] = (bits[4] | 1) & ~(UINT64_C(1) << 7);

	out->minutes = bits[0];
	out->hours = (uint32_t) bits[1];
	out->days_of_month = (uint32_t) bits[2];
	out->months = (uint16_t) bits[3];
	out->days_of_week = (uint8_t) bits[4];
	out->dom_star = words[2][0] == '*';
	out->dow_star = words[4][0] == '*';
	return true;
}

bool
cron_day_matches(const CronExpr *e, int year, int month, int day)
{
	bool		dom_ok,
				dow_ok;

	if (!(e->months & (1u << month)))
		return false;
	dom_ok = (e->days_of_month >> day) & 1;
	dow_ok = (e->days_of_week >> civil_day_of_week(year, month, day)) & 1;
	if (e->dom_star || e->dow_star)
		return dom_ok && dow_ok;
	return dom_ok || dow_ok;
}

/* Lowest set bit at or above from (up to max), or -1. */
static int
first_bit_from(uint64_t bits, int from, int max)
{
	for (int i = from; i <= max; i++)
		if ((bits >> i) & 1)
			return i;
	return -1;
}

bool
cron_next(const CronExpr *e, const CronTime *after, int max_years, CronTime *next)
{
	int64_t		day = civil_days_from_date(after->year, after->month, after->day);
	int			hour = after->hour;
	int			minute = after->minute + 1; /* strictly after */
	int			last_year = after->year + max_years;

	for (;;)
	{
		int			y,
					m,
					d;

		civil_date_from_days(day, &y, &m, &d);
		if (y > last_year)
			return false;
		if (!(e->months & (1u << m)))
		{
			/* Skip the rest of the month in one step. */
			day += civil_days_in_month(y, m) - d + 1;
			hour = minute = 0;
			continue;
		}
		if (cron_day_matches(e, y, m, d))
		{
			for (int h = first_bit_from(e->hours, hour, 23); h >= 0;
				 h = first_bit_from(e->hours, h + 1, 23))
			{
				int			mi = first_bit_from(e->minutes, h == hour ? minute : 0, 59);

				if (mi >= 0)
				{
					next->year = y;
					next->month = m;
					next->day = d;
					next->hour = h;
					next->minute = mi;
					return true;
				}
			}
		}
		day++;
		hour = minute = 0;
	}
}
