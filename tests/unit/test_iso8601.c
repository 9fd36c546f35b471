/*
 * test_iso8601.c: the strict stamp parser (src/core/iso8601.c).
 * Equal instants in different spellings must give equal microseconds;
 * anything not a zoned RFC 3339 stamp (a bare date included) must be refused.
 */
#include <stdint.h>
#include <string.h>

#include "iso8601.h"
#include "tap.h"

static int
parses_to(const char *s, int64_t want)
{
	int64_t		got = -42;

	if (!iso8601_parse(s, strlen(s), &got))
		return 0;
	if (got != want)
		printf("#   %s -> %lld, want %lld\n", s, (long long) got, (long long) want);
	return got == want;
}

static int
refused(const char *s)
{
	int64_t		got = 7;

	return !iso8601_parse(s, strlen(s), &got) && got == 7;
}

int
main(void)
{
	/* 2026-04-15T12:00:00Z = 1776254400 s */
	const int64_t noon = INT64_C(1776254400) * 1000000;

	ok(parses_to("1970-01-01T00:00:00Z", 0), "epoch");
	ok(parses_to("2026-04-15T12:00:00Z", noon), "Z");
	ok(parses_to("2026-04-15T12:00:00.000Z", noon), "millis zero");
	ok(parses_to("2026-04-15T14:00:00+02:00", noon), "+02:00");
	ok(parses_to("2026-04-15T14:00:00+0200", noon), "+0200");
	ok(parses_to("2026-04-15T14:00:00+02", noon), "+02");
	ok(parses_to("2026-04-15T07:30:00-04:30", noon), "-04:30");
	ok(parses_to("2026-04-15 12:00:00Z", noon), "space separator");
	ok(parses_to("2026-04-15t12:00:00z", noon), "lowercase t and z");
	ok(parses_to("2026-04-15T12:00Z", noon), "no seconds");
	ok(parses_to("2026-04-15T12:00:00.123456Z", noon + 123456), "microseconds");
	ok(parses_to("2026-04-15T12:00:00.1Z", noon + 100000), "one fraction digit");
	ok(parses_to("2026-04-15T12:00:00.1234569Z", noon + 123456), "nanos truncated");
	ok(parses_to("2026-04-15T12:00:00.000001Z", noon + 1), "one microsecond");
	ok(parses_to("1969-12-31T23:59:59.5Z", -500000), "before the epoch");
	ok(parses_to("2024-02-29T00:00:00Z", INT64_C(1709164800) * 1000000), "leap day");
	ok(parses_to("2000-02-29T00:00:00Z", INT64_C(951782400) * 1000000), "leap day 2000");
	ok(parses_to("0001-01-01T00:00:00Z", INT64_C(-62135596800) * 1000000), "year 1");
	ok(parses_to("9999-12-31T23:59:59.999999Z", INT64_C(253402300799) * 1000000 + 999999), "year 9999");

	ok(refused(""), "empty");
	ok(refused("2026-04-15T12:00:00"), "no zone");
	ok(refused("2026-04-15"), "bare date (no zone either)");
	ok(refused("2026-04-15T"), "date and separator only");
	ok(refused("2026-04-15 "), "date and space only");
	ok(refused("2026-04-15T12:00:00.Z"), "dot without digits");
	ok(refused("2026-13-01T00:00:00Z"), "month 13");
	ok(refused("2026-00-01T00:00:00Z"), "month 0");
	ok(refused("2026-02-29T00:00:00Z"), "no leap day in 2026");
	ok(refused("1900-02-29T00:00:00Z"), "no leap day in 1900");
	ok(refused("2026-04-31T00:00:00Z"), "April 31");
	ok(refused("2026-04-15T24:00:00Z"), "hour 24");
	ok(refused("2026-04-15T12:60:00Z"), "minute 60");
	ok(refused("2026-04-15T12:00:60Z"), "second 60");
	ok(refused("2026-04-15T12:00:00+24:00"), "offset 24h");
	ok(refused("2026-04-15T12:00:00+02:60"), "offset minute 60");
	ok(refused("2026-04-15T12:00:00+2"), "offset one digit");
	ok(refused("2026-04-15T12:00:00+02:0"), "offset minute one digit");
	ok(refused("2026-04-15T12:00:00Zjunk"), "trailing junk");
	ok(refused("2026-04-15T12:00:00Z "), "trailing space");
	ok(refused(" 2026-04-15T12:00:00Z"), "leading space");
	ok(refused("2026-4-15T12:00:00Z"), "one-digit month");
	ok(refused("26-04-15T12:00:00Z"), "two-digit year");
	ok(refused("2026-04-15T"), "T without time");
	ok(refused("2026-04-15X12:00:00Z"), "bad separator");
	ok(refused("2026-04-15T1:00:00Z"), "one-digit hour");
	ok(refused("not a date"), "text");
	ok(refused("1776254400"), "epoch number");
	ok(refused("2026-04-15T12:00:00,5Z"), "comma fraction");
	ok(refused("+2026-04-15T12:00:00Z"), "signed year");

	/* Never reads past len: a valid prefix cut short is refused. */
	{
		const char *full = "2026-04-15T12:00:00Z";
		int64_t		v;
		int			all_refused = 1;

		for (size_t n = 11; n < strlen(full) - 1; n++)
			if (iso8601_parse(full, n, &v) && n != 16)
				all_refused = 0;
		ok(all_refused, "every truncation of a zoned stamp is refused");
		ok(!iso8601_parse(full, 10, &v), "the date prefix alone is refused");
	}
	ok(!iso8601_parse(NULL, 0, NULL), "NULL input refused");

	return done_testing();
}
