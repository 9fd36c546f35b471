/*
 * iso8601.h: strict ISO-8601 / RFC 3339 timestamp parsing, Postgres-free.
 *
 * Owns turning a client-supplied stamp string into an instant.  Used by
 * the LWW merge (field stamps) and the grant expiry check.  Never
 * allocates, never reads past len.
 */
#ifndef MANA_AI_ISO8601_H
#define MANA_AI_ISO8601_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parse "YYYY-MM-DD[T ]HH:MM[:SS[.fraction]](Z|+HH:MM|-HH:MM|+HHMM|+HH)"
 * into microseconds since 1970-01-01T00:00:00Z.  Fractions beyond
 * microseconds are truncated.  Returns false (and leaves *unix_usec
 * alone) for anything else, including out-of-range fields and a missing
 * zone designator (so a bare date "YYYY-MM-DD" is refused too).
 */
extern bool iso8601_parse(const char *s, size_t len, int64_t *unix_usec);

#endif
