#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.llm_timeout=60000
# A query cancel during the LLM phase (issue 19): mission m-a's first round
# is answered (42 tokens) and its second never is; m-b's three rounds are
# answered (126 tokens).  The worker is cancelled while m-a waits: the tick
# run is closed as failed; m-b's plan, ready before the cancel, was
# committed as soon as it was (the streamed write-back, issue 20) and m-a
# has none; the rounds that were answered count against the budget once:
# token_usage holds 42 for m-a (written when the run was closed) and 126
# for m-b (written with its plan).  0.2.0 dropped them.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
wait_worker_ticks 1
pid=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")

add_missions <<'X'
m-a|u1|Zweite Runde haengt [mock:tools-hang-round:2]
m-b|u1|Drei Runden [mock:tools-rounds:3]
X
# m-a's round 2 is in flight and m-b has had its three rounds answered.
deadline=$((SECONDS + 30))
until [ "$(mock_get /__stats | jq -r '.requests')" -ge 5 ] 2>/dev/null \
      && [ "$(mock_get /__stats | jq -r '.in_flight')" = 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "the conversations did not reach m-a's hanging round"
    sleep 0.05
done
[ "$(q postgres -c "SELECT query FROM pg_stat_activity WHERE pid = $pid")" = "mana_ai tick: waiting for the LLM" ] \
    || fail "the worker is not in the LLM phase"
run=$(q mana_sync -c "SELECT id FROM mana_ai.tick_runs WHERE status = 'running' AND backend_pid = $pid")
[ -n "$run" ] || fail "no running tick run"
set_guc mana_ai.enabled off           # no later tick may plan (and count) the missions again
q postgres -c "SELECT pg_cancel_backend($pid)" >/dev/null
poll_until 10 mana_sync "SELECT status FROM mana_ai.tick_runs WHERE id = $run" failed || fail "the run was not closed as failed"
[ "$(q mana_sync -c "SELECT string_agg(record_id, ',') FROM sync_changes WHERE client_id = 'mana-ai-runner'")" = m-b ] \
    || fail "runner rows of the cancelled tick: '$(q mana_sync -c "SELECT string_agg(record_id, ',') FROM sync_changes WHERE client_id = 'mana-ai-runner'")' (want m-b's plan, committed before the cancel, alone)"
got=$(q mana_sync -c "SELECT string_agg(u.mission_id || ':' || u.tokens, ',' ORDER BY u.mission_id)
                       FROM mana_ai.token_usage u, mana_ai.tick_runs t
                      WHERE t.id = $run AND u.ts BETWEEN t.started_at AND t.finished_at")
[ "$got" = "m-a:42,m-b:126" ] || fail "token_usage of the cancelled run: '$got' (want m-a:42,m-b:126)"
[ "$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")" = "$pid" ] || fail "the worker did not stay"
echo "PASS cancel_tokens: $got"
