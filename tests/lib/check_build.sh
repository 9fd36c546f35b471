#!/usr/bin/env bash
# check_build.sh: inside a with_cluster.sh cluster, prove that the server
# loads mana_ai from the staged build under test (MANA_STAGE), never from a
# copy installed earlier (make install, make demo, a package): LOAD it and
# read the backend's own /proc/self/maps.  Exits non-zero with the path it
# found otherwise.
set -euo pipefail
want=$MANA_STAGE$(pg_config --pkglibdir)/mana_ai.so
[ -r "$want" ] || { echo "check_build: no staged library at $want (run tests/lib/stage.sh)" >&2; exit 1; }
maps=$(psql -X -qAt -v ON_ERROR_STOP=1 -d postgres -c "LOAD 'mana_ai'" \
        -c "SELECT pg_read_file('/proc/self/maps')" 2>&1) \
    || { echo "check_build: the server cannot load mana_ai: $maps" >&2; exit 1; }
# awk reads a here-string, not a pipe: it stops at the first match, and a
# writer into a pipe would die of SIGPIPE (141 under pipefail) once the
# maps outgrow the pipe's buffer.
got=$(awk '$NF ~ /\/mana_ai\.so$/ {print $NF; exit}' <<< "$maps")
if [ "$got" != "$want" ]; then
    echo "check_build: the server loaded '${got:-nothing}', not the build under test $want" >&2
    exit 1
fi
# the same file, not merely the same name
[ "$(stat -L -c %d:%i "$got")" = "$(stat -L -c %d:%i "$want")" ] \
    || { echo "check_build: $got is not the staged file" >&2; exit 1; }
