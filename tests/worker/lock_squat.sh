#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# No login can stall the tick (issue 19).  Up to 0.2.0 the tick lock and
# the refresh locks were advisory locks on fixed keys: any role could hold
# pg_advisory_lock(1835101793, 100) and every tick was overlap-skipped, or
# (1835101793, 1) and the refresh waited forever.
#  1. a role with no mana_ai privilege holds the old advisory keys and
#     tries every lock it can think of on mana_ai's lock objects: LOCK
#     TABLE, SELECT ... FOR UPDATE/FOR KEY SHARE on snapshot_horizon,
#     hold_tick_lock() (all refused); meanwhile the worker ticks ok,
#     plans a due mission, and a SQL tick as the worker's role runs (no
#     overlap-skipped);
#  2. a session that does hold a refresh lock (a superuser's open
#     transaction) makes the refresh give up after
#     mana_ai.refresh_lock_timeout: the tick fails with that error, not a
#     hang, mana_ai_lock_timeouts_total counts it, the log says it; once
#     the holder ends, the worker ticks ok again.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

work=$(mktemp -d)
spid=
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$spid" ] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
    kill "${MOCK_PID:-}" 2>/dev/null || true
    rm -rf "$work"
}

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" -c "CREATE ROLE squatter LOGIN" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap cleanup EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
wait_worker_ticks 1

# --- 1. a login without mana_ai privileges squats every lock it can take ----------
mkfifo "$work/squat.in"
psql -X -At -d mana_sync <"$work/squat.in" >"$work/squat.out" 2>&1 &
spid=$!
exec 3>"$work/squat.in"
cat >&3 <<'SQL'
SET application_name = 'squatter';
SET SESSION AUTHORIZATION squatter;
SELECT 'adv=' || pg_catalog.pg_advisory_lock(1835101793, 100)::text;
SELECT 'adv=' || pg_catalog.pg_advisory_lock(1835101793, 1)::text;
SELECT 'adv=' || pg_catalog.pg_advisory_lock(1835101793, 2)::text;
BEGIN; LOCK TABLE mana_ai.tick_lock IN ACCESS EXCLUSIVE MODE; ROLLBACK;
SELECT 'row=' || kind FROM mana_ai.snapshot_horizon FOR UPDATE;
SELECT 'row=' || kind FROM mana_ai.snapshot_horizon FOR KEY SHARE;
SELECT 'hold=' || mana_ai.hold_tick_lock()::text;
SELECT 'done';
SQL
poll_until 20 mana_sync "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                          WHERE a.application_name = 'squatter' AND l.locktype = 'advisory' AND l.granted" 3 \
    || fail "the squatter did not get the old advisory keys: $(cat "$work/squat.out")"
deadline=$((SECONDS + 20))
until grep -q '^done$' "$work/squat.out"; do
    [ $SECONDS -lt $deadline ] || fail "the squatter's lock attempts did not return: $(cat "$work/squat.out")"
    sleep 0.2
done
[ "$(grep -c 'permission denied' "$work/squat.out")" = 4 ] || fail "the squatter was not refused four times: $(cat "$work/squat.out")"
grep -q '^row=\|^hold=' "$work/squat.out" && fail "the squatter took a mana_ai lock: $(cat "$work/squat.out")"
# Only the advisory locks are the squatter's: no lock on any mana_ai relation.
[ "$(q mana_sync -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                     WHERE a.application_name = 'squatter' AND l.locktype = 'relation'
                       AND l.relation IN ('mana_ai.tick_lock'::regclass, 'mana_ai.snapshot_horizon'::regclass)")" = 0 ] \
    || fail "the squatter holds a lock on a mana_ai relation"
echo "ok - a login without mana_ai privileges holds the old advisory keys; LOCK TABLE, FOR UPDATE, FOR KEY SHARE and hold_tick_lock() are refused to it"

t0=$(q mana_sync -c "SELECT clock_timestamp()")
add_missions <<'EOF2'
m-squat|u-squat|Trotz Hausbesetzer planen
EOF2
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-squat'" 1 \
    || fail "the mission was not planned while the squatter held the old keys: $(q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3")"
poll_until 30 mana_sync "SELECT count(*) >= 3 FROM mana_ai.tick_runs WHERE source = 'worker' AND status = 'ok' AND started_at > '$t0'" t \
    || fail "the worker did not tick ok while the squatter held the old keys"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE started_at > '$t0' AND status <> 'ok' AND finished_at IS NOT NULL")" = 0 ] \
    || fail "a tick was skipped or failed: $(q mana_sync -c "SELECT id, source, status, errors FROM mana_ai.tick_runs WHERE started_at > '$t0' AND status <> 'ok'")"
# A SQL tick as the worker's role, between two worker ticks: never blocked by the squatter.
res=""
for _ in $(seq 1 20); do
    res=$(q mana_sync -c "SET ROLE mana_runner" -c "SELECT mana_ai_tick() -> 'errors'")
    [ "$res" = '[]' ] && break
    sleep 0.1   # overlapped the worker's own tick: try again
done
[ "$res" = '[]' ] || fail "SELECT mana_ai_tick() as the worker's role gave errors $res"
grep -q '^done$' "$work/squat.out" && kill -0 "$spid" || fail "the squatter's session ended early"
echo "ok - with the squatter holding the old keys the worker ticks ok and plans, and a SQL tick runs"
exec 3>&-
wait "$spid" 2>/dev/null || true
spid=

# --- 2. a refresh lock held by a session that may take it: a bounded wait ---------
set_guc mana_ai.refresh_lock_timeout 300
wait_worker_ticks 1
mkfifo "$work/hold.in"
psql -X -At -v ON_ERROR_STOP=1 -d mana_sync <"$work/hold.in" >"$work/hold.out" 2>&1 &
spid=$!
exec 3>"$work/hold.in"
printf '%s\n' "SET application_name = 'holder';" "BEGIN;" "SELECT 'held=' || kind FROM mana_ai.snapshot_horizon WHERE kind = 'agents' FOR UPDATE;" >&3
poll_until 20 mana_sync "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder' AND state = 'idle in transaction'" 1 \
    || fail "the holder did not take the row lock: $(cat "$work/hold.out")"
t1=$(q mana_sync -c "SELECT clock_timestamp()")
poll_until 30 mana_sync "SELECT count(*) >= 2 FROM mana_ai.tick_runs WHERE source = 'worker' AND status = 'failed' AND started_at > '$t1'
                          AND errors::text LIKE '%gave up waiting for the refresh locks after 300 ms%'" t \
    || fail "the refresh did not give up: $(q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3")"
[ "$(q mana_sync -c "SELECT value >= 2 FROM mana_ai.metrics WHERE name = 'mana_ai_lock_timeouts_total'")" = t ] \
    || fail "mana_ai_lock_timeouts_total: $(q mana_sync -c "SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_lock_timeouts_total'")"
wait_for_log 10 'mana_ai worker: mana_ai refresh: gave up waiting for the refresh locks after 300 ms' || fail "no log line for the lock timeout"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running' AND started_at < clock_timestamp() - interval '5 seconds'")" = 0 ] \
    || fail "a tick hangs in the refresh"
echo "ok - a held refresh lock: the tick gives up after mana_ai.refresh_lock_timeout (failed, counted, logged), never hangs"

printf '%s\n' "COMMIT;" >&3
exec 3>&-
wait "$spid" 2>/dev/null || true
spid=
t2=$(q mana_sync -c "SELECT clock_timestamp()")
poll_until 30 mana_sync "SELECT count(*) >= 2 FROM mana_ai.tick_runs WHERE source = 'worker' AND status = 'ok' AND started_at > '$t2'" t \
    || fail "the worker did not tick ok again after the holder ended"
echo "ok - the holder gone, the worker ticks ok again"
echo "PASS lock_squat"
