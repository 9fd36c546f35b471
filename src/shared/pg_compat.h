/*
 * pg_compat.h: the differences between the PostgreSQL majors mana_ai
 * builds against (15, 17 and 18), in one place.
 *
 * Owns every PG_VERSION_NUM test of the extension: the rest of the code
 * uses the names below and never tests the version itself.  Must never
 * hold behaviour, only spellings.
 */
#ifndef MANA_AI_PG_COMPAT_H
#define MANA_AI_PG_COMPAT_H

#include "postgres.h"

/*
 * PostgreSQL 18 replaced the trailing pg_attribute_noreturn() with a
 * leading pg_noreturn (C11 _Noreturn).  Before 18 the GCC attribute may
 * lead the declaration just as well: write "pg_noreturn extern void f();".
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * PostgreSQL 17 gave makeJsonLexContextCstringLen() a first argument, the
 * context to fill (NULL: allocate one).
 */
#if PG_VERSION_NUM >= 170000
#define mana_make_json_lex(json, len, enc, escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), (enc), (escapes))
#else
#define mana_make_json_lex(json, len, enc, escapes) \
	makeJsonLexContextCstringLen((json), (len), (enc), (escapes))
#endif

/*
 * PostgreSQL 17 renamed pgstat_fetch_stat_local_beentry() to
 * pgstat_get_local_beentry_by_index(); both take a 1-based index up to
 * pgstat_fetch_stat_numbackends().
 */
#if PG_VERSION_NUM >= 170000
#define mana_local_beentry(index) pgstat_get_local_beentry_by_index(index)
#else
#define mana_local_beentry(index) pgstat_fetch_stat_local_beentry(index)
#endif

#endif
