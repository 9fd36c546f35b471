#!/usr/bin/env bash
# cluster: --preload -o mana_ai.enabled=off
# SELECT mana_ai_tick() in one transaction stays within the subtransaction
# cache (issue 19): every subtransaction that writes takes a transaction
# id, and past PGPROC_MAX_CACHED_SUBXIDS (64) every other session's
# snapshot overflows.  0.2.0 took one per mission (201 at 200 missions);
# the grouped write-back takes about 32 whatever the count.  One mission's
# write-back raises (a trigger): it alone is undone and backs off, the
# other 199 are written, and the ids stay under 64.  The ids a tick took
# are counted as the advance of the transaction id counter around it
# (nothing else writes: the worker is off).
set -euo pipefail
source tests/lib/common.sh

setup_mana_sync
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.llm_max_parallel 32
q mana_sync <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'm-' || k, 'u' || (k % 50), 'insert',
       jsonb_build_object('title', 'Mission ' || k, 'objective', 'Ziel ' || k, 'inputs', '[]'::jsonb,
                          'state', 'active', 'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb,
                          'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb),
       'web'
  FROM generate_series(1, 200) k;
CREATE FUNCTION public.refuse_m100() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.client_id = 'mana-ai-runner' AND NEW.record_id = 'm-100' THEN
        RAISE EXCEPTION 'm-100 refused';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_m100 BEFORE INSERT ON public.sync_changes FOR EACH ROW EXECUTE FUNCTION public.refuse_m100();
SQL
x0=$(q mana_sync -c "SELECT pg_current_xact_id()")
result=$(q mana_sync -c "SELECT mana_ai_tick()")
x1=$(q mana_sync -c "SELECT pg_current_xact_id()")
subxids=$((x1 - x0 - 2))     # minus the tick's own top-level id and the second probe's
echo "200 missions: SELECT mana_ai_tick() took $subxids subtransaction ids"
[ "$(echo "$result" | jq -r '.plansWrittenBack')" = 199 ] || fail "plansWrittenBack: $(echo "$result" | jq -c '{plansWrittenBack, errors}')"
[ "$(echo "$result" | jq -r '[.errors[] | select(startswith("mission m-100: finalizing: m-100 refused"))] | length')" = 1 ] \
    || fail "the tick does not list m-100's error: $(echo "$result" | jq -c .errors)"
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'")" = 199 ] || fail "not 199 write-backs"
[ "$(q mana_sync -c "SELECT count(*) FROM (SELECT record_id FROM sync_changes WHERE client_id = 'mana-ai-runner' GROUP BY 1 HAVING count(*) > 1) d")" = 0 ] \
    || fail "a mission was written twice"
[ "$(q mana_sync -c "SELECT string_agg(mission_id || ':' || attempts, ',') FROM mana_ai.mission_attempts")" = "m-100:1" ] \
    || fail "attempts: $(q mana_sync -c "SELECT string_agg(mission_id || ':' || attempts, ',') FROM mana_ai.mission_attempts")"
[ "$(q mana_sync -c "SELECT count(*) || ':' || count(DISTINCT mission_id) FROM mana_ai.token_usage")" = "200:200" ] \
    || fail "tokens not counted once per mission: $(q mana_sync -c "SELECT count(*) || ':' || count(DISTINCT mission_id) FROM mana_ai.token_usage")"
[ "$subxids" -lt 64 ] || fail "$subxids subtransaction ids: past the cache of 64, other sessions' snapshots overflow"
echo "PASS subxact_cache"
