#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.llm_max_parallel=1 -o mana_ai.planner_protocol=json
# The tick-wide model breaker (issue 19): the chain's first model answers
# 500 to everything.  Eight missions of one tick, one call at a time: the
# first five go to it and fall back (mana_ai.model_breaker_failures = 5),
# the other three go straight to the second model.  Every mission is
# planned; mana_ai_model_breaker_open_total{model="mock-fail500"} = 1 and
# the worker logs the opening.  With the breaker off (0) the next tick's
# eight missions all try the failing model first.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.llm_model "mock-fail500,gpt-4o-mini"
wait_worker_ticks 1
calls_to() {   # calls_to MODEL: chat requests the mock got for MODEL
    mock_get /__requests | jq --arg m "$1" '[.[] | select(.path == "/v1/chat/completions" and .body.model == $m)] | length'
}
first_attempts() {   # distinct missions that tried MODEL (retries of one call count once)
    mock_get /__requests | jq --arg m "$1" '[.[] | select(.path == "/v1/chat/completions" and .body.model == $m)
        | .body.messages[-1].content | capture("(?<id>Mission m-[a-z]-[0-9])").id] | unique | length'
}

add_missions <<'X'
m-a-1|u1|Eins
m-a-2|u2|Zwei
m-a-3|u3|Drei
m-a-4|u4|Vier
m-a-5|u5|Fuenf
m-a-6|u6|Sechs
m-a-7|u7|Sieben
m-a-8|u8|Acht
X
poll_until 120 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id LIKE 'm-a-%'" 8 \
    || fail "the eight missions were not planned"
[ "$(q mana_sync -c "SELECT count(DISTINCT tick_id) FROM mana_ai.mission_runs WHERE mission_id LIKE 'm-a-%' AND decision = 'ran'")" = 1 ] \
    || fail "the missions were not planned in one tick"
n=$(first_attempts mock-fail500)
[ "$n" = 5 ] || fail "breaker 5: $n missions tried the failing model (want 5)"
[ "$(q mana_sync -c "SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_model_breaker_open_total' AND labels ->> 'model' = 'mock-fail500'")" = 1 ] \
    || fail "mana_ai_model_breaker_open_total{model=mock-fail500} is not 1"
wait_for_log 10 'mana_ai: model "mock-fail500" failed 5 calls in a row; the rest of the tick skipped it' || fail "no log line for the opened breaker"
echo "breaker on: 5 of 8 missions tried the failing model, then it was skipped"

set_guc mana_ai.model_breaker_failures 0
wait_worker_ticks 1
curl -s --max-time 5 -X POST -d '{}' "$MOCK_URL/__reset" >/dev/null
add_missions <<'X'
m-b-1|v1|Eins
m-b-2|v2|Zwei
m-b-3|v3|Drei
m-b-4|v4|Vier
m-b-5|v5|Fuenf
m-b-6|v6|Sechs
m-b-7|v7|Sieben
m-b-8|v8|Acht
X
poll_until 180 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id LIKE 'm-b-%'" 8 \
    || fail "the second eight missions were not planned"
n=$(first_attempts mock-fail500)
[ "$n" = 8 ] || fail "breaker off: $n missions tried the failing model (want 8)"
[ "$(q mana_sync -c "SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_model_breaker_open_total'")" = 1 ] \
    || fail "the breaker opened with mana_ai.model_breaker_failures = 0"
echo "PASS model_breaker"
