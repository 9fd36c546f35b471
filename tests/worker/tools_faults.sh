#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.llm_timeout=4000 -o mana_ai.max_attempts=10
# Faults in the middle of a tools-protocol conversation, with the worker:
#  1. round 2 never answers: mana_ai.llm_timeout bounds the whole loop, the
#     hanging call is closed, round 1's step is written;
#  2. SIGTERM while round 2 is in flight: the worker is gone within a
#     second or so, the calls are closed, nothing is written or counted;
#  3. kill -9 while round 2 is in flight: after the crash restart the
#     mission is planned once, with its whole conversation (no partial
#     plan, no second iteration for the slot);
#  4. the model chain falls back (first model answers 500): the iteration
#     names the model that answered, the metrics count the error and the
#     fallback;
#  5. the agent's maxTokensPerDay is reached between rounds: the loop stops
#     there, keeps its steps, and every round's tokens are counted.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"

try_q() { psql -X -qAt -d "$1" -c "$2" 2>/dev/null || true; }
mock_stat() { curl -s --max-time 2 "$MOCK_URL/__stats" | jq -r ".$1" 2>/dev/null || true; }
mock_control() { curl -s --max-time 2 -X POST -d "$1" "$MOCK_URL/__control" >/dev/null || fail "mock control $1"; }
worker_pid() { try_q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'"; }
now_ms() { date +%s%3N; }
rows_of() { q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1'"; }
it() { echo "(SELECT data -> 'iterations' -> -1 FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1')"; }
# wait_round MARKER N: the mock has received round N of the conversation
# whose user message holds MARKER, and a call is in flight.
wait_round() {
    local deadline=$((SECONDS + 20))
    while [ $SECONDS -lt $deadline ]; do
        if mock_get /__requests | python3 -c '
import json, sys
marker, rnd = sys.argv[1], int(sys.argv[2])
for r in json.load(sys.stdin):
    b = r.get("body")
    if isinstance(b, dict) and r.get("round") == rnd and any(
            marker in (m.get("content") or "") for m in b.get("messages", []) if m.get("role") == "user"):
        sys.exit(0)
sys.exit(1)' "$1" "$2" && [ "$(mock_stat in_flight)" -gt 0 ] 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    fail "round $2 of '$1' never reached the mock"
}
calls_closed() {
    local deadline=$((SECONDS + 3))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(mock_stat in_flight)" = 0 ] && return 0
        sleep 0.05
    done
    fail "$1: LLM calls still open 3 s later"
}

# --- 1. round 2 times out ---------------------------------------------------
add_missions <<'EOF'
f-hang|u1|Runde zwei haengt [mock:tools-hang-round:2]
EOF
wait_round "tools-hang-round" 2
start=$(now_ms)
poll_until 15 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'f-hang'" 1 \
    || fail "round 2 timed out: round 1's step was not written"
elapsed=$(( $(now_ms) - start ))
[ "$elapsed" -lt 6000 ] || fail "round 2 timed out: the write took $elapsed ms after round 2 began (llm_timeout 4 s for the loop)"
[ "$(q mana_sync -c "SELECT jsonb_array_length($(it f-hang) -> 'plan') || ' ' || ($(it f-hang) ->> 'overallStatus')")" = "1 awaiting-review" ] \
    || fail "round 2 timed out: expected round 1's one step"
calls_closed "round 2 timeout"
echo "1. round 2 timed out: round 1's step written ${elapsed} ms after round 2 began"

# --- 2. SIGTERM in round 2 --------------------------------------------------
set_guc mana_ai.llm_timeout 60000
wait_worker_ticks 1
add_missions <<'EOF'
f-term|u2|SIGTERM in Runde zwei [mock:tools-hang-round:2]
EOF
wait_round "SIGTERM in Runde zwei" 2
pid=$(worker_pid)
run=$(q mana_sync -c "SELECT id FROM mana_ai.tick_runs WHERE status = 'running' AND backend_pid = $pid")
[ -n "$run" ] || fail "SIGTERM: no running tick run of worker $pid"
# The next worker would hang in round 2 again: pause the mission first
# (its next tick folds this in; the tick in flight has already taken it).
q mana_sync -c "SELECT set_config('app.current_user_id', 'u2', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'f-term', 'u2', 'update', '{\"state\": \"paused\"}', 'web')" >/dev/null
start=$(now_ms)
q postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
poll_until 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid" 0 || fail "worker $pid still there 5 s after SIGTERM"
elapsed=$(( $(now_ms) - start ))
[ "$elapsed" -lt 2000 ] || fail "SIGTERM in round 2: the worker took $elapsed ms to go"
calls_closed SIGTERM
[ "$(rows_of f-term)" = 0 ] || fail "SIGTERM in round 2: round 1's step was written"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts WHERE mission_id = 'f-term'")" = 0 ] \
    || fail "SIGTERM in round 2: counted as a failed attempt"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.token_usage WHERE mission_id = 'f-term'")" = 0 ] \
    || fail "SIGTERM in round 2: tokens of an aborted conversation were recorded"
echo "2. SIGTERM in round 2: worker gone after ${elapsed} ms, nothing written"
poll_until 20 mana_sync "SELECT status FROM mana_ai.tick_runs WHERE id = $run" failed \
    || fail "SIGTERM: tick run $run not marked failed by the next worker"

# --- 3. kill -9 in round 2 ---------------------------------------------------
mock_control '{"latency_ms": 1500}'
add_missions <<'EOF'
f-kill|u3|kill -9 in Runde zwei [mock:tools-rounds:3]
EOF
wait_round "kill -9 in Runde zwei" 2
pid=$(worker_pid)
kill -9 "$pid"
mock_control '{"latency_ms": 0}'
deadline=$((SECONDS + 60))
until [ "$(try_q mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'f-kill'")" = 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "kill -9: the mission was not planned after the crash restart"
    sleep 0.2
done
wait_worker_ticks 3
[ "$(rows_of f-kill)" = 1 ] || fail "kill -9: two iterations for one slot"
[ "$(q mana_sync -c "SELECT jsonb_array_length(mana_ai.replay_record('u3', 'ai', 'aiMissions', 'f-kill') -> 'iterations')")" = 1 ] \
    || fail "kill -9: the merged record does not hold exactly one iteration"
[ "$(q mana_sync -c "SELECT jsonb_array_length($(it f-kill) -> 'plan')")" = 2 ] \
    || fail "kill -9: the plan is not the whole conversation's (2 steps of 3 rounds)"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running' AND id < (SELECT max(id) FROM mana_ai.tick_runs)")" = 0 ] \
    || fail "kill -9: a tick run was left running"
echo "3. kill -9 in round 2: planned once after the restart, whole plan"

# --- 4. the chain falls back -----------------------------------------------
set_guc mana_ai.llm_model "mock-fail500, gpt-4o-mini"
set_guc mana_ai.llm_timeout 20000
wait_worker_ticks 1
add_missions <<'EOF'
f-chain|u4|Erstes Modell kaputt
EOF
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'f-chain'" 1 \
    || fail "fallback: not planned"
[ "$(q mana_sync -c "SELECT $(it f-chain) ->> 'model'")" = gpt-4o-mini ] || fail "fallback: the iteration names the wrong model"
[ "$(q mana_sync -c "SELECT jsonb_array_length($(it f-chain) -> 'plan')")" = 1 ] || fail "fallback: the second model's plan"
metric() { q mana_sync -c "SELECT coalesce(sum(value), 0)::bigint FROM mana_ai.metrics WHERE name = '$1' AND labels = '$2'"; }
# The conversation stays on the model that answered: one error, one fallback.
[ "$(metric mana_ai_llm_errors_total '{"model": "mock-fail500", "kind": "http_5xx"}')" = 1 ] \
    || fail "fallback: the first model's failed call is not counted once"
[ "$(metric mana_ai_llm_fallbacks_total '{"from": "mock-fail500", "to": "gpt-4o-mini"}')" = 1 ] \
    || fail "fallback: the fallback is not counted once"
[ "$(mock_get /__requests | jq '[.[] | select(.body.model == "mock-fail500")] | length')" = 5 ] \
    || fail "fallback: the first model was not given its five tries before the next one"
q mana_sync -c "SELECT mana_ai.metrics_prometheus()" \
    | grep '^mana_ai_llm_fallbacks_total{from="mock-fail500",to="gpt-4o-mini"} [1-9]' >/dev/null || fail "fallback: prometheus"
echo "4. the chain fell back to gpt-4o-mini; errors and fallbacks counted"
set_guc mana_ai.llm_model "gpt-4o-mini"
wait_worker_ticks 1

# --- 5. the agent's budget is reached between rounds -------------------------
q mana_sync -c "SELECT set_config('app.current_user_id', 'u5', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
 ('ai', 'agents', 'ag-budget', 'u5', 'insert',
  '{\"name\": \"Sparsam\", \"state\": \"active\", \"maxConcurrentMissions\": 1, \"maxTokensPerDay\": 100}', 'web'),
 ('ai', 'aiMissions', 'f-budget', 'u5', 'insert',
  jsonb_build_object('title', 'Budget', 'objective', 'Hoert nie auf [mock:tools-never-stop]', 'inputs', '[]'::jsonb,
                     'agentId', 'ag-budget', 'state', 'active',
                     'cadence', '{\"kind\": \"interval\", \"everyMinutes\": 60}'::jsonb,
                     'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb), 'web')" >/dev/null
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'f-budget'" 1 \
    || fail "budget: not planned"
# 42 tokens a round: 100 - 42 - 42 > 0 after round 2, <= 0 after round 3.
[ "$(q mana_sync -c "SELECT jsonb_array_length($(it f-budget) -> 'plan')")" = 3 ] \
    || fail "budget: the loop did not stop after round 3 (of max 5) with its 3 steps"
[ "$(q mana_sync -c "SELECT sum(tokens) FROM mana_ai.token_usage WHERE mission_id = 'f-budget'")" = 126 ] \
    || fail "budget: every round's tokens counted against the agent"
[ "$(mock_calls 'Hoert nie auf' | wc -l)" = 3 ] || fail "budget: a round was sent past the budget"
echo "5. budget reached after round 3: stopped with 3 steps, 126 tokens counted"
echo "tools protocol faults ok"
