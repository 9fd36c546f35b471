#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.writeback_batch_size=4
# kill -9 of the tick worker, over and over (SPEC 4 "a crash at any point",
# SPEC 9a "unfinished tick runs are marked failed on start").
#
#  - KILLS_LLM times while its LLM calls are in flight (mock in hang mode;
#    the phase is seen in pg_stat_activity and in the mock's in_flight),
#  - KILLS_WRITE times in the write-back phase (mock ok: killed as soon as
#    the first plan of a tick is committed, so the rest of that tick's
#    missions are not), the planned missions made due again with a new
#    slot each time.  Write-backs commit in batches of
#    mana_ai.writeback_batch_size, 4 here so that a tick of 24 missions
#    has six batches and a kill lands between them: the committed batches
#    stay, the one in flight is lost whole and planned again.
# A backend killed by SIGKILL makes the postmaster restart the whole
# cluster (every session ends, shared memory is re-initialised), so every
# wait here tolerates failed connections and has a deadline.
# Afterwards, with the mock answering: every slot the test made due is
# planned exactly once (one mana-ai-runner row per (mission, slot), never a
# runner row advancing from a slot a runner row set), the iterations array
# holds each iteration once, and no tick run is left 'running'.
set -euo pipefail
source tests/lib/common.sh

KILLS_LLM=${KILLS_LLM:-20}
KILLS_WRITE=${KILLS_WRITE:-4}
USERS=8                 # x 3 missions each
t0=$SECONDS

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm --mode hang
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.llm_max_parallel 32

# try_q DB SQL: like q, but a failed connection (crash restart) prints nothing.
try_q() { psql -X -qAt -d "$1" -c "$2" 2>/dev/null || true; }
mock_stat() { curl -s --max-time 2 "$MOCK_URL/__stats" | jq -r ".$1" 2>/dev/null || true; }
mock_control() { curl -s --max-time 2 -X POST -d "$1" "$MOCK_URL/__control" >/dev/null || fail "mock control $1"; }
worker_pid() { try_q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'"; }

# Missions without an agent (no concurrency gate), due since long ago,
# hourly: once planned they are not due again unless the test says so.
q mana_sync -c "
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'm-' || u || '-' || k, u, 'insert',
       jsonb_build_object('title', 'Mission ' || k, 'objective', 'Ziel ' || u || '-' || k,
                          'inputs', '[]'::jsonb, 'state', 'active',
                          'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60),
                          'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb,
                          'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
       'web'
  FROM (SELECT 'k' || lpad(i::text, 2, '0') AS u FROM generate_series(1, $USERS) i) users,
       generate_series(1, 3) k" >/dev/null

# A new due slot (a unique past nextRunAt) for every mission already
# planned: in the seed format its record's nextRunAt has moved into the
# future; in the current one mana_ai's slot state holds the record's
# nextRunAt as planned.
planned="mana_ai.iso_timestamp(mana_ai.replay_record(m.user_id, 'ai', 'aiMissions', m.record_id) ->> 'nextRunAt') > now()"
[ "$FORMAT" = seed ] || planned="EXISTS (SELECT 1 FROM mana_ai.mission_slots p WHERE p.user_id = m.user_id AND p.mission_id = m.record_id
          AND p.planned_slot >= mana_ai.iso_timestamp(mana_ai.replay_record(m.user_id, 'ai', 'aiMissions', m.record_id) ->> 'nextRunAt'))"
redue="INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.record_id, m.user_id, 'update',
       jsonb_build_object('nextRunAt', to_char(clock_timestamp() AT TIME ZONE 'UTC' - interval '1 minute',
                                               'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')), 'crash-test'
  FROM (SELECT DISTINCT record_id, user_id FROM sync_changes WHERE table_name = 'aiMissions') m
 WHERE $planned"
runner_rows="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"

# wait_new_worker OLDPID: a live tick worker other than OLDPID (the cluster
# is back); sets pid.
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

# Each runner row takes 40 ms to insert (a test-only trigger; no runner
# row is written while the LLM hangs), so a tick's write-back spans about
# a second and the write-back watcher, polling through a fresh psql each
# time on a loaded machine, sees its first committed batch before the tick
# ends (the kill must land between batches).
q mana_sync >/dev/null <<'SQL'
CREATE FUNCTION public.kill9_slow_writeback() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN PERFORM pg_sleep(0.04); RETURN NULL; END$$;
CREATE TRIGGER kill9_slow_writeback AFTER INSERT ON public.sync_changes FOR EACH ROW
    WHEN (NEW.client_id = 'mana-ai-runner') EXECUTE FUNCTION public.kill9_slow_writeback();
SQL

# --- kill -9 while the LLM calls are in flight -----------------------------
last=""
for i in $(seq 1 "$KILLS_LLM"); do
    wait_new_worker "$last"
    # The calls of the killed worker were closed by the kernel; the mock
    # notices within 50 ms, so in_flight > 0 is this worker's calls.
    deadline=$((SECONDS + 20)); phase=""
    while [ $SECONDS -lt $deadline ]; do
        phase=$(try_q postgres "SELECT query FROM pg_stat_activity WHERE pid = $pid")
        if [ "$phase" = "mana_ai tick: waiting for the LLM" ] && [ "$(mock_stat in_flight)" -gt 0 ] 2>/dev/null; then
            break
        fi
        phase=""
        sleep 0.05
    done
    [ -n "$phase" ] || fail "kill $i: worker $pid never reached the LLM phase with calls in flight"
    # Before the last kill: nothing planned so far; the next worker's calls get answers.
    if [ "$i" = "$KILLS_LLM" ]; then
        [ "$(q mana_sync -c "$runner_rows")" = 0 ] || fail "something was planned while every LLM call hung"
        mock_control '{"mode": "ok"}'
    fi
    kill -9 "$pid" || fail "kill $i: kill -9 $pid"
    last=$pid
done
echo "killed the worker $KILLS_LLM times during its LLM calls ($((SECONDS - t0)) s)"

# --- kill -9 in the write-back phase ----------------------------------------
# The plans committed so far by the tick that worker PID is running.
tick_plans() {
    try_q mana_sync "SELECT count(*) FROM mana_ai.tick_runs t JOIN sync_changes s
                      ON s.client_id = 'mana-ai-runner' AND s.created_at >= t.started_at
                   WHERE t.status = 'running' AND t.backend_pid = $1"
}
# Every planned mission is made due again, with a new slot, by a loop in
# the background (so it never delays the watching below).  It holds the
# tick lock while it writes, as a session lock taken before the INSERT's
# own transaction starts: its rows are then never concurrent with a
# write-back, so LWW cannot let a write-back's later field stamp override
# a slot the test counts on (a user rescheduling during a write-back can
# lose that way, as to any later field write).  While it holds the lock
# the worker's tick is overlap-skipped.
redue_loop() {
    while :; do
        psql -X -qAt -d mana_sync -c "SELECT mana_ai.hold_tick_lock()" -c "$redue" \
             -c "SELECT mana_ai.release_tick_lock()" >/dev/null 2>&1 || true
        sleep 0.3
    done
}
redue_loop &
redue_pid=$!
trap 'kill $redue_pid $MOCK_PID 2>/dev/null || true' EXIT
seen=""
for i in $(seq 1 "$KILLS_WRITE"); do
    wait_new_worker "$last"
    deadline=$((SECONDS + 30)); got=0
    while [ $SECONDS -lt $deadline ]; do
        got=$(tick_plans "$pid")
        [ "${got:-0}" -gt 0 ] && break
        sleep 0.01
    done
    [ "${got:-0}" -gt 0 ] || fail "write-back kill $i: worker $pid wrote no plan within 30 s"
    kill -9 "$pid" || true      # it may just have finished on its own: fine
    last=$pid
    seen="$seen${seen:+,}$got"
done
kill $redue_pid 2>/dev/null || true
wait $redue_pid 2>/dev/null || true
wait_new_worker "$last"
try_q mana_sync "DROP TRIGGER kill9_slow_writeback ON public.sync_changes" >/dev/null
[ "$(q mana_sync -c "SELECT count(*) FROM pg_trigger WHERE tgname = 'kill9_slow_writeback'")" = 0 ] || fail "could not drop the slow trigger"
echo "killed it $KILLS_WRITE more times once a tick had committed plans (plans of that tick seen at each kill: $seen; $((SECONDS - t0)) s)"

# --- the mock answers: everything due is planned once ----------------------
slots="SELECT count(*) FROM sync_changes WHERE table_name = 'aiMissions' AND client_id <> 'mana-ai-runner' AND data ? 'nextRunAt'"
want=$(q mana_sync -c "$slots")
poll_until 60 mana_sync "$runner_rows" "$want" \
    || { q mana_sync -c "SELECT id, status, due_missions, plans_written_back, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 5" | cut -c1-300;
         fail "not every due slot was planned once the LLM answered"; }
poll_until 20 mana_sync "SELECT count(*) FROM mana_ai.due_missions" 0 || fail "missions still due"
# A few more ticks plan nothing more.
ticks=$(q mana_sync -c "SELECT max(id) FROM mana_ai.tick_runs")
poll_until 20 mana_sync "SELECT count(*) >= 2 FROM mana_ai.tick_runs WHERE id > $ticks AND status = 'ok'" t || fail "worker stopped ticking"
[ "$(q mana_sync -c "$runner_rows")" = "$want" ] || fail "a later tick planned again"

# Each runner row, with the nextRunAt it advanced from and who set that
# (in the current format runner rows set none: every slot is a user's).
check_planned() {
    psql -X -qAt -v ON_ERROR_STOP=1 -d mana_sync -c "
CREATE TEMP VIEW planned AS
SELECT r.record_id, r.id, p.slot, p.client_id AS slot_by
  FROM sync_changes r
  CROSS JOIN LATERAL (
        SELECT s.data ->> 'nextRunAt' AS slot, s.client_id FROM sync_changes s
         WHERE s.table_name = 'aiMissions' AND s.record_id = r.record_id AND s.data ? 'nextRunAt'
           AND (s.created_at, s.id) < (r.created_at, r.id)
         ORDER BY s.created_at DESC, s.id DESC LIMIT 1) p
 WHERE r.client_id = 'mana-ai-runner'" -c "$1"
}
[ "$(check_planned "SELECT count(*) FROM (SELECT 1 FROM planned GROUP BY record_id, slot HAVING count(*) > 1) d")" = 0 ] \
    || fail "a mission got two iterations for one slot"
[ "$(check_planned "SELECT count(*) FROM planned WHERE slot_by = 'mana-ai-runner' OR slot IS NULL")" = 0 ] \
    || fail "a runner row planned a slot that was not due (set by the runner itself)"
[ "$(check_planned "SELECT count(*) FROM planned")" = "$want" ] || fail "runner rows without a slot"
# The merged record: every iteration once, as many as runner rows.
[ "$(q mana_sync -c "
SELECT count(*) FROM (
  SELECT m.record_id,
         (SELECT count(*) FROM sync_changes r WHERE r.client_id = 'mana-ai-runner' AND r.record_id = m.record_id) AS rows,
         (SELECT count(*) FROM jsonb_array_elements(rec -> 'iterations')) AS its,
         (SELECT count(DISTINCT e ->> 'id') FROM jsonb_array_elements(rec -> 'iterations') e) AS ids
    FROM (SELECT record_id, mana_ai.replay_record(min(user_id), 'ai', 'aiMissions', record_id) AS rec
            FROM sync_changes WHERE table_name = 'aiMissions' GROUP BY record_id) m) x
 WHERE rows <> its OR its <> ids OR rows = 0")" = 0 ] || fail "iterations array does not match the runner rows"

# --- tick runs: none left running by a dead worker (SPEC 9a) ---------------
live=$(worker_pid)
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running' AND backend_pid <> ${live:-0}")" = 0 ] \
    || fail "a tick run of a killed worker is still 'running'"
restarted=$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'failed' AND errors ? 'server restarted' AND finished_at IS NOT NULL")
[ "$restarted" -ge "$KILLS_LLM" ] || fail "only $restarted tick runs marked failed ('server restarted'), wanted >= $KILLS_LLM"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'failed' AND NOT errors ? 'server restarted'")" = 0 ] \
    || fail "a tick failed for another reason"
[ "$(log_count 'mana_ai worker marked [0-9]+ unfinished tick run')" -ge "$KILLS_LLM" ] || fail "marking not logged"
[ "$(log_count 'was terminated by signal 9')" -ge "$KILLS_LLM" ] || fail "the kills are not in the server log"
echo "every slot planned exactly once after $((KILLS_LLM + KILLS_WRITE)) kill -9 ($want plans, $restarted tick runs marked failed, $((SECONDS - t0)) s)"
