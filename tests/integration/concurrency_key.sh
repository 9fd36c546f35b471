#!/usr/bin/env bash
# concurrency_key.sh: the agent concurrency gate (SPEC 4.4) counts per
# whole (user_id, agent_id), however long the ids.  Two agents of one user
# whose ids share their first 300 characters, each with
# maxConcurrentMissions 1 and one due mission: both missions run (here
# the LLM is a closed port, so each gets a calling-llm failure and a
# backoff row); none is skipped for concurrency.  A third mission of the
# first agent is skipped: the gate still counts.
# Runs inside with_cluster.sh (no preload), cwd = repo root.
set -euo pipefail
source tests/lib/common.sh
db=mana_conc_key

q postgres -c "CREATE DATABASE $db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $db -f tests/fixtures/sync_changes.sql >/dev/null 2>&1
q $db -c "CREATE EXTENSION mana_ai" >/dev/null
q postgres -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.llm_url = 'http://127.0.0.1:9'" -c "SELECT pg_reload_conf()" >/dev/null

q $db >/dev/null <<'SQL'
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'agents', repeat('a', 300) || a.n, 'alice', 'insert',
       jsonb_build_object('name', 'Agent ' || a.n, 'state', 'active', 'maxConcurrentMissions', 1), 'web'
  FROM (VALUES ('1'), ('2')) a(n);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.id, 'alice', 'insert',
       jsonb_build_object('title', 'Mission ' || m.id, 'objective', 'Ziel', 'inputs', '[]'::jsonb,
                          'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb,
                          'state', 'active', 'nextRunAt', m.next, 'iterations', '[]'::jsonb,
                          'agentId', repeat('a', 300) || m.agent), 'web'
  FROM (VALUES ('m-1', '1', '2026-01-01T08:00:00.000Z'),
               ('m-2', '2', '2026-01-01T08:00:01.000Z'),
               ('m-1b', '1', '2026-01-01T08:00:02.000Z')) m(id, agent, next);
SQL
res=$(q $db -c "SELECT mana_ai_tick()")
[ "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["dueMissionCount"])' "$res")" = 3 ] || fail "three missions should be due: $res"
ran=$(q $db -c "SELECT string_agg(mission_id, ',' ORDER BY mission_id) FROM mana_ai.mission_attempts")
[ "$ran" = "m-1,m-2" ] || fail "missions that ran (have a backoff row): '$ran', want m-1,m-2; tick: $res"
echo "ok - two agents whose ids share a 300-character prefix are gated apart"
