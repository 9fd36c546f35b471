/*
 * iso8601.c: strict ISO-8601 / RFC 3339 timestamp parsing, Postgres-free.
 *
 * Owns turning a client-supplied stamp into microseconds since the Unix
 * epoch so that stamps compare as instants, not strings (SPEC 2).  Must
 * never allocate, never read past len, never accept a stamp without a
 * zone (a zone-less stamp would be read in some server-local time and
 * silently reorder writes), and never overflow on hostile input.
 */
#include "iso8601.h"

#include "civil.h"

/* A cursor over the input that refuses to run past its end. */
typedef struct Scan
{
	const char *p;
	const char *end;
} Scan;

static bool
at_end(const Scan *sc)
{
	return sc->p >= sc->end;
}

static bool
peek_is(const Scan *sc, char c)
{
	return !at_end(sc) && *sc->p == c;
}

static bool
take_char(Scan *sc, char c)
{
	if (!peek_is(sc, c))
		return false;
	sc->p++;
	return true;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Read exactly n decimal digits. */
static bool
take_digits(Scan *sc, int n, int *out)
{
	int			v = 0;

	if (sc->end - sc->p < n)
		return false;
	for (int i = 0; i < n; i++)
	{
		if (!is_digit(sc->p[i]))
			return false;
		v = v * 10 + (sc->p[i] - '0');
	}
	sc->p += n;
	*out = v;
	return true;
}

/* ".digits": microseconds, extra digits truncated; at least one digit. */
static bool
take_fraction(Scan *sc, int64_t *usec)
{
	int			ndigits = 0;
	int64_t		v = 0;

	while (!at_end(sc) && is_digit(*sc->p))
	{
		if (ndigits < 6)
			v = v * 10 + (*sc->p - '0');
		ndigits++;
		sc->p++;
	}
	if (ndigits == 0)
		return false;
	for (int i = ndigits; i < 6; i++)
		v *= 10;
	*usec = v;
	return true;
}

/* Z | ±HH:MM | ±HHMM | ±HH, as seconds east of UTC. */
static bool
take_zone(Scan *sc, int *offset_sec)
{
	int			sign;
	int			hh;
	int			mm = 0;

	if (take_char(sc, 'Z') || take_char(sc, 'z'))
	{
		*offset_sec = 0;
		return true;
	}
	if (take_char(sc, '+'))
		sign = 1;
	else if (take_char(sc, '-'))
		sign = -1;
	else
		return false;
	if (!take_digits(sc, 2, &hh) || hh > 23)
		return false;
	if (take_char(sc, ':'))
	{
		if (!take_digits(sc, 2, &mm))
			return false;
	}
	else if (!at_end(sc) && !take_digits(sc, 2, &mm))
		return false;
	if (mm > 59)
		return false;
	*offset_sec = sign * (hh * 3600 + mm * 60);
	return true;
}

bool
iso8601_parse(const char *s, size_t len, int64_t *unix_usec)
{
	Scan		sc;
	int			year, month, day;
	int			hour = 0, minute = 0, second = 0;
	int64_t		frac = 0;
	int			offset_sec = 0;
	int64_t		days;

	if (s == NULL || unix_usec == NULL)
		return false;
	sc.p = s;
	sc.end = s + len;

	if (!take_digits(&sc, 4, &year) || !take_char(&sc, '-') ||
		!take_digits(&sc, 2, &month) || !take_char(&sc, '-') ||
		!take_digits(&sc, 2, &day))
		return false;
	if (month < 1 || month > 12 || day < 1 || day > civil_days_in_month(year, month))
		return false;

	/* A bare date has no zone either: which midnight it means is unknown. */
	if (at_end(&sc))
		return false;
	if (!at_end(&sc))
	{
		if (!(take_char(&sc, 'T') || take_char(&sc, 't') || take_char(&sc, ' ')))
			return false;
		if (!take_digits(&sc, 2, &hour) || !take_char(&sc, ':') ||
			!take_digits(&sc, 2, &minute))
			return false;
		if (take_char(&sc, ':'))
		{
			if (!take_digits(&sc, 2, &second))
				return false;
			if (take_char(&sc, '.') && !take_fraction(&sc, &frac))
				return false;
		}
		if (hour > 23 || minute > 59 || second > 59)
			return false;
		if (!take_zone(&sc, &offset_sec))
			return false;
		if (!at_end(&sc))
			return false;
	}

	days = civil_days_from_date(year, month, day);
	*unix_usec = ((days * 86400 + hour * 3600 + minute * 60 + second - offset_sec)
				  * INT64_C(1000000)) + frac;
	return true;
}
