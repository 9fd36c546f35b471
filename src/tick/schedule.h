/*
 * schedule.h: when a mission runs next (SPEC 1.2 cadences, SPEC 4.9).
 */
#ifndef MANA_AI_SCHEDULE_H
#define MANA_AI_SCHEDULE_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"

/*
 * Next slot strictly after from for the cadence, daily/weekly/cron read in
 * the zone named by mana_ai.timezone.  *is_null is set (and 0 returned)
 * for {kind:'manual'}.  ereports ERROR (ERRCODE_INVALID_PARAMETER_VALUE)
 * on an invalid cadence or a non-finite from.
 */
extern TimestampTz mana_ai_next_run_at(Jsonb *cadence, TimestampTz from, bool *is_null);

/* The same in an explicit zone (a name pg_tzset knows, e.g. Europe/Berlin). */
extern TimestampTz mana_ai_next_run_at_in_zone(Jsonb *cadence, TimestampTz from,
											   const char *zone, bool *is_null);

#endif
