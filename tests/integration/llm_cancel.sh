#!/usr/bin/env bash
# cluster: --preload
# llm_cancel.sh: the LLM client inside a backend, against tests/mock_llm.py.
#
# Runs inside with_cluster.sh (plain cluster, cwd = repo root):
#   - llm_test_call answers through the mock (3 copies at once);
#   - a query cancel during calls the mock never answers returns within 2 s;
#   - pg_terminate_backend in the same situation ends the session within 2 s;
#   - mana_ai.llm_timeout bounds a call the mock never answers;
#   - a key file readable by others is refused with a clear error; at 0600
#     the bearer header is sent and the key shows up in no result or log;
#   - PUBLIC cannot call llm_test_call.
set -euo pipefail

tmp=$(mktemp -d)
chmod 711 "$tmp"
mock_pid=
bg_pid=
cleanup() {
    [ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null || true
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok - $*"; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
elapsed_since() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
lt() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }

# wait_until DESCRIPTION SECONDS COMMAND...: poll COMMAND every 50 ms.
wait_until() {
    local what=$1 limit=$2; shift 2
    local deadline=$(( $(date +%s) + limit ))
    until "$@"; do
        [ "$(date +%s)" -le "$deadline" ] || fail "timed out waiting for $what"
        sleep 0.05
    done
}

# set_guc NAME VALUE: ALTER SYSTEM, reload, and wait until new sessions see it.
set_guc() {
    q "ALTER SYSTEM SET $1 = '$2'" >/dev/null
    q "SELECT pg_reload_conf()" >/dev/null
    wait_until "$1 = $2" 10 guc_is "$1" "$2"
}
guc_is() { [ "$(q "SELECT current_setting('$1')")" = "$2" ]; }

python3 tests/mock_llm.py --port-file "$tmp/port" --max-lifetime 300 >/dev/null &
mock_pid=$!
wait_until "the mock's port" 10 test -s "$tmp/port"
port=$(head -1 "$tmp/port")
mock() { curl -sf "http://127.0.0.1:$port$1" ${2:+-d "$2"}; }

q "CREATE EXTENSION IF NOT EXISTS mana_ai" >/dev/null
set_guc mana_ai.llm_url "http://127.0.0.1:$port"

# 1. Three calls at once, all answered.
res=$(q "SELECT count(*) FILTER (WHERE (c->>'ok')::bool AND (c->>'total_tokens')::int = 42
                                  AND c->>'content' LIKE '%\`\`\`json%')
         FROM jsonb_array_elements(mana_ai.llm_test_call('sys', 'Plane.', 3)) c")
[ "$res" = 3 ] || fail "expected 3 good answers, got $res"
pass "llm_test_call: 3 concurrent calls answered"

# start_hanging_call NAME: a session whose calls the mock never answers.
start_hanging_call() {
    mock /__reset '{}' >/dev/null
    PGAPPNAME=$1 psql -X -qAt -c "SELECT mana_ai.llm_test_call('sys', 'warte [mock:hang]', 4)" \
        >"$tmp/$1.out" 2>&1 &
    bg_pid=$!
    wait_until "4 calls in flight" 10 in_flight_at_least 4
}
in_flight_is() {
    mock /__stats | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["in_flight"] == int(sys.argv[1]) else 1)' "$1"
}
in_flight_at_least() {
    mock /__stats | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["in_flight"] >= int(sys.argv[1]) else 1)' "$1"
}

session_gone() { ! kill -0 "$bg_pid" 2>/dev/null; }
# wait_session_gone: the background psql exits within 2 s; prints seconds.
wait_session_gone() {
    local t0=$1
    wait_until "the session to end" 5 session_gone
    wait "$bg_pid" 2>/dev/null || true
    bg_pid=
    elapsed_since "$t0"
}

# 2. Query cancel while four calls hang.
start_hanging_call llm_cancel
t0=$(now)
[ "$(q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'llm_cancel'")" = t ] \
    || fail "no backend to cancel"
secs=$(wait_session_gone "$t0")
grep -q "canceling statement due to user request" "$tmp/llm_cancel.out" \
    || fail "cancel: unexpected output: $(cat "$tmp/llm_cancel.out")"
lt "$secs" 2 || fail "cancel took $secs s"
wait_until "the backend to close its 4 connections" 2 in_flight_is 0
pass "query cancel aborts 4 hanging calls in $secs s, connections closed"

# 3. SIGTERM (pg_terminate_backend) while four calls hang.
start_hanging_call llm_terminate
t0=$(now)
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'llm_terminate'" >/dev/null
secs=$(wait_session_gone "$t0")
grep -q "terminating connection due to administrator command" "$tmp/llm_terminate.out" \
    || fail "terminate: unexpected output: $(cat "$tmp/llm_terminate.out")"
lt "$secs" 2 || fail "terminate took $secs s"
wait_until "the backend's connections to close" 2 in_flight_is 0
pass "pg_terminate_backend ends the session in $secs s"

# 4. The deadline bounds a call that is never answered.
set_guc mana_ai.llm_timeout 1s
t0=$(now)
res=$(q "SELECT string_agg(DISTINCT c->>'error', ',') FROM jsonb_array_elements(
             mana_ai.llm_test_call('sys', 'warte [mock:hang]', 2)) c")
secs=$(elapsed_since "$t0")
case $res in *"timed out"*) ;; *) fail "timeout: got '$res'" ;; esac
lt "$secs" 2.5 || fail "timeout took $secs s"
pass "llm_timeout=1s: hanging calls fail with '$res' in $secs s"
set_guc mana_ai.llm_timeout 1min

# 5. The key file: refused when others may read it, used at 0600.
key="sk-mana-test-$(date +%s%N)"
printf '%s\n' "$key" >"$tmp/llm.key"
owner=$(stat -c %u "$(q 'SHOW data_directory')")
chown "$owner" "$tmp/llm.key" 2>/dev/null || true
chmod 644 "$tmp/llm.key"
set_guc mana_ai.llm_key_file "$tmp/llm.key"
if out=$(q "SELECT mana_ai.llm_test_call('sys', 'x')" 2>&1); then
    fail "a world-readable key file was accepted"
fi
case $out in *"has group or world access"*) ;; *) fail "unexpected error: $out" ;; esac
pass "group/world-readable key file refused: $(echo "$out" | head -1)"

chmod 600 "$tmp/llm.key"
mock /__reset '{}' >/dev/null
res=$(q "SELECT mana_ai.llm_test_call('sys', 'x')")
case $res in *"$key"*) fail "the key is in the result" ;; esac
auth=$(mock /__requests | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[-1]["headers"].get("Authorization",""))')
[ "$auth" = "Bearer $key" ] || fail "bearer header not sent (got '${auth:0:20}...')"
pass "key file at 0600: bearer header sent, key not in the result"
ua=$(mock /__requests | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[-1]["headers"].get("User-Agent",""))')
want="mana_ai/$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" mana_ai.control)"
[ "$ua" = "$want" ] || fail "User-Agent is '$ua', not '$want'"
pass "User-Agent names the release ($ua)"
if grep -q "$key" "$MANA_PG_LOG" 2>/dev/null; then fail "the key is in the server log"; fi
pass "the key is not in the server log"
q "ALTER SYSTEM RESET mana_ai.llm_key_file" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

# 6. PUBLIC may not call it.
q "DROP ROLE IF EXISTS llm_nobody; CREATE ROLE llm_nobody" >/dev/null 2>&1
if out=$(psql -X -qAt -c "SET ROLE llm_nobody" -c "SELECT mana_ai.llm_test_call('s', 'u')" 2>&1); then
    fail "PUBLIC could call llm_test_call"
fi
case $out in *"permission denied"*) ;; *) fail "unexpected: $out" ;; esac
q "DROP ROLE llm_nobody" >/dev/null
pass "llm_test_call is not granted to PUBLIC"

q "ALTER SYSTEM RESET mana_ai.llm_url" >/dev/null
q "ALTER SYSTEM RESET mana_ai.llm_timeout" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "DROP EXTENSION mana_ai" >/dev/null
echo "llm_cancel: all passed"
