#!/usr/bin/env bash
# encoding.sh (issue 19): mana_ai runs only in a UTF8 database.  In a
# LATIN1 database (template0) CREATE EXTENSION is refused before it creates
# anything, with SQLSTATE 0A000 (feature_not_supported), the database's
# encoding in the message and a hint; an installed 0.2.0 (which did not
# check) is refused the update to the current version the same way and
# stays at 0.2.0.  A UTF8 database installs as before.
# Runs inside with_cluster.sh (no preload), cwd = repo root.
set -euo pipefail
. tests/lib/common.sh
current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" mana_ai.control)

q postgres -c "CREATE DATABASE mana_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
q mana_latin1 -f tests/fixtures/sync_changes.sql >/dev/null

refused() {   # refused SQL: the refusal, with its SQLSTATE, message and hint
    local err
    err=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d mana_latin1 -c "$1" 2>&1) && fail "$1 succeeded in a LATIN1 database"
    grep -q 'ERROR:  0A000: mana_ai needs a UTF8 database; database "mana_latin1" is LATIN1' <<<"$err" || fail "$1: unexpected error: $err"
    grep -q '^HINT:  .*UTF8' <<<"$err" || fail "$1: no hint: $err"
}

refused "CREATE EXTENSION mana_ai"
[ "$(q mana_latin1 -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'mana_ai'")" = 0 ] || fail "the refused install left a schema behind"
echo "ok - CREATE EXTENSION in a LATIN1 database: refused (0A000, with a hint), nothing created"

q mana_latin1 -c "CREATE EXTENSION mana_ai VERSION '0.2.0'" >/dev/null
refused "ALTER EXTENSION mana_ai UPDATE TO '$current'"
[ "$(q mana_latin1 -c "SELECT extversion FROM pg_extension WHERE extname = 'mana_ai'")" = 0.2.0 ] || fail "the refused update changed the version"
echo "ok - ALTER EXTENSION UPDATE of a LATIN1 0.2.0 install: refused, still 0.2.0"

q postgres -c "CREATE DATABASE mana_utf8 TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
q mana_utf8 -f tests/fixtures/sync_changes.sql >/dev/null
q mana_utf8 -c "CREATE EXTENSION mana_ai" >/dev/null
[ "$(q mana_utf8 -c "SELECT extversion FROM pg_extension WHERE extname = 'mana_ai'")" = "$current" ] || fail "no install in a UTF8 database"
echo "ok - a UTF8 database installs $current"
echo "PASS encoding"
