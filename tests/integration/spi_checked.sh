#!/usr/bin/env bash
# spi_checked.sh: no SPI return code is thrown away.  Every call of
# SPI_connect, SPI_finish, SPI_execute*, SPI_keepplan and SPI_cursor_open* in
# src/*.c src/*/*.c must use its result (compare it, assign it, return it): a
# statement that begins with the call, or casts it to void, discards it.
# SPI_connect and SPI_finish go through mana_ai_spi_connect() and
# mana_ai_spi_finish() (spi_plans.c), which raise on anything but OK.
# SPI_cursor_fetch, _move and _close return void: nothing to check.
# Needs no server; runs with the integration tests (cwd = repo root).
set -euo pipefail
source tests/lib/common.sh

bad=$(grep -nE '^[[:space:]]*(\(void\)[[:space:]]*)?SPI_(connect|connect_ext|finish|execute[a-z_]*|keepplan|cursor_open[a-z_]*|cursor_parse_open)[[:space:]]*\(' src/*.c src/*/*.c || true)
[ -z "$bad" ] || fail "SPI calls whose return code is not checked:
$bad"
bare=$(grep -nE '\bSPI_(connect|finish)\(\)' src/*.c src/*/*.c | grep -v '^src/shared/spi_plans.c:' || true)
[ -z "$bare" ] || fail "SPI_connect/SPI_finish outside spi_plans.c (use mana_ai_spi_connect/finish):
$bare"
n=$(grep -cE 'SPI_(execute[a-z_]*|keepplan)[[:space:]]*\(' src/*.c src/*/*.c | awk -F: '{s += $2} END {print s}')
[ "$n" -gt 10 ] || fail "found only $n SPI calls: the pattern no longer matches the code"
echo "ok - every SPI return code in src/*.c src/*/*.c is checked ($n execute/keepplan calls)"
