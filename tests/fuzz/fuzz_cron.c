/*
 * fuzz_cron.c: libFuzzer target for src/core/cron.c.
 *
 * Any bytes go to cron_parse; whatever parses is searched from a start
 * derived from the input, and the answer must really match and be
 * strictly later.  Build from the repo root with clang
 * -fsanitize=fuzzer,address against every src/core .c file (the command
 * is in docs/schedule.md).
 */
#include "cron.h"

#include <stdlib.h>
#include <string.h>

static long
minutes_of(const CronTime *t)
{
	return (long) cron_days_from_civil(t->year, t->month, t->day) * 1440 +
		t->hour * 60 + t->minute;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char		expr[CRON_MAX_EXPR_LEN + 2];
	char		err[CRON_ERR_LEN];
	CronExpr	e;
	CronTime	from,
				next;
	size_t		n = size < sizeof(expr) - 1 ? size : sizeof(expr) - 1;
	unsigned	seed = size > 0 ? data[0] : 0;

	memcpy(expr, data, n);
	expr[n] = '\0';
	if (!cron_parse(expr, &e, err, sizeof(err)))
	{
		if (err[0] == '\0' || strlen(err) >= sizeof(err))
			abort();			/* every failure must explain itself */
		return 0;
	}

	/* A start somewhere in 1969..2100, from the first byte. */
	from.year = 1969 + (int) (seed % 132);
	from.month = 1 + (int) (seed % 12);
	from.day = 1 + (int) (seed % (unsigned) cron_days_in_month(from.year, from.month));
	from.hour = (int) (seed % 24);
	from.minute = (int) (seed % 60);
	if (!cron_next(&e, &from, 30, &next))
		return 0;
	if (minutes_of(&next) <= minutes_of(&from) ||
		next.month < 1 || next.month > 12 ||
		next.day < 1 || next.day > cron_days_in_month(next.year, next.month) ||
		!cron_day_matches(&e, next.year, next.month, next.day) ||
		!((e.hours >> next.hour) & 1) ||
		!((e.minutes >> next.minute) & 1))
		abort();
	return 0;
}
