#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.enabled=off
# With mana_ai.role empty the worker runs as the bootstrap superuser and
# says so once; with mana_ai.enabled = off it does not tick; on reload
# with enabled = on it does.
set -euo pipefail
source tests/lib/common.sh

setup_mana_sync
wait_for_log 20 'WARNING: +mana_ai worker runs as the bootstrap superuser' || fail "no superuser warning"
sleep 3
[ "$(q mana_sync -c "SELECT last_tick_started_at IS NULL FROM mana_ai.status")" = t ] || fail "ticked while disabled"
set_guc mana_ai.enabled on
poll_until 15 mana_sync "SELECT last_tick_started_at IS NOT NULL FROM mana_ai.status" t || fail "no tick after enabling"
[ "$(log_count 'runs as the bootstrap superuser')" = 1 ] || fail "superuser warning repeated"
