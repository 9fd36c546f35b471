#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# A (re)starting worker marks tick runs a crash left "running" as failed,
# and only those.  A live tick in a backend of another role (here a
# superuser session that holds the tick lock and has a committed running
# row) shows no backend_start to the worker's role in pg_stat_activity:
# it must stay running while its backend holds the tick lock, and be
# marked failed at the next worker start once that backend is gone.  A
# running row whose backend is dead is marked failed at once.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

work=$(mktemp -d)
lpid=
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$lpid" ] && { kill "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true; }
    kill "${MOCK_PID:-}" 2>/dev/null || true
    rm -rf "$work"
}

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap cleanup EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
wait_worker_ticks 1

worker_pid() { q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'"; }
# restart_worker STATUS: terminate the worker, wait for a new one and for
# its first tick (which comes after its recovery step) to end with STATUS.
restart_worker() {
    local old new
    old=$(worker_pid)
    q postgres -c "SELECT pg_terminate_backend($old)" >/dev/null
    poll_until 30 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND pid <> $old" 1 \
        || fail "the worker did not come back"
    new=$(worker_pid)
    poll_until 30 mana_sync "SELECT count(*) > 0 FROM mana_ai.tick_runs WHERE source = 'worker' AND backend_pid = $new AND status = '$1'" t \
        || fail "the new worker ($new) did not tick ($1): $(q mana_sync -c "SELECT id, backend_pid, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3")"
}
status_of() { q mana_sync -c "SELECT status FROM mana_ai.tick_runs WHERE id = $1"; }

# A live tick of another role: the tick lock held, its run row committed.
mkfifo "$work/live.in"
psql -X -q -At -v ON_ERROR_STOP=1 -d mana_sync <"$work/live.in" >"$work/live.out" 2>&1 &
lpid=$!
exec 3>"$work/live.in"
cat >&3 <<'SQL'
SET application_name = 'unfinished_live';
SELECT mana_ai.hold_tick_lock();
INSERT INTO mana_ai.tick_runs (source, status) VALUES ('sql', 'running') RETURNING 'live=' || id;
SQL
poll_until 20 mana_sync "SELECT count(*) FROM mana_ai.tick_runs t JOIN pg_stat_activity a ON a.pid = t.backend_pid WHERE a.application_name = 'unfinished_live' AND t.status = 'running'" 1 \
    || fail "the live tick did not start: $(cat "$work/live.out")"
live=$(sed -n 's/^live=//p' "$work/live.out")
# A run whose backend is gone (no such pid).
dead=$(q mana_sync -c "INSERT INTO mana_ai.tick_runs (source, status, backend_pid) VALUES ('worker', 'running', 2147483647) RETURNING id")
# What the worker's role sees of the live backend.
[ "$(q mana_sync -c "SET ROLE mana_runner; SELECT backend_start IS NULL FROM pg_stat_activity WHERE application_name = 'unfinished_live'")" = t ] \
    || fail "the worker's role sees the other role's backend_start (test setup)"

# The worker restarts while the live tick holds the lock: its ticks skip.
restart_worker overlap-skipped
[ "$(status_of "$dead")" = failed ] || fail "the run of a dead backend is $(status_of "$dead"), want failed"
[ "$(status_of "$live")" = running ] || fail "the live tick of another role was marked $(status_of "$live")"

# The live backend goes away without closing its run: the next start marks it.
exec 3>&-
wait "$lpid" 2>/dev/null || true
lpid=
restart_worker ok
[ "$(status_of "$live")" = failed ] || fail "the run left by a gone backend is $(status_of "$live"), want failed"
[ "$(q mana_sync -c "SELECT errors ? 'server restarted' FROM mana_ai.tick_runs WHERE id = $live")" = t ] || fail "no 'server restarted' error"
echo "ok - unfinished runs: a live tick of another role stays running, runs of gone backends are failed"
