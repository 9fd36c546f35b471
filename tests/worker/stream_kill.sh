#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.writeback_batch_size=4 -o mana_ai.planner_protocol=json
# The streamed write-back (issue 20) under kill -9: N missions whose
# answers come staggered (each its own latency, 0.3 s to 7.5 s, by a
# [mock:latency:MS] marker), the worker killed KILLS times at a random
# moment of its LLM phase, each time after it has committed some plans
# of the tick while other calls were still in flight (with the write-back
# after the last call, as before, nothing would be committed by then).
# For each kill: the plans answered before it (the mock's arrival time of
# the request + its latency <= the kill) minus the plans committed before
# it (runner rows of that worker's transactions) is what the kill lost,
# and it is at most one open batch (mana_ai.writeback_batch_size = 4).
# Afterwards every mission is planned exactly once.
set -euo pipefail
source tests/lib/common.sh

KILLS=${KILLS:-3}
N=30
BATCH=4

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.llm_max_parallel 32

try_q() { psql -X -qAt -d "$1" -c "$2" 2>/dev/null || true; }
mock_stat() { curl -s --max-time 2 "$MOCK_URL/__stats" | jq -r ".$1" 2>/dev/null || true; }
worker_pid() { try_q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'"; }
wait_new_worker() {
    local deadline=$((SECONDS + 30))
    pid=""
    while [ $SECONDS -lt $deadline ]; do
        pid=$(worker_pid)
        [ -n "$pid" ] && [ "$pid" != "$1" ] && return 0
        sleep 0.1
    done
    fail "no new tick worker within 30 s after killing $1 (crash restart)"
}
# runner rows written by transactions that began in (FROM, TO], epoch seconds
committed() {
    try_q mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'
                      AND created_at > to_timestamp($1) AND created_at <= to_timestamp($2)"
}

# One mission per user, no agent, hourly, due since long ago; mission k's
# answer takes 300 + 250 * ((7k) mod N) ms: every latency once, shuffled.
q mana_sync -c "
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'm-' || k, 'u' || lpad(k::text, 2, '0'), 'insert',
       jsonb_build_object('title', 'Mission ' || k,
                          'objective', 'Ziel ' || k || ' [mock:latency:' || (300 + 250 * ((7 * k) % $N)) || ']',
                          'inputs', '[]'::jsonb, 'state', 'active',
                          'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60),
                          'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb,
                          'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
       'web'
  FROM generate_series(1, $N) k" >/dev/null
runner_rows="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"

last=""
prev=$(date +%s.%N)
kills=()
for i in $(seq 1 "$KILLS"); do
    wait_new_worker "$last"
    # Streaming: this worker has committed a plan while calls are in flight.
    deadline=$((SECONDS + 40)); got=0
    while [ $SECONDS -lt $deadline ]; do
        got=$(committed "$prev" "$(date +%s.%N)")
        [ "${got:-0}" -gt 0 ] && [ "$(mock_stat in_flight)" -gt 0 ] 2>/dev/null && break
        got=0
        sleep 0.05
    done
    [ "$got" -gt 0 ] || fail "kill $i: worker $pid committed no plan while its other calls were in flight"
    # a random moment later in the LLM phase (0 to 1.5 s)
    sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
    [ $((RANDOM % 2)) = 0 ] || sleep 0.5
    [ "$(mock_stat in_flight)" -gt 0 ] 2>/dev/null || echo "kill $i: the LLM phase had ended (the kill still counts)"
    at=$(date +%s.%N)
    kill -9 "$pid" || fail "kill $i: kill -9 $pid"
    kills+=("$prev $at")
    last=$pid
    prev=$at
done

# --- the mock answers on: every mission planned exactly once --------------
wait_new_worker "$last"
poll_until 90 mana_sync "$runner_rows" "$N" || fail "not every mission was planned ($(q mana_sync -c "$runner_rows") of $N)"
sleep 2
[ "$(q mana_sync -c "$runner_rows")" = "$N" ] || fail "a mission was planned twice"
[ "$(q mana_sync -c "SELECT count(DISTINCT record_id) FROM sync_changes WHERE client_id = 'mana-ai-runner'")" = "$N" ] \
    || fail "some mission has two runner rows"

# --- what each kill lost ---------------------------------------------------
requests=$(curl -sf --max-time 5 "$MOCK_URL/__requests") || fail "no request log from the mock"
for k in "${!kills[@]}"; do
    read -r from to <<<"${kills[$k]}"
    answered=$(python3 -c '
import json, re, sys
lo, hi = float(sys.argv[1]), float(sys.argv[2])
n = 0
for r in json.loads(sys.stdin.read()):
    body = r.get("body")
    if not isinstance(body, dict) or r.get("status") != 200:
        continue
    text = " ".join(str(m.get("content")) for m in body.get("messages", []))
    m = re.search(r"\[mock:latency:(\d+)\]", text)
    if m and lo < r["at"] and r["at"] + int(m.group(1)) / 1000.0 <= hi:
        n += 1
print(n)' "$from" "$to" <<<"$requests")
    done_=$(committed "$from" "$to")
    lost=$((answered - done_))
    echo "kill $((k + 1)): $answered plans answered before it, $done_ committed, $lost lost"
    [ "$lost" -le "$BATCH" ] || fail "kill $((k + 1)) lost $lost answered plans, more than one batch ($BATCH)"
    [ "$done_" -le "$answered" ] || fail "kill $((k + 1)): more plans committed ($done_) than answered ($answered)"
done
live=$(worker_pid)
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running' AND backend_pid <> ${live:-0}")" = 0 ] \
    || fail "a tick run of a killed worker is still 'running'"
echo "every mission planned exactly once after $KILLS kill -9 in the LLM phase"
