-- snapshots: incremental refresh of mission_snapshots / agent_snapshots (SPEC 3)
-- and the missions / due_missions / agents views.
CREATE EXTENSION mana_ai;
\i tests/fixtures/sync_changes.sql

-- :stamps is the stamps column of the format under test (sync_changes.sql)
\set w_body 'INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, ' :stamps ', client_id) VALUES (''ai'', tbl, rid, u, op, d, ft, ''web'')'
CREATE FUNCTION pg_temp.w(u text, tbl text, rid text, op text, d jsonb, ft jsonb DEFAULT '{}')
RETURNS void LANGUAGE sql AS :'w_body';
-- every snapshot equals a full replay of its record (NULL ↔ no snapshot)
CREATE VIEW pg_temp.stamped AS SELECT s.*, s.:"stamps" AS stamps FROM public.sync_changes s;
CREATE FUNCTION pg_temp.mismatches() RETURNS bigint LANGUAGE sql AS $$
  WITH r AS (
    SELECT user_id, table_name, record_id,
           mana_ai.lww_merge(record_id, op, data, stamps, created_at ORDER BY created_at, id) AS rec
      FROM pg_temp.stamped WHERE app_id = 'ai' GROUP BY 1, 2, 3)
  SELECT count(*) FROM r
    FULL JOIN (SELECT user_id, 'aiMissions' AS table_name, mission_id AS record_id, record FROM mana_ai.mission_snapshots
               UNION ALL
               SELECT user_id, 'agents', agent_id, record FROM mana_ai.agent_snapshots) s
      USING (user_id, table_name, record_id)
   WHERE r.rec IS DISTINCT FROM s.record $$;

-- an empty log: nothing to do
SELECT * FROM mana_ai.refresh_snapshots();

SELECT pg_temp.w('alice', 'aiMissions', 'm1', 'insert',
  '{"title": "Plan", "state": "active", "nextRunAt": "2020-01-01T00:00:00Z", "cadence": {"kind": "manual"},
    "grant": {"wrappedKey": "x"}, "iterations": [{"id": "i1"}], "agentId": "a1"}');
SELECT pg_temp.w('alice', 'aiMissions', 'm2', 'insert', '{"title": "Later", "state": "active", "nextRunAt": "2999-01-01T00:00:00+02:00"}');
SELECT pg_temp.w('alice', 'aiMissions', 'm3', 'insert', '{"title": "Gone", "state": "active", "nextRunAt": "2020-01-01T00:00:00Z"}');
SELECT pg_temp.w('bob', 'aiMissions', 'm1', 'insert', '{"title": "Bob''s", "state": "paused"}');
SELECT pg_temp.w('alice', 'agents', 'a1', 'insert', '{"name": "Ada", "role": "helper", "maxConcurrentMissions": 2, "maxTokensPerDay": 5000, "policy": {"defaultForAi": "propose"}}');
SELECT pg_temp.w('bob', 'agents', 'a1', 'insert', '{"name": "Bea", "maxConcurrentMissions": "lots", "state": "paused"}');
-- another app's rows are never folded
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('notes', 'notes', 'n1', 'alice', 'insert', '{"content": "x"}', 'web');

-- cold refresh: everything new
SELECT * FROM mana_ai.refresh_snapshots();
SELECT pg_temp.mismatches();
-- nothing new: 0 rows applied and no snapshot rewritten
CREATE TEMP TABLE before AS
  SELECT 'm' AS k, user_id, mission_id AS id, updated_at, xmin::text AS x FROM mana_ai.mission_snapshots
  UNION ALL SELECT 'a', user_id, agent_id, updated_at, xmin::text FROM mana_ai.agent_snapshots;
SELECT * FROM mana_ai.refresh_snapshots();
SELECT count(*) AS rewritten FROM before b
  JOIN (SELECT 'm' AS k, user_id, mission_id AS id, updated_at, xmin::text AS x FROM mana_ai.mission_snapshots
        UNION ALL SELECT 'a', user_id, agent_id, updated_at, xmin::text FROM mana_ai.agent_snapshots) a
  USING (k, user_id, id) WHERE a.x <> b.x OR a.updated_at <> b.updated_at;

-- an update, a soft delete, a tombstone
SELECT pg_temp.w('alice', 'aiMissions', 'm1', 'update', '{"title": "Plan v2"}');
SELECT pg_temp.w('alice', 'aiMissions', 'm2', 'update', '{"deletedAt": "2026-04-15T12:00:00Z", "nextRunAt": "2020-01-01T00:00:00Z"}');
SELECT pg_temp.w('alice', 'aiMissions', 'm3', 'delete', NULL);
SELECT * FROM mana_ai.refresh_snapshots();
SELECT pg_temp.mismatches();
-- a tombstoned record stays deleted whatever follows
SELECT pg_temp.w('alice', 'aiMissions', 'm3', 'insert', '{"title": "Back?", "state": "active"}');
SELECT pg_temp.w('alice', 'aiMissions', 'm3', 'update', '{"title": "Really?"}', '{"title": "2999-01-01T00:00:00Z"}');
SELECT * FROM mana_ai.refresh_snapshots();
SELECT count(*) AS m3_snapshots FROM mana_ai.mission_snapshots WHERE mission_id = 'm3';
SELECT pg_temp.mismatches();

-- the views: typed columns, deletedAt hidden from due_missions
SELECT user_id, mission_id, title, state, next_run_at, agent_id, has_grant, iteration_count,
       last_iteration_status, last_iteration_at, deleted, deleted_at, due, cadence
  FROM mana_ai.missions ORDER BY user_id, mission_id;
SELECT user_id, mission_id, title FROM mana_ai.due_missions;
SELECT user_id, agent_id, name, state, max_concurrent_missions, max_tokens_per_day, deleted
  FROM mana_ai.agents ORDER BY user_id, agent_id;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'mana_ai.missions'::regclass AND attnum > 0 ORDER BY attnum;

-- 1,000 malformed rows mixed into a valid workload: skipped, never aborting
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, :"stamps", client_id)
SELECT 'ai', CASE WHEN g % 5 = 0 THEN 'agents' ELSE 'aiMissions' END, 'w' || (g % 40), 'u' || (g % 7),
       CASE WHEN g % 6 = 0 THEN 'insert' ELSE 'update' END,
       jsonb_build_object('title', 't' || g, 'n', g, 'state', 'active'),
       CASE WHEN g % 3 = 0 THEN jsonb_build_object('title', '2026-04-15T12:00:00.' || lpad((g % 999999)::text, 6, '0') || 'Z')
            WHEN g % 3 = 1 THEN jsonb_build_object('n', 'not a stamp')
            ELSE '{}' END, 'web'
  FROM generate_series(1, 600) g;
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, :"stamps", client_id)
SELECT 'ai', CASE WHEN g % 5 = 0 THEN 'agents' ELSE 'aiMissions' END, 'w' || (g % 45), 'u' || (g % 8),
       CASE WHEN g % 2 = 0 THEN 'insert' ELSE 'update' END,
       (ARRAY['[1, 2]', '"a string"', '42', 'null', '{"title": "ok data"}']::jsonb[])[1 + g % 5],
       CASE WHEN g % 5 = 4 THEN '["stamps", "as", "array"]'::jsonb ELSE '{}' END, 'web'
  FROM generate_series(1, 1000) g;
SELECT kind, rows_applied, skipped_rows FROM mana_ai.refresh_snapshots();
SELECT pg_temp.mismatches();
SELECT count(*) > 40 AS many_valid_snapshots FROM mana_ai.mission_snapshots;

-- the refresh state is small: applied ids only inside the window
SELECT kind, horizon > now() - interval '1 hour' AS horizon_recent FROM mana_ai.snapshot_horizon ORDER BY kind;
SELECT kind, user_id, record_id FROM mana_ai.snapshot_tombstones ORDER BY 1, 2, 3;

-- the discovery answers for either table with NULL and for one table
-- (pgTAP checks that it refuses any other)
SELECT count(*) AS users_any FROM mana_ai.snapshot_users_since(NULL, '-infinity');
SELECT mana_ai.snapshot_users_since('agents', '-infinity') AS agent_users ORDER BY 1;

-- many users over several refresh batches (100 users / 5,000 rows each),
-- one user with more rows than a batch holds, with and without the
-- opt-in discovery index: snapshots always equal a full replay
CREATE INDEX sync_changes_mana_ai_refresh_idx
    ON public.sync_changes (table_name, created_at) WHERE app_id = 'ai';
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, :"stamps", client_id)
SELECT 'ai', CASE WHEN r % 3 = 2 THEN 'agents' ELSE 'aiMissions' END, 'r' || r, 'bulk' || lpad(u::text, 3, '0'),
       CASE WHEN v = 0 THEN 'insert' ELSE 'update' END,
       jsonb_build_object('title', 't' || u || '.' || r || '.' || v, 'state', 'active', 'v', v),
       CASE WHEN v % 2 = 1 THEN jsonb_build_object('title', '2026-04-0' || (1 + v) || 'T00:00:00Z') ELSE '{}' END, 'web'
  FROM generate_series(1, 350) u, generate_series(0, 2) r, generate_series(0, 2) v;
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'big' || (g % 50), 'bulk000', CASE WHEN g < 50 THEN 'insert' ELSE 'update' END,
       jsonb_build_object('n', g), 'web'
  FROM generate_series(0, 5199) g;
SELECT kind, rows_applied, new_snapshots, updated_snapshots FROM mana_ai.refresh_snapshots() ORDER BY kind;
SELECT pg_temp.mismatches();
-- later rows for 150 users (two batches), a delete, through the index
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'r0', 'bulk' || lpad(u::text, 3, '0'), 'update', jsonb_build_object('state', 'paused'), 'web'
  FROM generate_series(100, 249) u;
SELECT pg_temp.w('bulk007', 'agents', 'r2', 'delete', NULL);
SELECT kind, rows_applied, updated_snapshots, deleted_snapshots FROM mana_ai.refresh_snapshots() ORDER BY kind;
SELECT pg_temp.mismatches();
SELECT kind, rows_applied FROM mana_ai.refresh_snapshots() ORDER BY kind;
-- and without it
DROP INDEX public.sync_changes_mana_ai_refresh_idx;
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'agents', 'r2', 'bulk' || lpad(u::text, 3, '0'), 'update', jsonb_build_object('role', 'r' || u), 'web'
  FROM generate_series(1, 350, 2) u;
SELECT kind, rows_applied, updated_snapshots FROM mana_ai.refresh_snapshots() ORDER BY kind;
SELECT pg_temp.mismatches();
SELECT kind, rows_applied FROM mana_ai.refresh_snapshots() ORDER BY kind;

DROP EXTENSION mana_ai CASCADE;
DROP VIEW pg_temp.stamped;
DROP TABLE public.sync_changes;
