#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1
# The worker shows itself, comes back after pg_terminate_backend, reloads
# on SIGHUP, and never blocks DROP DATABASE (of another database or its own).
set -euo pipefail
source tests/lib/common.sh

setup_mana_sync
workers="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND datname = 'mana_sync'"
poll_until 20 postgres "$workers" 1 || fail "worker not in pg_stat_activity"
poll_until 10 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai launcher' AND datname IS NULL" 1 \
    || fail "launcher not in pg_stat_activity (or connected to a database)"
[ "$(q postgres -c "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")" = "mana_ai worker" ] \
    || fail "worker does not report its application_name"
pid=$(q mana_sync -c "SELECT worker_pid FROM mana_ai.status")
[ "$pid" = "$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")" ] \
    || fail "mana_ai.status.worker_pid ($pid) is not the worker's pid"
poll_until 10 mana_sync "SELECT last_tick_started_at IS NOT NULL FROM mana_ai.status" t || fail "worker never ticked"

# Terminated: the launcher starts a new one; the metrics in shared memory stay.
ticks="SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_ticks_total' AND labels = '{}'"
poll_until 20 mana_sync "SELECT ($ticks) >= 3" t || fail "fewer than 3 ticks counted"
before=$(q mana_sync -c "$ticks")
q postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
poll_until 20 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND pid <> $pid" 1 \
    || fail "worker was not restarted after pg_terminate_backend"
[ "$(q mana_sync -c "SELECT ($ticks) >= $before")" = t ] || fail "mana_ai_ticks_total went back from $before after the restart"
echo "restarted after pg_terminate_backend, metrics kept"

# SIGHUP: a new tick_interval reaches the worker's schedule.
set_guc mana_ai.tick_interval 7s
poll_until 15 mana_sync "SELECT (next_tick_at - last_tick_started_at) BETWEEN interval '6 s' AND interval '8 s' FROM mana_ai.status" t \
    || fail "worker did not pick up mana_ai.tick_interval after reload"
echo "reloaded on SIGHUP"

# DROP DATABASE of another database is not blocked.
q postgres -c "CREATE DATABASE scratch" >/dev/null
start=$SECONDS
q postgres -c "DROP DATABASE scratch" >/dev/null || fail "DROP DATABASE scratch failed"
[ $((SECONDS - start)) -le 2 ] || fail "DROP DATABASE scratch took $((SECONDS - start))s"
echo "DROP DATABASE of another database is free"

# Not even its own: the worker leaves, the launcher waits for the database.
start=$SECONDS
q postgres -c "DROP DATABASE mana_sync" >/dev/null || fail "DROP DATABASE mana_sync was blocked by the worker"
[ $((SECONDS - start)) -le 6 ] || fail "DROP DATABASE mana_sync took $((SECONDS - start))s"
poll_until 10 postgres "$workers" 0 || fail "worker still around after its database was dropped"
wait_for_log 10 'database "mana_sync" does not exist, waiting' || fail "launcher did not report waiting"
setup_mana_sync
poll_until 30 postgres "$workers" 1 || fail "worker did not come back with its database"
echo "DROP DATABASE of its own database is free, and it comes back"

[ "$(log_count 'terminated by signal')" = 0 ] || fail "a mana_ai process crashed"
