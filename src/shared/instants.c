/*
 * instants.c: instants and ISO-8601 text inside the server, and the SQL
 * function mana_ai.iso_text(timestamptz).
 *
 * Owns the one offset between PostgreSQL's epoch and the Unix epoch the
 * core parsers use, and the one formatter of the stamps mana_ai writes
 * (JavaScript's toISOString shape, as the web app writes them).  Parsing
 * client stamps is src/core/iso8601.c's job.  Must never format through
 * the session's DateStyle or TimeZone: a stamp is the same text whoever
 * runs the tick.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "shared/instants.h"

/* POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE days, in microseconds. */
static const int64 unix_epoch_offset_usec =
	(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

int64
mana_ai_unix_usec(TimestampTz ts)
{
	return ts + unix_epoch_offset_usec;
}

TimestampTz
mana_ai_from_unix_usec(int64 unix_usec)
{
	return (TimestampTz) (unix_usec - unix_epoch_offset_usec);
}

char *
mana_ai_iso_utc(TimestampTz ts, int frac_digits)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			year;

	if (TIMESTAMP_NOT_FINITE(ts))
		return NULL;
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	/* to_char's YYYY: no year zero, BC years counted up from 1 */
	year = tm.tm_year > 0 ? tm.tm_year : -(tm.tm_year - 1);
	if (frac_digits == 6)
		return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
						year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
						tm.tm_sec, (int) fsec);
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
					year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
					tm.tm_sec, (int) (fsec / 1000));
}

/* mana_ai.iso_text(ts): the stamp with milliseconds; NULL for infinity. */
PG_FUNCTION_INFO_V1(mana_ai_iso_text);
Datum
mana_ai_iso_text(PG_FUNCTION_ARGS)
{
	char	   *s = mana_ai_iso_utc(PG_GETARG_TIMESTAMPTZ(0), 3);

	if (s == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(s));
}
