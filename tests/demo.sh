#!/usr/bin/env bash
# demo.sh (make demo): the whole loop on a throwaway cluster.
# Installs what is missing, builds and installs mana_ai, starts a cluster
# with the worker preloaded (ticking every 2 s as an ordinary role), loads
# the realistic fixture plus a world of due missions, starts the bundled
# mock LLM on loopback, lets the worker tick, and prints what it wrote;
# then the grant path (tests/lib/demo_grant.sh: a key pair made at demo
# time, a mission with a grant, the decrypted prompt, the audit rows, a
# scope violation) and the Prometheus text.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash tests/deps.sh
make -s -j2 >/dev/null
make -s install >/dev/null          # the real install, as a DBA would
bash tests/lib/stage.sh             # and the staged copy the cluster loads

exec bash tests/lib/with_cluster.sh --preload -o mana_ai.tick_interval=2 -o mana_ai.role=mana_runner -- bash -c '
set -euo pipefail
source tests/lib/common.sh
psql -X -q -d postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS"
echo "== loading the fixture (tests/fixtures/demo_data.sql, then tick_world.sql)"
# demo_data.sql carries its history with explicit created_at values, so it
# is loaded before CREATE EXTENSION (the first refresh reads it all).
psql -X -q -d postgres -c "CREATE DATABASE mana_sync"
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/sync_changes.sql 2>/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/demo_data.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -c "CREATE EXTENSION mana_ai"
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql
start_mock_llm --latency 200
DEMO_KEYS=$(mktemp -d)
trap "kill $MOCK_PID 2>/dev/null; rm -rf $DEMO_KEYS" EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
bash tests/lib/demo_grant.sh setup "$DEMO_KEYS"
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/tick_world.sql >/dev/null
psql -X -d mana_sync -c "SELECT app_id, table_name, count(*) FROM sync_changes GROUP BY 1, 2 ORDER BY 1, 2"
echo "== waiting for the worker to plan"
poll_until 60 mana_sync "SELECT count(*) > 0 FROM mana_ai.tick_runs WHERE plans_written_back > 0" t
sleep 5
echo "== the sync format mana_ai found (FORMAT=seed for the seed one): $(psql -X -qAt -d mana_sync -c "SELECT mana_ai.sync_format()")"
echo "== mana_ai.status"
psql -X -d mana_sync -x -c "SELECT * FROM mana_ai.status"
echo "== iterations the worker wrote (a few of them)"
psql -X -d mana_sync -c "SELECT user_id, record_id AS mission, actor->>'"'"'displayName'"'"' AS agent,
       data->'"'"'iterations'"'"'->-1->>'"'"'overallStatus'"'"' AS status,
       data->'"'"'iterations'"'"'->-1->'"'"'plan'"'"'->0->'"'"'intent'"'"'->>'"'"'toolName'"'"' AS first_tool,
       (SELECT m.next_run_at FROM mana_ai.missions m WHERE m.user_id = s.user_id AND m.mission_id = s.record_id) AS next_run_at,
       to_jsonb(s)->>'"'"'origin'"'"' AS origin, to_jsonb(s)->>'"'"'space_id'"'"' AS space_id
  FROM sync_changes s WHERE client_id = '"'"'mana-ai-runner'"'"' ORDER BY created_at, record_id LIMIT 12"
echo "== mana_ai.tick_runs"
psql -X -d mana_sync -c "SELECT id, source, status, due_missions, plans_produced, plans_written_back, parse_failures, finished_at - started_at AS took FROM mana_ai.tick_runs ORDER BY id LIMIT 8"
echo "== mana_ai.due_missions (still due: gated or deferred)"
psql -X -d mana_sync -c "SELECT user_id, mission_id, agent_id, next_run_at FROM mana_ai.due_missions LIMIT 10"
echo "== the run history: why did alice'"'"'s missions not run? (mana_ai.mission_last_run)"
psql -X -d mana_sync -c "SELECT mission_id, agent_id, decision, tick_id, iteration_id IS NOT NULL AS planned, error_phase, error_message
  FROM mana_ai.mission_last_run WHERE user_id = '"'"'alice'"'"' ORDER BY mission_id"
echo "== decisions per tick (mana_ai.mission_runs)"
psql -X -d mana_sync -c "SELECT tick_id, decision, count(*) FROM mana_ai.mission_runs GROUP BY 1, 2 ORDER BY 1, 2"
echo "== mana_ai.agents"
psql -X -d mana_sync -c "SELECT user_id, agent_id, name, state, max_concurrent_missions, max_tokens_per_day, deleted FROM mana_ai.agents WHERE user_id NOT LIKE '"'"'u0%'"'"' ORDER BY 1, 2"
echo "== mana_ai.metrics"
psql -X -d mana_sync -c "SELECT name, labels, value FROM mana_ai.metrics WHERE value > 0 AND name NOT LIKE '"'"'%_bucket'"'"' ORDER BY name, labels::text"
bash tests/lib/demo_grant.sh show "$DEMO_KEYS" "$MOCK_URL"
echo "== SELECT mana_ai.metrics_prometheus() (what docs/monitoring/queries.yaml exports through postgres_exporter)"
psql -X -qAt -d mana_sync -c "SELECT mana_ai.metrics_prometheus()"
'
