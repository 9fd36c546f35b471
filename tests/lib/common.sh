# common.sh: helpers for the shell tests (sourced).  Every wait is bounded.

# fail MESSAGE: print and exit non-zero.
fail() { echo "FAIL: $*" >&2; exit 1; }

# The sync_changes format the tests run in (tests/fixtures/sync_changes.sql
# reads the same variable): FORMAT=current (the default, SPEC 11.1) or
# FORMAT=seed (SPEC 1.1).  STAMPS is that format's stamps column.
FORMAT=${FORMAT:-current}
export FORMAT
case $FORMAT in
    seed) STAMPS=field_timestamps ;;
    current) STAMPS=field_meta ;;
    *) fail "FORMAT must be current or seed, not '$FORMAT'" ;;
esac

# q DB SQL...: one value, unaligned, quiet.
q() { local db=$1; shift; psql -X -v ON_ERROR_STOP=1 -qAt -d "$db" "$@"; }

# poll_until SECONDS DB SQL EXPECTED: re-run SQL until it prints EXPECTED.
poll_until() {
    local secs=$1 db=$2 sql=$3 want=$4 got="" deadline=$((SECONDS + $1))
    while [ $SECONDS -lt $deadline ]; do
        got=$(psql -X -qAt -d "$db" -c "$sql" 2>/dev/null || true)
        [ "$got" = "$want" ] && return 0
        sleep 0.2
    done
    echo "poll_until: after ${secs}s '$sql' gave '$got', wanted '$want'" >&2
    return 1
}

# wait_for_log SECONDS REGEX: wait until the server log matches.
wait_for_log() {
    local secs=$1 re=$2 deadline=$(($SECONDS + $1))
    while [ $SECONDS -lt $deadline ]; do
        grep -Eq -- "$re" "$MANA_PG_LOG" && return 0
        sleep 0.2
    done
    echo "wait_for_log: no '$re' in the server log after ${secs}s" >&2
    return 1
}

# log_count REGEX: how many server log lines match.
log_count() { grep -Ec -- "$1" "$MANA_PG_LOG" || true; }

# setup_mana_sync [DB]: database with the sync_changes fixture and mana_ai.
setup_mana_sync() {
    local db=${1:-mana_sync}
    psql -X -qAt -d postgres -c "CREATE DATABASE $db" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f tests/fixtures/sync_changes.sql >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION mana_ai" >/dev/null
}

# start_mock_llm [ARGS]: start tests/mock_llm.py on a free loopback port;
# sets MOCK_PID and MOCK_URL, and stops it when the test exits.
start_mock_llm() {
    local portfile
    portfile=$(mktemp)
    python3 tests/mock_llm.py --port 0 --port-file "$portfile" "$@" >/dev/null 2>&1 &
    MOCK_PID=$!
    trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
    local deadline=$((SECONDS + 10))
    while [ ! -s "$portfile" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    [ -s "$portfile" ] || fail "mock LLM did not start"
    MOCK_URL="http://127.0.0.1:$(cat "$portfile")"
    rm -f "$portfile"
}

# set_guc NAME VALUE: ALTER SYSTEM + reload (for PGC_SIGHUP parameters).
set_guc() {
    psql -X -qAt -d postgres -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
}

# exporter_version_flags: the switch that leaves out the bgwriter collector
# of Debian's prometheus-postgres-exporter, where this version has one
# (bookworm's does; the newer ones of trixie and sid dropped it and refuse
# it).  Empty when there is none.
exporter_version_flags() {
    prometheus-postgres-exporter --help 2>&1 | grep -q -- '--\[no-\]collector.bgwriter' \
        && echo --no-collector.bgwriter
    return 0
}

# use_test_grant_key DIR: the TEST-ONLY RSA key of tests/fixtures/crypto in
# DIR, 0600 and owned by the server's user, as mana_ai.private_key_file;
# returns once it unwraps the fixture's grant.
use_test_grant_key() {
    local dir=$1 fx=tests/fixtures/crypto
    cp "$fx/TEST-ONLY-private-key.pem" "$dir/key.pem"
    chmod 0755 "$dir"
    chmod 0600 "$dir/key.pem"
    chown "$(q postgres -c "SELECT rolname FROM pg_roles WHERE oid = 10")" "$dir/key.pem" 2>/dev/null || true
    set_guc mana_ai.private_key_file "$dir/key.pem"
    poll_until 10 mana_sync "SELECT mana_ai.grant_status('$(grep '^grant_ok ' "$fx/vectors.txt" | cut -d' ' -f2-)')" ok \
        || fail "the TEST-ONLY key does not unwrap the grant"
}
