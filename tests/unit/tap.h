/*
 * tap.h: a minimal TAP producer for the Postgres-free unit tests.
 * Each test binary prints "ok N - name" / "not ok N - name" and a plan;
 * tests/unit/Makefile runs them through prove.
 */
#ifndef MANA_AI_TAP_H
#define MANA_AI_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n = 0;
static int tap_failed = 0;

#define ok(cond, ...) do { \
	int _c = (cond) ? 1 : 0; \
	tap_n++; \
	if (!_c) tap_failed++; \
	printf("%sok %d - ", _c ? "" : "not ", tap_n); \
	printf(__VA_ARGS__); \
	printf("\n"); \
	if (!_c) printf("#   failed at %s:%d\n", __FILE__, __LINE__); \
} while (0)

#define is_str(got, want, ...) do { \
	const char *_g = (got), *_w = (want); \
	int _same = (_g && _w) ? strcmp(_g, _w) == 0 : _g == _w; \
	ok(_same, __VA_ARGS__); \
	if (!_same) printf("#   got:  %s\n#   want: %s\n", _g ? _g : "(null)", _w ? _w : "(null)"); \
} while (0)

#define done_testing() (printf("1..%d\n", tap_n), tap_failed ? 1 : 0)

#endif
