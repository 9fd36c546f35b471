#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# A model that answers usage 3e18 (issue 19): each call's count is stored
# clamped to the round bound (10,000,000 a round, README "0.3.0: C-side
# hardening"), so the 24 h sum of one user's agent cannot overflow bigint
# in the selection every user shares; and rows stored huge before 0.3.0 saturate the sum
# (the agent is skipped for its budget) instead of failing every tick.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm --total-tokens 3000000000000000000
set_guc mana_ai.llm_url "$MOCK_URL"
wait_worker_ticks 1

# user u-big: an agent without a budget and four missions on it
agent_missions() {   # agent_missions USER AGENT BUDGET_JSON MISSION...
    local usr=$1 agent=$2 extra=$3; shift 3
    q mana_sync -c "INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
        VALUES ('ai', 'agents', '$agent', '$usr', 'insert',
                '{\"name\": \"Gross\", \"state\": \"active\", \"createdAt\": \"2026-01-01T00:00:00.000Z\"}'::jsonb || '$extra'::jsonb, 'web')" >/dev/null
    for m in "$@"; do
        q mana_sync -c "INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
            VALUES ('ai', 'aiMissions', '$m', '$usr', 'insert',
                    jsonb_build_object('title', 'Mission $m', 'conceptMarkdown', '', 'objective', 'Ziel $m',
                        'inputs', '[]'::jsonb, 'cadence', '{\"kind\": \"interval\", \"everyMinutes\": 60}'::jsonb,
                        'state', 'active', 'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb,
                        'agentId', '$agent',
                        'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'), 'web')" >/dev/null
    done
}
agent_missions u-big ag-big '{}' m-big-1 m-big-2 m-big-3 m-big-4
written() { q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id LIKE '$1'"; }
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id LIKE 'm-big-%'" 4 \
    || fail "the four missions of u-big were not planned"
[ "$(q mana_sync -c "SELECT count(*) || '|' || max(tokens) FROM mana_ai.token_usage WHERE user_id = 'u-big'")" = "4|20000000" ] \
    || fail "token rows of u-big: $(q mana_sync -c "SELECT string_agg(tokens::text, ',') FROM mana_ai.token_usage WHERE user_id = 'u-big'")"
echo "usage 3e18 stored as 10,000,000 per round (the tools protocol: 2 rounds)"

# another user's mission is planned in a later tick: the shared selection still works
add_missions <<'X'
m-other|u-other|Danach geplant
X
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-other'" 1 \
    || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-300; fail "m-other was not planned after u-big's huge usage"; }
echo "another user is planned after it"

# rows stored before the clamp (0.2.0 kept 3e18 as is): four of them sum past bigint
q mana_sync -c "INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens)
                SELECT 'u-old', 'ag-old', 'm-old-1', 3000000000000000000 FROM generate_series(1, 4)" >/dev/null
agent_missions u-old ag-old '{"maxTokensPerDay": 1000000}' m-old-1
add_missions <<'X'
m-after|u-after|Trotzdem geplant
X
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-after'" 1 \
    || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-300; fail "a 24 h sum past bigint stopped every user's tick"; }
[ "$(written m-old-1)" = 0 ] || fail "u-old's agent is far over budget and was planned"
poll_until 10 mana_sync "SELECT value >= 1 FROM mana_ai.metrics WHERE name = 'mana_ai_agent_decisions_total' AND labels ->> 'decision' = 'skipped-budget'" t \
    || fail "u-old's mission was not skipped for its budget"
bad="FROM mana_ai.tick_runs WHERE status NOT IN ('ok', 'overlap-skipped') AND NOT (status = 'running' AND id = (SELECT max(id) FROM mana_ai.tick_runs))"
[ "$(q mana_sync -c "SELECT count(*) $bad")" = 0 ] || { q mana_sync -c "SELECT id, status, errors $bad" | cut -c1-400; fail "a tick failed"; }
echo "a 24 h sum past bigint saturates: the agent is over budget, every other user is planned"
