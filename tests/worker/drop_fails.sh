#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1
# A DROP DATABASE of the worker's database that fails (issue 19): another
# session is connected, so the drop is refused.  The worker is not asked
# to leave for a drop that cannot succeed: the same worker (same pid)
# keeps ticking and the launcher runs on.  A drop that can succeed still
# makes the worker leave (tests/worker/lifecycle.sh).
set -euo pipefail
source tests/lib/common.sh

setup_mana_sync
workers="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND datname = 'mana_sync'"
poll_until 20 postgres "$workers" 1 || fail "worker not running"
pid=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")
launcher=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai launcher'")
poll_until 20 mana_sync "SELECT count(*) >= 2 FROM mana_ai.tick_runs WHERE status = 'ok'" t || fail "worker never ticked"

# A session that stays in mana_sync while the drop is tried.
psql -X -qAt -d mana_sync -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
holder=$!
trap 'kill $holder 2>/dev/null || true' EXIT
poll_until 10 postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mana_sync' AND query LIKE 'SELECT pg_sleep%'" 1 \
    || fail "the holding session did not connect"
if out=$(q postgres -c "DROP DATABASE mana_sync" 2>&1); then fail "DROP DATABASE succeeded with a session connected"; fi
echo "$out" | grep -q "is being accessed by other users" || fail "unexpected DROP error: $out"
q postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'mana_sync' AND query LIKE 'SELECT pg_sleep%'" >/dev/null
poll_until 10 postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mana_sync' AND query LIKE 'SELECT pg_sleep%'" 0 \
    || fail "the holding session did not leave"

[ "$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND datname = 'mana_sync'")" = "$pid" ] \
    || fail "the worker was killed by a DROP DATABASE that failed"
[ "$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai launcher'")" = "$launcher" ] \
    || fail "the launcher is gone"
t0=$(q mana_sync -c "SELECT clock_timestamp()")
poll_until 20 mana_sync "SELECT count(*) >= 2 FROM mana_ai.tick_runs WHERE started_at > '$t0' AND status = 'ok'" t \
    || fail "the worker does not tick after the failed drop"
[ "$(log_count 'terminating background worker "mana_ai worker"|terminated by signal')" = 0 ] || fail "a mana_ai process was terminated"

# A drop that can succeed still makes it leave, and it comes back with its database.
start=$SECONDS
q postgres -c "DROP DATABASE mana_sync" >/dev/null || fail "DROP DATABASE mana_sync failed once nothing else was connected"
[ $((SECONDS - start)) -le 6 ] || fail "DROP DATABASE mana_sync took $((SECONDS - start))s"
setup_mana_sync
poll_until 30 postgres "$workers" 1 || fail "worker did not come back with its database"
echo "PASS drop_fails"
