#!/usr/bin/env bash
# cluster: --preload -o mana_ai.enabled=off -o shared_buffers=16MB
# One write-back's memory follows the mission's record, not its history
# (issue 19).  A mission with 300 rows in its log, each carrying every
# earlier iteration (3 kB each), as the runner writes them: a full replay
# holds every row detoasted at once, about 135 MB, and copies them into
# its fold.  The tick of one session (SELECT mana_ai_tick(), its
# snapshots refreshed beforehand by another session) must stay under
# 64 MB above what the session held before it (VmHWM of its own backend;
# shared_buffers is small so that pages it touches count little).  With
# mana_ai.max_iterations_kept = 5 the written array keeps the newest 5
# (the new one included) plus the older ones with a step still planned.
set -euo pipefail
source tests/lib/common.sh

N=${WRITEBACK_ROWS:-300}
setup_mana_sync
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.max_iterations_kept 5

# Iteration k: 3 kB of summary; its plan step is still planned for k = 3
# and k = 7, approved otherwise.  Row i carries iterations 1..i.
q mana_sync -v n="$N" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
VALUES ('ai', 'agents', 'legacy:ai-default', 'ubig', 'insert',
        '{"name": "Mana", "state": "active", "maxConcurrentMissions": 1,
          "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}', 'web',
        now() - interval '1 day');
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
VALUES ('ai', 'aiMissions', 'm-big', 'ubig', 'insert',
        jsonb_build_object('title', 'Lang', 'conceptMarkdown', '', 'objective', 'Lange Geschichte',
                           'inputs', '[]'::jsonb, 'cadence', '{"kind": "interval", "everyMinutes": 1}'::jsonb,
                           'state', 'active', 'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb,
                           'agentId', 'legacy:ai-default',
                           'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
        'web', now() - interval '1 day');
CREATE TEMP TABLE its AS
SELECT k, jsonb_build_object('id', 'it-' || k, 'startedAt', '2026-01-01T08:00:00.000Z',
                             'summary', repeat('Zusammenfassung ', 190), 'source', 'server',
                             'overallStatus', CASE WHEN k IN (3, 7) THEN 'awaiting-review' ELSE 'approved' END,
                             'plan', jsonb_build_array(jsonb_build_object(
                                 'id', 'it-' || k || '-0', 'summary', 'Schritt',
                                 'status', CASE WHEN k IN (3, 7) THEN 'planned' ELSE 'approved' END))) AS it
  FROM generate_series(1, :n) k;
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
SELECT 'ai', 'aiMissions', 'm-big', 'ubig', 'update',
       jsonb_build_object('iterations', (SELECT jsonb_agg(it ORDER BY k) FROM its WHERE k <= i)),
       'mana-ai-runner', now() - interval '1 hour' + i * interval '1 second'
  FROM generate_series(1, :n) i;
SQL
q mana_sync -c "SELECT mana_ai.refresh_snapshots()" >/dev/null
[ "$(q mana_sync -c "SELECT jsonb_array_length(record -> 'iterations') FROM mana_ai.mission_snapshots WHERE mission_id = 'm-big'")" = "$N" ] \
    || fail "the snapshot does not hold the $N iterations"
before=$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE record_id = 'm-big'")

# One session: its VmHWM after loading the library, the tick, its VmHWM after.
out=$(q mana_sync <<'SQL'
LOAD 'mana_ai';
SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)');
SELECT mana_ai_tick() IS NOT NULL;
SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)');
SQL
)
hwm0=$(sed -n 1p <<<"$out"); hwm1=$(sed -n 3p <<<"$out")
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE record_id = 'm-big'")" = $((before + 1)) ] \
    || { q mana_sync -c "SELECT status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 1"; fail "the tick did not write the mission back"; }
grow=$(( (hwm1 - hwm0) / 1024 ))
echo "write-back of a mission with $N iterations: VmHWM $((hwm0 / 1024)) MB before the tick, $((hwm1 / 1024)) MB after (+$grow MB)"
[ "$grow" -lt 64 ] || fail "one tick grew the backend's peak memory by $grow MB (bound 64 MB): the write-back holds the history"

# max_iterations_kept = 5: it-3 and it-7 (planned steps), the newest 4 old ones and the new one.
ids=$(q mana_sync -c "SELECT string_agg(e ->> 'id', ',' ORDER BY o)
                        FROM sync_changes c, jsonb_array_elements(c.data -> 'iterations') WITH ORDINALITY a(e, o)
                       WHERE c.record_id = 'm-big' AND c.created_at > now() - interval '10 minutes'")
want="it-3,it-7,it-$((N - 3)),it-$((N - 2)),it-$((N - 1)),it-$N"
[ "${ids%,*}" = "$want" ] || fail "max_iterations_kept wrote ${ids}, want $want,<new>"
echo "writeback memory ok"
