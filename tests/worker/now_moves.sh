#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1
# now() moves on in the worker: a mission that falls due after the worker
# connected is planned, and its row's created_at is the write's time, not
# the worker's start.  (A background worker must set the statement start
# time itself; without it now() stays at the moment the worker connected.)
set -euo pipefail
source tests/lib/common.sh

setup_mana_sync
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
poll_until 30 mana_sync "SELECT count(*) >= 2 FROM mana_ai.tick_runs WHERE source = 'worker' AND status = 'ok'" t \
    || fail "the worker did not tick"
started=$(q mana_sync -c "SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")

q mana_sync <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'm-later', 'u1', 'insert',
       jsonb_build_object('title', 'Später', 'objective', 'Später fällig', 'inputs', '[]'::jsonb,
                          'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60),
                          'state', 'active', 'iterations', '[]'::jsonb,
                          'nextRunAt', mana_ai.iso_text(clock_timestamp() + interval '2 seconds'),
                          'createdAt', mana_ai.iso_text(clock_timestamp()), 'updatedAt', mana_ai.iso_text(clock_timestamp())),
       'web';
SQL
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-later'" 1 \
    || fail "a mission due after the worker started was never planned"
[ "$(q mana_sync -c "SELECT created_at > '$started'::timestamptz + interval '2 seconds' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-later'")" = t ] \
    || fail "the written row's created_at is the worker's start time"
echo "now moves ok"
