#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# SIGTERM, a query cancel and a fast shutdown while the tick worker waits
# for hanging LLM calls (SPEC 4: "SIGTERM or a query cancel during the LLM
# phase aborts in-flight calls within a second and writes nothing
# partial"; SPEC 9a: unfinished tick runs are marked failed).
#  1. pg_terminate_backend: the worker is gone within a few seconds, its
#     calls are closed, nothing is written, its tick run is marked failed
#     by the worker the launcher starts next.
#  2. pg_cancel_backend: the calls are closed, the worker stays, its tick
#     run is closed as failed at once, that tick writes nothing, and a
#     later tick plans.
#  3. pg_ctl stop -m fast: the server stops within the stop timeout, and
#     after the start the tick run is marked failed.
# After each, once the mock answers, every due mission is planned once.
set -euo pipefail
source tests/lib/common.sh
t0=$SECONDS

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm --mode hang
set_guc mana_ai.llm_url "$MOCK_URL"

try_q() { psql -X -qAt -d "$1" -c "$2" 2>/dev/null || true; }
mock_stat() { curl -s --max-time 2 "$MOCK_URL/__stats" | jq -r ".$1" 2>/dev/null || true; }
mock_control() { curl -s --max-time 2 -X POST -d "$1" "$MOCK_URL/__control" >/dev/null || fail "mock control $1"; }
worker_pid() { try_q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'"; }
now_ms() { date +%s%3N; }

# Three missions without an agent, due.
q mana_sync -c "
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'm-' || k, 'u1', 'insert',
       jsonb_build_object('title', 'Mission ' || k, 'objective', 'Ziel ' || k, 'inputs', '[]'::jsonb,
                          'state', 'active', 'cadence', '{\"kind\": \"interval\", \"everyMinutes\": 60}'::jsonb,
                          'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb),
       'web'
  FROM generate_series(1, 3) k" >/dev/null
runner_rows="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
redue="SELECT set_config('app.current_user_id', 'u1', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'm-' || k, 'u1', 'update',
       jsonb_build_object('nextRunAt', to_char(clock_timestamp() AT TIME ZONE 'UTC' - interval '1 minute',
                                               'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')), 'web'
  FROM generate_series(1, 3) k"

# wait_worker NOTPID: a live tick worker other than NOTPID; sets pid.
wait_worker() {
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        pid=$(worker_pid)
        [ -n "$pid" ] && [ "$pid" != "$1" ] && return 0
        sleep 0.1
    done
    fail "no tick worker (other than '$1') within 30 s"
}
# wait_llm_phase PID: PID waits for the LLM with calls in flight; sets run
# to its tick run.
wait_llm_phase() {
    local deadline=$((SECONDS + 20))
    while [ $SECONDS -lt $deadline ]; do
        if [ "$(try_q postgres "SELECT query FROM pg_stat_activity WHERE pid = $1")" = "mana_ai tick: waiting for the LLM" ] \
           && [ "$(mock_stat in_flight)" -gt 0 ] 2>/dev/null; then
            run=$(q mana_sync -c "SELECT id FROM mana_ai.tick_runs WHERE status = 'running' AND backend_pid = $1")
            [ -n "$run" ] || fail "worker $1 in the LLM phase without a running tick run"
            return 0
        fi
        sleep 0.05
    done
    fail "worker $1 never waited for the LLM with calls in flight"
}
# calls_closed: the mock sees no call in flight any more (it notices a
# client hanging up within 50 ms).
calls_closed() {
    local deadline=$((SECONDS + 3))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(mock_stat in_flight)" = 0 ] && return 0
        sleep 0.05
    done
    fail "$1: LLM calls still open 3 s later"
}
nothing_written() {
    [ "$(q mana_sync -c "$runner_rows")" = "$2" ] || fail "$1: something was written"
    [ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts")" = 0 ] || fail "$1: counted as a mission failure"
}
# planned_once N: each mission has N runner rows, one per slot, and the
# merged record N iterations; its next slot (the record's nextRunAt in the
# seed format, mana_ai's slot state in the current one) in the future.
next_of="mana_ai.iso_timestamp(rec ->> 'nextRunAt')"
[ "$FORMAT" = seed ] || next_of="(SELECT mana_ai.iso_timestamp(p.next_slot) FROM mana_ai.mission_slots p WHERE p.user_id = 'u1' AND p.mission_id = n.m)"
planned_once() {
    poll_until 30 mana_sync "$runner_rows" $((3 * $1)) || fail "missions not planned once the mock answered"
    [ "$(q mana_sync -c "SELECT count(*) FROM (SELECT m FROM generate_series(1, 3) k,
            LATERAL (SELECT 'm-' || k AS m) n,
            LATERAL (SELECT mana_ai.replay_record('u1', 'ai', 'aiMissions', n.m) AS rec) r
          WHERE (SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = n.m) <> $1
             OR jsonb_array_length(rec -> 'iterations') <> $1
             OR $next_of <= now()) x")" = 0 ] \
        || fail "a mission was not planned exactly once per slot"
}

# --- 1. SIGTERM -----------------------------------------------------------
wait_worker ""
wait_llm_phase "$pid"
start=$(now_ms)
q postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
poll_until 5 postgres "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid" 0 \
    || fail "worker $pid still there 5 s after SIGTERM"
echo "SIGTERM: worker gone after $(( $(now_ms) - start )) ms"
calls_closed SIGTERM
nothing_written SIGTERM 0
wait_for_log 5 "\[$pid\] FATAL: +terminating background worker \"mana_ai worker\" due to administrator command" \
    || fail "SIGTERM: no clean exit in the log"
old=$pid
mock_control '{"mode": "ok"}'
wait_worker "$old"
poll_until 10 mana_sync "SELECT status || ' ' || (errors ? 'server restarted') || ' ' || (finished_at IS NOT NULL) FROM mana_ai.tick_runs WHERE id = $run" "failed true true" \
    || fail "SIGTERM: tick run $run not marked failed by the next worker"
planned_once 1
echo "SIGTERM: tick run marked failed, missions planned once by the next worker ($((SECONDS - t0)) s)"

# --- 2. query cancel -------------------------------------------------------
# The cancel ends this tick only: the worker goes on, and its next tick
# (which may start at once) gets answers.
mock_control '{"mode": "hang"}'
q mana_sync -c "$redue" >/dev/null
wait_llm_phase "$pid"
mock_control '{"mode": "ok"}'
start=$(now_ms)
q postgres -c "SELECT pg_cancel_backend($pid)" >/dev/null
calls_closed cancel        # answered calls leave at once, hanging ones only when closed
echo "cancel: calls closed after $(( $(now_ms) - start )) ms"
poll_until 5 mana_sync "SELECT status || ' ' || (finished_at IS NOT NULL) FROM mana_ai.tick_runs WHERE id = $run" "failed true" \
    || fail "cancel: tick run $run left '$(q mana_sync -c "SELECT status FROM mana_ai.tick_runs WHERE id = $run")'"
[ "$(worker_pid)" = "$pid" ] || fail "cancel: the worker did not stay"
wait_for_log 5 "\[$pid\] LOG: +mana_ai worker: canceling statement due to user request" || fail "cancel: not logged"
planned_once 2
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes s, mana_ai.tick_runs t WHERE t.id = $run
        AND s.client_id = 'mana-ai-runner' AND s.created_at BETWEEN t.started_at AND t.finished_at")" = 0 ] \
    || fail "cancel: the cancelled tick wrote something"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts")" = 0 ] || fail "cancel: counted as a mission failure"
echo "cancel: tick run closed as failed, missions planned once by a later tick ($((SECONDS - t0)) s)"

# --- 3. fast shutdown ------------------------------------------------------
mock_control '{"mode": "hang"}'
q mana_sync -c "$redue" >/dev/null
wait_llm_phase "$pid"
mock_control '{"mode": "ok"}'
start=$(now_ms)
pg_ctlcluster "$MANA_PG_MAJOR" regress stop -m fast -- -t 10 || fail "fast shutdown did not finish within 10 s"
echo "fast shutdown: server stopped after $(( $(now_ms) - start )) ms"
calls_closed "fast shutdown"
pg_ctlcluster "$MANA_PG_MAJOR" regress start || fail "server did not start again"
old=$pid
wait_worker "$old"
poll_until 10 mana_sync "SELECT status || ' ' || (errors ? 'server restarted') FROM mana_ai.tick_runs WHERE id = $run" "failed true" \
    || fail "fast shutdown: tick run $run not marked failed after the start"
planned_once 3
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes s, mana_ai.tick_runs t WHERE t.id = $run
        AND s.client_id = 'mana-ai-runner' AND s.created_at BETWEEN t.started_at AND t.finished_at")" = 0 ] \
    || fail "fast shutdown: the stopped tick wrote something"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running' AND backend_pid <> $pid")" = 0 ] \
    || fail "a tick run of a gone worker is still 'running'"
[ "$(log_count 'terminated by signal')" = 0 ] || fail "a process crashed"
echo "fast shutdown: tick run marked failed after the start, missions planned once ($((SECONDS - t0)) s)"
