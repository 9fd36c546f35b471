/*
 * civil.h: proleptic Gregorian calendar arithmetic, Postgres-free.
 *
 * The one copy of the calendar the core parsers share (cron.c walks
 * wall-clock days, iso8601.c turns stamps into instants).  Pure
 * functions: no allocation, no time zones, no state.
 */
#ifndef MANA_AI_CIVIL_H
#define MANA_AI_CIVIL_H

#include <stdbool.h>
#include <stdint.h>

extern bool civil_is_leap_year(int year);
/* month is 1..12 */
extern int	civil_days_in_month(int year, int month);
/* Days since 1970-01-01 of y-m-d (negative before), and back. */
extern int64_t civil_days_from_date(int year, int month, int day);
extern void civil_date_from_days(int64_t days, int *year, int *month, int *day);
/* 0=Sunday..6=Saturday. */
extern int	civil_day_of_week(int year, int month, int day);

#endif
