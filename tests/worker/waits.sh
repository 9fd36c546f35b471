#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# Missing database, role and extension: each is logged once and waited
# for, without a crash loop, and picked up without a restart.
set -euo pipefail
source tests/lib/common.sh

wait_for_log 15 'database "mana_sync" does not exist, waiting' || fail "no log line for the missing database"
q postgres -c "CREATE DATABASE mana_sync" >/dev/null
wait_for_log 15 'role "mana_runner" does not exist, waiting' || fail "no log line for the missing role"
q postgres -c "CREATE ROLE mana_runner NOLOGIN" >/dev/null
wait_for_log 15 'role "mana_runner" cannot log in' || fail "no log line for a role without LOGIN"
q postgres -c "ALTER ROLE mana_runner LOGIN" >/dev/null

poll_until 20 postgres "SELECT usename FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'" mana_runner \
    || fail "worker did not connect as mana_runner"
wait_for_log 15 'extension "mana_ai" is not installed in database "mana_sync", waiting' \
    || fail "no log line for the missing extension"
sleep 5   # several polling rounds: the waiting must stay quiet
[ "$(log_count 'extension "mana_ai" is not installed')" = 1 ] || fail "missing extension logged more than once"
[ "$(log_count 'does not exist, waiting')" = 2 ] || fail "missing database/role logged more than once each"
[ "$(log_count 'mana_ai (launcher|worker).* exited with exit code')" = 0 ] || fail "a mana_ai process exited (crash loop)"

psql -X -q -d mana_sync -v ON_ERROR_STOP=1 -f tests/fixtures/sync_changes.sql >/dev/null
q mana_sync -c "CREATE EXTENSION mana_ai" >/dev/null
wait_for_log 15 'extension "mana_ai" found, starting to tick' || fail "worker did not notice CREATE EXTENSION"
# Without its privileges the worker says why, once, and keeps waiting.
wait_for_log 15 'mana_ai worker: permission denied for table' || fail "no log line for missing privileges"
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
poll_until 30 mana_sync "SELECT last_tick_started_at IS NOT NULL FROM mana_ai.status" t \
    || fail "worker did not tick after CREATE EXTENSION and the GRANTs"
[ "$(log_count 'mana_ai worker: permission denied')" = 1 ] || fail "missing privileges logged more than once"
[ "$(log_count 'mana_ai worker started')" = 1 ] || fail "worker was restarted to notice the extension"
# Not the bootstrap superuser: no warning about it.
[ "$(log_count 'bypasses row-level security')" = 0 ] || fail "unexpected superuser warning"
[ "$(log_count 'terminated by signal')" = 0 ] || fail "a mana_ai process crashed"
echo "waited quietly for database, role and extension"
