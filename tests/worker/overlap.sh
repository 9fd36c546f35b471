#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1
# The overlap guard (SPEC 4.1, 9a) with the worker and the mock:
#  1. while the worker's tick waits for the LLM, SELECT mana_ai_tick()
#     returns at once with errors ["overlap-skipped"] and leaves a
#     tick_runs row (source sql, status overlap-skipped, finished), makes
#     no LLM call, and the worker's tick goes on to plan the mission once;
#  2. while a SELECT mana_ai_tick() holds the tick in its LLM phase, the
#     worker's ticks are overlap-skipped (source worker) and the mission
#     that tick took is planned once, by it.
#  Each call the mock holds takes 10 s, so a loaded machine still runs
#  the checks made while it is in flight inside that window.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

setup_mana_sync
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
wait_worker_ticks 2

in_flight() { mock_get /__stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["in_flight"])'; }
# wait_in_flight SECS: until the mock holds at least one chat call.
wait_in_flight() {
    local deadline=$((SECONDS + $1))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(in_flight)" -ge 1 ] && return 0
        sleep 0.1
    done
    return 1
}

# --- 1. mana_ai_tick() while the worker ticks --------------------------------
add_missions <<'EOF'
m-hold|u-hold|Der Worker wartet [mock:latency:10000]
EOF
wait_in_flight 30 || fail "the worker's tick never reached the LLM"
worker_run=$(q mana_sync -c "SELECT id FROM mana_ai.tick_runs WHERE source = 'worker' AND status = 'running'")
[ -n "$worker_run" ] || fail "no running worker tick while its LLM call is in flight"
[ "$(q postgres -c "SELECT query FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")" = "mana_ai tick: waiting for the LLM" ] \
    || fail "worker activity: $(q postgres -c "SELECT query FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")"
calls_before=$(mock_calls '[mock:latency:10000]' | grep -c .)
res=$(q mana_sync -c "SELECT mana_ai_tick()")
calls_after=$(mock_calls '[mock:latency:10000]' | grep -c .)
[ "$(in_flight)" -ge 1 ] || fail "the worker's LLM call ended before mana_ai_tick() returned: the overlap is not proven"
[ "$(q mana_sync -c "SELECT status FROM mana_ai.tick_runs WHERE id = $worker_run")" = running ] \
    || fail "the worker's tick was no longer running when mana_ai_tick() returned"
chk() { [ "$(q mana_sync -v res="$res" <<<"SELECT ($1) FROM (SELECT :'res'::jsonb AS r) x")" = t ] || fail "mana_ai_tick() gave $res; wanted $1"; }
chk "r -> 'errors' = '[\"overlap-skipped\"]'"
chk "(r ->> 'dueMissionCount', r ->> 'plansProduced', r ->> 'plansWrittenBack', r ->> 'parseFailures') = ('0', '0', '0', '0')"
chk "r ->> 'scannedAt' ~ '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$'"
sql_run=$(q mana_sync -v res="$res" <<<"SELECT (:'res'::jsonb ->> 'tickRunId')::bigint")
[ "$(q mana_sync -c "SELECT source || '|' || status || '|' || (finished_at IS NOT NULL) || '|' || errors::text || '|' || (backend_pid <> (SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'))
                      FROM mana_ai.tick_runs WHERE id = $sql_run")" = 'sql|overlap-skipped|true|["overlap-skipped"]|true' ] \
    || fail "overlap row: $(q mana_sync -c "SELECT * FROM mana_ai.tick_runs WHERE id = $sql_run")"
# (counted around the call: the worker's own second round may start 10 s
# after its first while a loaded machine runs the checks above)
[ "$calls_after" = "$calls_before" ] || fail "the skipped tick called the LLM ($calls_before calls before it, $calls_after after)"
poll_until 30 mana_sync "SELECT status || '|' || plans_written_back FROM mana_ai.tick_runs WHERE id = $worker_run" "ok|1" \
    || fail "the worker's tick did not finish ok after the skipped one"
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-hold'")" = 1 ] \
    || fail "m-hold was not planned exactly once"
echo "mana_ai_tick() during the worker's LLM phase: overlap-skipped, recorded, no LLM call; the worker's tick planned once"

# --- 2. the worker while mana_ai_tick() ticks -------------------------------
before=$(q mana_sync -c "SELECT max(id) FROM mana_ai.tick_runs")
out=$(mktemp)
# The mission is inserted in the same transaction, so only this tick sees it.
psql -X -qAt -v ON_ERROR_STOP=1 -d mana_sync >"$out" 2>&1 <<'SQL' &
BEGIN;
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-sql', 'u-sql', 'insert',
        jsonb_build_object('title', 'Mission m-sql', 'conceptMarkdown', '', 'objective', 'SQL haelt den Tick [mock:latency:10000] m-sql',
                           'inputs', '[]'::jsonb, 'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb,
                           'state', 'active', 'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb,
                           'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
        'web');
SELECT mana_ai_tick();
COMMIT;
SQL
sql_pid=$!
wait_in_flight 30 || fail "the SQL tick never reached the LLM"
poll_until 20 mana_sync "SELECT count(*) >= 1 FROM mana_ai.tick_runs WHERE id > $before AND source = 'worker' AND status = 'overlap-skipped'" t \
    || fail "the worker did not skip while mana_ai_tick() held the tick"
[ "$(in_flight)" -ge 1 ] || fail "the SQL tick's LLM call ended before the worker skipped: the overlap is not proven"
wait "$sql_pid" || fail "mana_ai_tick() failed: $(cat "$out")"
res=$(head -1 "$out")
[ "$(q mana_sync -v res="$res" <<<"SELECT :'res'::jsonb -> 'errors' = '[]' AND :'res'::jsonb ->> 'plansWrittenBack' = '1'")" = t ] \
    || fail "the SQL tick gave $res"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE id > $before AND source = 'worker' AND status = 'overlap-skipped'
                       AND errors = '[\"overlap-skipped\"]' AND finished_at IS NOT NULL")" -ge 1 ] || fail "worker overlap rows"
wait_worker_ticks 2
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-sql'")" = 1 ] \
    || fail "m-sql was not planned exactly once"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status NOT IN ('ok', 'overlap-skipped') AND NOT (status = 'running' AND id = (SELECT max(id) FROM mana_ai.tick_runs))")" = 0 ] \
    || fail "a tick did not finish: $(q mana_sync -c "SELECT id, source, status FROM mana_ai.tick_runs WHERE status NOT IN ('ok', 'overlap-skipped') AND NOT (status = 'running' AND id = (SELECT max(id) FROM mana_ai.tick_runs))")"
rm -f "$out"
echo "the worker during mana_ai_tick()'s LLM phase: overlap-skipped; the SQL tick planned once"
