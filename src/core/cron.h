/*
 * cron.h: 5-field cron expressions, Postgres-free.
 *
 * Owns parsing "minute hour day-of-month month day-of-week" (Vixie cron
 * syntax) and finding the next matching wall-clock minute.  It knows
 * nothing about time zones: callers convert between instants and local
 * wall time.  Never allocates, never reads past the terminating NUL.
 */
#ifndef MANA_AI_CRON_H
#define MANA_AI_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "civil.h"

/* Longest expression accepted; real ones are a few dozen bytes. */
#define CRON_MAX_EXPR_LEN 256

/* How far cron_next searches before declaring "no match". */
#define CRON_SEARCH_YEARS 50

/* Room for any error cron_parse writes (it truncates to errlen anyway). */
#define CRON_ERR_LEN 256

typedef struct CronExpr
{
	uint64_t	minutes;		/* bit m set: minute m (0..59) matches */
	uint32_t	hours;			/* bit h: hour 0..23 */
	uint32_t	days_of_month;	/* bit d: day 1..31 */
	uint16_t	months;			/* bit m: month 1..12 */
	uint8_t		days_of_week;	/* bit d: 0=Sunday..6 */
	/*
	 * Vixie semantics: a day-of-month or day-of-week field that starts with
	 * '*' does not restrict the day.  When neither starts with '*', a day
	 * matches if EITHER field matches; otherwise both must match.
	 */
	bool		dom_star;
	bool		dow_star;
} CronExpr;

/* A wall-clock minute in the proleptic Gregorian calendar. */
typedef struct CronTime
{
	int			year;			/* e.g. 2026 */
	int			month;			/* 1..12 */
	int			day;			/* 1..31 */
	int			hour;			/* 0..23 */
	int			minute;			/* 0..59 */
} CronTime;

/*
 * Parse expr into *out.  Accepts five whitespace-separated fields, each a
 * comma list of '*', 'N', 'A-B', '*' or 'A-B' or 'N' followed by '/STEP',
 * month names jan..dec and day names sun..sat (any case), 0 and 7 both
 * meaning Sunday, and the macros @yearly @annually @monthly @weekly
 * @daily @midnight @hourly.  On failure returns false and writes a message
 * naming the offending field and text into err (errlen bytes).
 */
extern bool cron_parse(const char *expr, CronExpr *out, char *err, size_t errlen);

/* Does the calendar day y-m-d satisfy the month and day fields of e? */
extern bool cron_day_matches(const CronExpr *e, int year, int month, int day);

/*
 * The first wall-clock minute strictly after *after that matches e,
 * searching at most max_years calendar years past after->year.  Returns
 * false when nothing matches within that bound (e.g. "0 0 30 2 *").
 * after must be a valid date; its seconds are the caller's business.
 */
extern bool cron_next(const CronExpr *e, const CronTime *after, int max_years,
					  CronTime *next);

/*
 * The calendar lives in civil.h; these are its names as cron's tests and
 * fuzz target spell them.
 */
#define cron_is_leap_year civil_is_leap_year
#define cron_days_in_month civil_days_in_month
#define cron_days_from_civil civil_days_from_date
#define cron_civil_from_days civil_date_from_days
#define cron_day_of_week civil_day_of_week

#endif
