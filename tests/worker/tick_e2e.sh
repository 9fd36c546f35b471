#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# End to end with the worker and the mock LLM: every due mission planned
# exactly once per slot, gates per (user, agent), the exact row shape of
# SPEC 1.3/1.4 (seed) or 11.2 (current) written as a role without
# BYPASSRLS, the next slot advanced (nextRunAt, or mana_ai.mission_slots),
# nothing planned twice, tick_runs and metrics kept.
set -euo pipefail
source tests/lib/common.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/tick_world.sql >/dev/null

written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
# 100 default-agent users + m-busy-1 + m-ghost in the first tick, m-busy-2 (deferred) in the next.
poll_until 60 mana_sync "$written" 103 || { q mana_sync -c "SELECT id, status, due_missions, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-600; fail "expected 103 write-backs"; }
first=$(q mana_sync -c "SELECT min(id) FROM mana_ai.tick_runs WHERE source = 'worker' AND plans_written_back > 0")
[ "$(q mana_sync -c "SELECT plans_written_back FROM mana_ai.tick_runs WHERE id = $first")" = 102 ] \
    || fail "the first planning tick did not plan all 100 default-agent users plus two"
# Several more ticks plan nothing.
poll_until 30 mana_sync "SELECT count(*) >= 3 FROM mana_ai.tick_runs WHERE id > $first + 1 AND status = 'ok'" t \
    || fail "worker stopped ticking"
[ "$(q mana_sync -c "$written")" = 103 ] || fail "a later tick planned again"
[ "$(q mana_sync -c "SELECT count(*) FROM (SELECT record_id FROM sync_changes WHERE client_id = 'mana-ai-runner' GROUP BY record_id HAVING count(*) > 1) d")" = 0 ] \
    || fail "a mission got two iterations"

# Who was not planned, and why.
for m in m-paused m-archived m-deleted-agent m-broke m-future m-off m-gone m-manual; do
    [ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$m'")" = 0 ] \
        || fail "$m must not be planned"
done
for d in skipped-paused skipped-archived skipped-deleted skipped-budget skipped-concurrency ran; do
    [ "$(q mana_sync -c "SELECT value >= 1 FROM mana_ai.metrics WHERE name = 'mana_ai_agent_decisions_total' AND labels ->> 'decision' = '$d'")" = t ] \
        || fail "no agent decision $d counted"
done

# The written row, exactly (SPEC 1.3, 1.4, 4.8).
row="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-busy-1'"
check() { [ "$(q mana_sync -c "SELECT ($1) $row")" = t ] || fail "row shape: $1"; }
check "op = 'update' AND app_id = 'ai' AND table_name = 'aiMissions' AND user_id = 'alice' AND schema_version = 1"
if [ "$FORMAT" = seed ]; then
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(data) k) = '{iterations,nextRunAt,updatedAt}'"
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(field_timestamps) k) = '{iterations,nextRunAt,updatedAt}'"
    check "field_timestamps ->> 'iterations' = data ->> 'updatedAt' AND field_timestamps ->> 'nextRunAt' = data ->> 'updatedAt'"
else
    # SPEC 11.2: the iterations alone, origin agent, the mission's space
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(data) k) = '{iterations}'"
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(field_meta) k) = '{iterations}'"
    check "field_meta ->> 'iterations' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$'"
    check "origin = 'agent' AND client_id = 'mana-ai-runner' AND space_id = 'space-alice'"
    [ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND (origin IS DISTINCT FROM 'agent' OR data - 'iterations' <> '{}' OR field_meta - 'iterations' <> '{}')")" = 0 ] \
        || fail "a current-format row carries more than its iterations"
    [ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND space_id IS NOT NULL AND record_id NOT IN ('m-busy-1', 'm-busy-2')")" = 0 ] \
        || fail "a mission without a space got one"
    # bob, a member of alice's space, pulls the iteration through space_id
    # under the space policy (and sees none of alice's other rows).
    q mana_sync -c "CREATE ROLE bob_app NOBYPASSRLS" -c "GRANT SELECT ON sync_changes TO bob_app" >/dev/null
    [ "$(q mana_sync -c "BEGIN" -c "SET LOCAL ROLE bob_app" -c "SELECT set_config('app.current_user_id', 'bob', true), set_config('app.current_user_space_ids', 'space-other,space-alice', true)" \
          -c "SELECT count(*) FILTER (WHERE client_id = 'mana-ai-runner' AND record_id = 'm-busy-1') || '|' || count(*) FILTER (WHERE space_id IS DISTINCT FROM 'space-alice') FROM sync_changes" -c "COMMIT" | sed -n 2p)" = "1|0" ] \
        || fail "bob did not pull the server iteration through the space policy"
fi
check "actor = jsonb_build_object('kind', 'ai', 'principalId', 'ag-busy', 'displayName', 'Fleissig', 'missionId', 'm-busy-1', 'iterationId', data -> 'iterations' -> -1 ->> 'id', 'rationale', 'Ziel m-busy-1')"
check "jsonb_array_length(data -> 'iterations') = 1"
check "(data -> 'iterations' -> 0 ->> 'source') = 'server' AND (data -> 'iterations' -> 0 ->> 'overallStatus') = 'awaiting-review'"
check "(data -> 'iterations' -> 0 ->> 'id') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'"
check "(data -> 'iterations' -> 0 -> 'plan' -> 0 ->> 'id') = (data -> 'iterations' -> 0 ->> 'id') || '-0'"
check "(data -> 'iterations' -> 0 -> 'plan' -> 0 -> 'intent' ->> 'kind') = 'toolCall' AND (data -> 'iterations' -> 0 -> 'plan' -> 0 ->> 'status') = 'planned'"
check "(data -> 'iterations' -> 0 ->> 'startedAt') ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$'"
# cron "0 9 * * 1-5" in UTC: the next weekday 09:00 after the write,
# interval: write time + 60 min; in the record (seed) or in mana_ai's slot
# state (current, where the record's nextRunAt is never written).
if [ "$FORMAT" = seed ]; then
    next="mana_ai.iso_timestamp(data ->> 'nextRunAt')"; at="mana_ai.iso_timestamp(data ->> 'updatedAt')"
    from="sync_changes"
else
    next="mana_ai.iso_timestamp(p.next_slot)"; at="mana_ai.iso_timestamp(field_meta ->> 'iterations')"
    from="sync_changes s JOIN mana_ai.mission_slots p ON p.user_id = s.user_id AND p.mission_id = s.record_id"
    [ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'") " = "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_slots") " ] \
        || fail "not one slot state row per planned mission"
fi
[ "$(q mana_sync -c "SELECT $next = mana_ai.next_run_at('{\"kind\": \"cron\", \"expression\": \"0 9 * * 1-5\"}', $at) FROM $from WHERE client_id = 'mana-ai-runner' AND record_id = 'm-busy-1'")" = t ] \
    || fail "the cron cadence did not advance to the next weekday 09:00"
# An agent that matches no snapshot runs as legacy.
[ "$(q mana_sync -c "SELECT actor ->> 'principalId' || '|' || (actor ->> 'displayName') FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-ghost'")" = "legacy:ai-default|Mana" ] \
    || fail "m-ghost was not written as a legacy mission"
[ "$(q mana_sync -c "SELECT $next - $at FROM $from WHERE client_id = 'mana-ai-runner' AND record_id = 'm-u042'")" = "01:00:00" ] \
    || fail "interval cadence did not advance by everyMinutes"
# The snapshot follows: not due any more.
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.due_missions WHERE mission_id LIKE 'm-u%'")" = 0 ] \
    || fail "planned missions are still due"
# Written as the worker's role, which does not bypass RLS.
[ "$(q postgres -c "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = 'mana_runner'")" = f ] || fail "runner role bypasses RLS"
[ "$(q postgres -c "SELECT usename FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")" = mana_runner ] || fail "worker not running as mana_runner"
# Ops surface.
# (the worker may be in the middle of a tick right now: only finished ones count)
bad="FROM mana_ai.tick_runs WHERE status NOT IN ('ok', 'overlap-skipped') AND NOT (status = 'running' AND id = (SELECT max(id) FROM mana_ai.tick_runs))"
[ "$(q mana_sync -c "SELECT count(*) $bad")" = 0 ] || { q mana_sync -c "SELECT id, source, status, errors $bad" | cut -c1-400; fail "a tick did not finish ok"; }
[ "$(q mana_sync -c "SELECT value >= 103 FROM mana_ai.metrics WHERE name = 'mana_ai_plans_written_back_total'")" = t ] || fail "metrics"
q mana_sync -c "SELECT mana_ai.metrics_prometheus()" | grep '^mana_ai_ticks_total [1-9]' >/dev/null || fail "prometheus text"
echo "tick end to end ok"
