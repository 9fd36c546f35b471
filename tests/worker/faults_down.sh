#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.max_attempts=3 -o mana_ai.llm_timeout=1000 -o mana_ai.role=mana_runner
# The LLM slow past mana_ai.llm_timeout, the LLM gone (its port closed)
# and back, and an unusable key file, with the worker (SPEC 4.10, 8, 9a):
#  1. a mission whose answer takes 4 s against a 1 s timeout fails with
#     "timed out" while the other mission of the tick is planned; after
#     max_attempts it gets a failed iteration;
#  2. with nothing listening on the LLM's port every tick still finishes
#     ok, listing each mission's error, and the missions back off; when
#     the LLM is back on that port they get their normal plans and their
#     attempts rows go;
#  3. a key file others may read fails the tick, not the missions: the run
#     is closed as failed (not left running), the reason is logged once,
#     no attempt is counted, and once the file is fixed the mission is
#     planned;
# and the bearer key is never in the log, tick_runs or the written rows.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
log_attempts
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
use_llm_key
wait_worker_ticks 2
runner_rows() { q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1'"; }
iteration() { q mana_sync -c "SELECT data -> 'iterations' -> -1 ->> '$2' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1'"; }

# --- 1. slow past the timeout -----------------------------------------------------
add_missions <<'EOF'
m-fast|u-fast|Schnell geplant
m-slow|u-slow|Zu langsam [mock:latency:4000]
EOF
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id IN ('m-fast', 'm-slow')" 2 \
    || fail "m-fast and m-slow did not settle"
first=$(q mana_sync -c "SELECT min(id) FROM mana_ai.tick_runs WHERE due_missions = 2")
[ "$(q mana_sync -c "SELECT status || '|' || plans_written_back || '|' || (errors ->> 0 LIKE 'mission m-slow: calling-llm: timed out after%') || '|' || jsonb_array_length(errors)
                      FROM mana_ai.tick_runs WHERE id = $first")" = "ok|1|true|1" ] \
    || fail "first tick: $(q mana_sync -c "SELECT status, plans_written_back, errors FROM mana_ai.tick_runs WHERE id = $first")"
[ "$(iteration m-fast overallStatus)" = awaiting-review ] || fail "m-fast was not planned"
[ "$(q mana_sync -c "SELECT string_agg(attempts || ':' || extract(epoch FROM next_attempt_at - updated_at)::int, ',' ORDER BY logged_at) FROM public.attempt_log WHERE mission_id = 'm-slow'")" = "1:1,2:2" ] \
    || fail "m-slow backoff: $(q mana_sync -c "SELECT attempts, next_attempt_at - updated_at, last_error FROM public.attempt_log WHERE mission_id = 'm-slow'")"
[ "$(iteration m-slow overallStatus)|$(q mana_sync -c "SELECT data -> 'iterations' -> -1 -> 'errorDetails' ->> 'phase' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-slow'")" = "failed|calling-llm" ] \
    || fail "m-slow has no failed iteration"
case $(iteration m-slow summary) in "timed out after "*" s (deadline)") ;; *) fail "m-slow failed with '$(iteration m-slow summary)'" ;; esac
[ "$(mock_calls '[mock:latency:4000]' | grep -c .)" = 3 ] || fail "m-slow: $(mock_calls '[mock:latency:4000]' | grep -c .) calls, wanted 3 (a timeout is not retried within the call)"
echo "slow past the timeout: timed out, backed off 1 s and 2 s, failed iteration; m-fast planned in the same tick"

# --- 2. the LLM gone, then back on the same port --------------------------------------
set_guc mana_ai.max_attempts 10   # plenty of room while the LLM is away
wait_worker_ticks 2
port=${MOCK_URL##*:}
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
python3 -c 'import socket, sys; s = socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) else 1)' "$port" \
    || fail "something still listens on the mock's port"
before=$(q mana_sync -c "SELECT coalesce(max(id), 0) FROM mana_ai.tick_runs")
add_missions <<'EOF'
m-a|u-a|Wenn das LLM zurueck ist
m-b|u-b|Auch dieser wartet
EOF
poll_until 60 mana_sync "SELECT count(*) FROM mana_ai.mission_attempts WHERE mission_id IN ('m-a', 'm-b') AND attempts >= 2" 2 \
    || fail "the missions did not back off while the LLM was down: $(q mana_sync -c "SELECT * FROM mana_ai.mission_attempts")"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE id > $before AND status <> 'ok' AND finished_at IS NOT NULL")" = 0 ] \
    || fail "a tick did not finish ok while the LLM was down"
# libcurl's own words: "Couldn't connect to server", "Could not ..." since curl 8.
down_errors="SELECT count(*) FROM mana_ai.tick_runs WHERE id > $before AND status = 'ok'
                 AND EXISTS (SELECT FROM jsonb_array_elements_text(errors) e WHERE e ~ '^mission m-a: calling-llm: transport error: Could(n''t| not) connect to server$')
                 AND EXISTS (SELECT FROM jsonb_array_elements_text(errors) e WHERE e ~ '^mission m-b: calling-llm: transport error: Could(n''t| not) connect to server$')"
[ "$(q mana_sync -c "$down_errors")" -ge 2 ] \
    || fail "tick errors while down: $(q mana_sync -c "SELECT errors FROM mana_ai.tick_runs WHERE id > $before AND errors <> '[]' LIMIT 2")"
[ "$(q mana_sync -c "SELECT bool_and(next_attempt_at - updated_at = interval '1 s' * 2 ^ (attempts - 1)) FROM public.attempt_log WHERE mission_id IN ('m-a', 'm-b')")" = t ] \
    || fail "backoff while down is not tick_interval * 2^(n-1)"
[ "$(runner_rows m-a)$(runner_rows m-b)" = 00 ] || fail "something was written while the LLM was down"
python3 tests/mock_llm.py --port "$port" >/dev/null 2>&1 &
MOCK_PID=$!   # the EXIT trap of start_mock_llm stops this one
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id IN ('m-a', 'm-b')" 2 \
    || fail "the missions were not planned once the LLM was back"
for m in m-a m-b; do
    [ "$(runner_rows $m)|$(iteration $m overallStatus)" = "1|awaiting-review" ] || fail "$m: no normal plan after the LLM came back"
done
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts")" = 0 ] || fail "attempts rows left after recovery"
echo "LLM down: ticks ok, missions backed off; back on its port: planned, attempts cleared"

# --- 3. a key file others may read --------------------------------------------
chmod 0644 "$LLM_KEY_FILE"
before=$(q mana_sync -c "SELECT coalesce(max(id), 0) FROM mana_ai.tick_runs")
add_missions <<'EOF'
m-c|u-c|Schluessel kaputt
EOF
poll_until 30 mana_sync "SELECT count(*) >= 1 FROM mana_ai.tick_runs WHERE id > $before AND status = 'failed'" t \
    || fail "no failed tick with an unusable key file: $(q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs WHERE id > $before")"
[ "$(q mana_sync -c "SELECT DISTINCT source || '|' || (finished_at IS NOT NULL) || '|' || (errors ->> -1 LIKE 'LLM key file \"%\" has group or world access')
                      FROM mana_ai.tick_runs WHERE id > $before AND status = 'failed'")" = "worker|true|true" ] \
    || fail "failed tick: $(q mana_sync -c "SELECT source, finished_at, errors FROM mana_ai.tick_runs WHERE id > $before AND status = 'failed'")"
wait_for_log 10 'mana_ai worker: LLM key file ".*" has group or world access' || fail "the key file problem was not logged"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts")" = 0 ] || fail "an operator's key file counted as the mission's failure"
chmod 0600 "$LLM_KEY_FILE"
# Planned by a later worker tick: so the failed one let go of the tick lock.
poll_until 40 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-c'" 1 \
    || fail "m-c was not planned after the key file was fixed"
[ "$(iteration m-c overallStatus)" = awaiting-review ] || fail "m-c: no normal plan"
[ "$(log_count 'has group or world access')" = 1 ] || fail "the key file problem was logged $(log_count 'has group or world access') times"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running' AND id < (SELECT max(id) FROM mana_ai.tick_runs)")" = 0 ] \
    || fail "a tick run was left running"
echo "unusable key file: tick closed as failed, logged once, no attempt counted; fixed: planned"

[ "$(q mana_sync -c "SELECT value >= 3 + 2 * 2 FROM mana_ai.metrics WHERE name = 'mana_ai_mission_errors_total'")" = t ] \
    || fail "mission errors not counted: $(q mana_sync -c "SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_mission_errors_total'")"
assert_no_key
[ "$(log_count 'terminated by signal')" = 0 ] || fail "a process crashed"
echo "the bearer key is nowhere but in the request headers"
