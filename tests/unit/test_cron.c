/*
 * test_cron.c: the 5-field cron parser, the calendar helpers and the
 * bounded next-match search of src/core/cron.c.
 */
#include "tap.h"
#include "cron.h"

#include <stdio.h>
#include <string.h>

static char last_err[CRON_ERR_LEN];

/*
 * tap.h's is_str shadows its own _c inside ok(); compare here instead.
 */
#define is_text(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = strcmp(g_, w_) == 0; \
	ok(same_, __VA_ARGS__); \
	if (!same_) printf("#   got:  %s\n#   want: %s\n", g_, w_); \
} while (0)

/* Parse expr, then the next match after "Y-M-D h:m" as "YYYY-MM-DD hh:mm". */
static const char *
next_of(const char *expr, int y, int mo, int d, int h, int mi)
{
	static char buf[64];
	CronExpr	e;
	CronTime	from = {y, mo, d, h, mi};
	CronTime	next;

	if (!cron_parse(expr, &e, last_err, sizeof(last_err)))
		return "parse-error";
	if (!cron_next(&e, &from, CRON_SEARCH_YEARS, &next))
		return "no-match";
	snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d",
			 next.year, next.month, next.day, next.hour, next.minute);
	return buf;
}

/* Does parsing expr fail with a message containing want? */
static int
fails_with(const char *expr, const char *want)
{
	CronExpr	e;
	int			failed = !cron_parse(expr, &e, last_err, sizeof(last_err));

	if (!failed || strstr(last_err, want) == NULL)
	{
		printf("#   expr \"%s\": %s \"%s\"\n", expr,
			   failed ? "error was" : "parsed, no error;", last_err);
		return 0;
	}
	return 1;
}

static void
test_calendar(void)
{
	int			y,
				m,
				d;

	ok(cron_days_from_civil(1970, 1, 1) == 0, "epoch is day 0");
	ok(cron_days_from_civil(2000, 3, 1) == 11017, "2000-03-01 is day 11017");
	ok(cron_days_from_civil(1969, 12, 31) == -1, "day before the epoch is -1");
	cron_civil_from_days(11016, &y, &m, &d);
	ok(y == 2000 && m == 2 && d == 29, "day 11016 is 2000-02-29");
	cron_civil_from_days(-719468, &y, &m, &d);
	ok(y == 0 && m == 3 && d == 1, "day -719468 is 0000-03-01");
	ok(cron_is_leap_year(2000) && !cron_is_leap_year(1900) &&
	   cron_is_leap_year(2024) && !cron_is_leap_year(2026), "leap years");
	ok(cron_days_in_month(2024, 2) == 29 && cron_days_in_month(2026, 2) == 28 &&
	   cron_days_in_month(2026, 4) == 30, "days in month");
	ok(cron_day_of_week(2026, 4, 15) == 3, "2026-04-15 is a Wednesday");
	ok(cron_day_of_week(1970, 1, 4) == 0, "1970-01-04 is a Sunday");
	ok(cron_day_of_week(1969, 12, 28) == 0, "1969-12-28 is a Sunday (before epoch)");
}

static void
test_parse_ok(void)
{
	CronExpr	e;

	ok(cron_parse("* * * * *", &e, last_err, sizeof(last_err)) &&
	   e.minutes == (UINT64_C(1) << 60) - 1 && e.hours == (1u << 24) - 1 &&
	   e.days_of_month == 0xFFFFFFFEu && e.months == 0x1FFE &&
	   e.days_of_week == 0x7F && e.dom_star && e.dow_star,
	   "all stars set every bit");
	ok(cron_parse("0,30 9-17/2 1,15 jan-MAR,Dec mon-fri", &e, last_err, sizeof(last_err)) &&
	   e.minutes == ((UINT64_C(1) << 0) | (UINT64_C(1) << 30)) &&
	   e.hours == ((1u << 9) | (1u << 11) | (1u << 13) | (1u << 15) | (1u << 17)) &&
	   e.days_of_month == ((1u << 1) | (1u << 15)) &&
	   e.months == ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 12)) &&
	   e.days_of_week == 0x3E && !e.dom_star && !e.dow_star,
	   "lists, ranges with steps, names in any case");
	ok(cron_parse("0 0 * * 7", &e, last_err, sizeof(last_err)) && e.days_of_week == 1,
	   "day-of-week 7 is Sunday");
	ok(cron_parse("0 0 * * 5-7", &e, last_err, sizeof(last_err)) &&
	   e.days_of_week == ((1u << 5) | (1u << 6) | 1u), "5-7 is Fri, Sat, Sun");
	ok(cron_parse("*/15 * * * *", &e, last_err, sizeof(last_err)) &&
	   e.minutes == ((UINT64_C(1) << 0) | (UINT64_C(1) << 15) |
					 (UINT64_C(1) << 30) | (UINT64_C(1) << 45)), "*/15");
	ok(cron_parse("5/20 * * * *", &e, last_err, sizeof(last_err)) &&
	   e.minutes == ((UINT64_C(1) << 5) | (UINT64_C(1) << 25) | (UINT64_C(1) << 45)),
	   "N/S means N-max/S");
	ok(cron_parse("  0\t12  * *   sun  ", &e, last_err, sizeof(last_err)),
	   "surrounding and repeated whitespace is fine");
	ok(cron_parse("@daily", &e, last_err, sizeof(last_err)) &&
	   e.minutes == 1 && e.hours == 1 && e.dom_star, "@daily macro");
	ok(cron_parse("0 0 */2 * 1", &e, last_err, sizeof(last_err)) &&
	   e.dom_star && !e.dow_star, "a field starting with * counts as unrestricted (Vixie)");
}

static void
test_parse_errors(void)
{
	ok(fails_with("", "needs 5 fields"), "empty expression");
	ok(fails_with("* * * *", "found 4"), "four fields");
	ok(fails_with("* * * * * *", "found more than 5"), "six fields");
	ok(fails_with("60 * * * *", "minute: value 60 out of range 0-59"), "minute 60");
	ok(fails_with("* 24 * * *", "hour: value 24 out of range 0-23"), "hour 24");
	ok(fails_with("* * 0 * *", "day-of-month: value 0 out of range 1-31"), "dom 0");
	ok(fails_with("* * 32 * *", "day-of-month: value 32"), "dom 32");
	ok(fails_with("* * * 13 *", "month: value 13 out of range 1-12"), "month 13");
	ok(fails_with("* * * * 8", "day-of-week: value 8 out of range 0-7"), "dow 8");
	ok(fails_with("* * * foo *", "month: unknown name \"foo\" (expected jan..dec)"), "bad month name");
	ok(fails_with("* * * * monday", "day-of-week: unknown name \"mond\""), "long day name");
	ok(fails_with("* * * * jan", "day-of-week: unknown name \"jan\""), "month name in dow");
	ok(fails_with("* * mon * *", "day-of-month: unexpected \"m\""), "names only where allowed");
	ok(fails_with("*/0 * * * *", "minute: step must be at least 1"), "step 0");
	ok(fails_with("*/ * * * *", "minute: step missing"), "step missing");
	ok(fails_with("5-2 * * * *", "minute: range \"5-2\" runs backwards"), "backwards range");
	ok(fails_with("1,,2 * * * *", "minute: empty list element"), "empty list element");
	ok(fails_with("1, * * * *", "minute: empty list element"), "trailing comma");
	ok(fails_with("1-* * * * *", "minute: unexpected \"*\""), "star in range end");
	ok(fails_with("a * * * *", "minute: unexpected \"a\""), "letter in minute");
	ok(fails_with("-1 * * * *", "minute: unexpected \"-\""), "negative number");
	ok(fails_with("99999 * * * *", "minute: number too long"), "huge number");
	ok(fails_with("1-5x * * * *", "minute: unexpected \"x\""), "trailing junk");
	ok(fails_with("@reboot", "unknown cron macro \"@reboot\""), "@reboot");
	ok(fails_with(NULL, "missing"), "NULL expression");
	{
		char		big[CRON_MAX_EXPR_LEN + 10];

		memset(big, '1', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ok(fails_with(big, "longer than"), "overlong expression");
	}
}

static void
test_next(void)
{
	is_text(next_of("* * * * *", 2026, 4, 15, 12, 0), "2026-04-15 12:01", "every minute: strictly after");
	is_text(next_of("30 9 * * *", 2026, 4, 15, 9, 29), "2026-04-15 09:30", "daily later today");
	is_text(next_of("30 9 * * *", 2026, 4, 15, 9, 30), "2026-04-16 09:30", "daily at the slot: tomorrow");
	is_text(next_of("0 0 * * *", 2026, 12, 31, 23, 59), "2027-01-01 00:00", "year boundary");
	is_text(next_of("0 0 1 * *", 2026, 1, 31, 12, 0), "2026-02-01 00:00", "month boundary");
	is_text(next_of("0 12 31 * *", 2026, 4, 1, 0, 0), "2026-05-31 12:00", "31st skips 30-day months");
	is_text(next_of("0 0 29 2 *", 2026, 3, 1, 0, 0), "2028-02-29 00:00", "leap day");
	is_text(next_of("0 0 29 2 *", 2096, 3, 1, 0, 0), "2104-02-29 00:00", "leap day across 2100");
	is_text(next_of("0 0 30 2 *", 2026, 1, 1, 0, 0), "no-match", "Feb 30 never matches (bounded)");
	is_text(next_of("0 0 31 4,6,9,11 *", 2026, 1, 1, 0, 0), "no-match", "31st of 30-day months");
	is_text(next_of("0 9 * * mon", 2026, 4, 15, 10, 0), "2026-04-20 09:00", "weekly Monday");
	is_text(next_of("0 9 * * 0", 2026, 4, 18, 10, 0), "2026-04-19 09:00", "Sunday as 0");
	is_text(next_of("0 9 * * 7", 2026, 4, 18, 10, 0), "2026-04-19 09:00", "Sunday as 7");
	/* Vixie OR: the 13th OR any Friday. 2026-04-15 is Wed; Fri is 17th. */
	is_text(next_of("0 0 13 * 5", 2026, 4, 15, 0, 0), "2026-04-17 00:00", "dom OR dow: Friday first");
	is_text(next_of("0 0 13 * 5", 2026, 4, 30, 0, 0), "2026-05-01 00:00", "dom OR dow: Friday 1 May");
	/* AND when one field starts with '*': odd days that are Mondays. */
	is_text(next_of("0 0 */2 * mon", 2026, 4, 15, 0, 0), "2026-04-27 00:00", "* in dom: AND (Mon 20th is even, 27th odd)");
	is_text(next_of("*/20 * * * *", 2026, 4, 15, 23, 45), "2026-04-16 00:00", "step crosses midnight");
	is_text(next_of("15 10-12/2 * * *", 2026, 4, 15, 10, 16), "2026-04-15 12:15", "hour step");
	is_text(next_of("0 0 1 jan *", 2026, 1, 1, 0, 0), "2027-01-01 00:00", "@yearly-like");
	is_text(next_of("59 23 31 12 *", 2026, 12, 31, 23, 59), "2027-12-31 23:59", "last minute of the year");
	is_text(next_of("0 0 * * *", 2026, 2, 28, 23, 59), "2026-03-01 00:00", "Feb 28 to Mar 1 in a common year");
	is_text(next_of("0 0 * * *", 2028, 2, 28, 23, 59), "2028-02-29 00:00", "Feb 28 to Feb 29 in a leap year");
}

int
main(void)
{
	test_calendar();
	test_parse_ok();
	test_parse_errors();
	test_next();
	return done_testing();
}
