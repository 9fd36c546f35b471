/*
 * civil.c: proleptic Gregorian calendar arithmetic, Postgres-free.
 *
 * Owns the day counts every core parser needs (days since 1970-01-01,
 * leap years, month lengths, weekdays).  Must never allocate, know about
 * time zones or depend on the C library's time functions, whose range
 * and zone handling differ between platforms.
 */
#include "civil.h"

bool
civil_is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int
civil_days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (month == 2 && civil_is_leap_year(year))
		return 29;
	return days[month - 1];
}

/* Count days in 400-year eras starting in March, so Feb 29 falls last. */
int64_t
civil_days_from_date(int year, int month, int day)
{
	int64_t		y = (int64_t) year - (month <= 2);
	int64_t		era = (y >= 0 ? y : y - 399) / 400;
	int64_t		yoe = y - era * 400;
	int64_t		doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
	int64_t		doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void
civil_date_from_days(int64_t days, int *year, int *month, int *day)
{
	int64_t		z = days + 719468;
	int64_t		era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t		doe = z - era * 146097;
	int64_t		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t		mp = (5 * doy + 2) / 153;
	int			m = (int) (mp < 10 ? mp + 3 : mp - 9);

	*day = (int) (doy - (153 * mp + 2) / 5 + 1);
	*month = m;
	*year = (int) (yoe + era * 400 + (m <= 2));
}

int
civil_day_of_week(int year, int month, int day)
{
	int64_t		d = civil_days_from_date(year, month, day);
	int64_t		w = (d + 4) % 7;	/* 1970-01-01 was a Thursday */

	return (int) (w < 0 ? w + 7 : w);
}
