/*
 * instants.h: instants and their ISO-8601 text inside the server.
 *
 * TimestampTz counts microseconds from 2000-01-01; src/core/ (iso8601.c)
 * counts them from 1970-01-01; mana_ai writes stamps as UTC ISO-8601.
 * Every conversion between the three goes through here.
 */
#ifndef MANA_AI_INSTANTS_H
#define MANA_AI_INSTANTS_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* Microseconds since the Unix epoch (src/core/iso8601.h's scale), and back. */
extern int64 mana_ai_unix_usec(TimestampTz ts);
extern TimestampTz mana_ai_from_unix_usec(int64 unix_usec);

/*
 * "YYYY-MM-DDTHH:MM:SS.fffZ" in UTC with frac_digits (3 or 6) of the
 * second, whatever the session's DateStyle and TimeZone; the year as
 * to_char's YYYY spells it.  NULL for an infinite ts; ERROR when out of
 * range.  palloc'd.
 */
extern char *mana_ai_iso_utc(TimestampTz ts, int frac_digits);

#endif
