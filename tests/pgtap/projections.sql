-- projections.sql: pgTAP suite for the snapshot tables, the refresh state,
-- the views, privileges, and the property "incremental refresh in random
-- batches equals a full replay" over many generated histories.
-- Runs in a database with pgtap, mana_ai and tests/fixtures/sync_changes.sql.
BEGIN;
SELECT plan(104);
-- The log's rows with the stamps column of the format under test
-- (FORMAT, format.psql) named field_timestamps; inserts go through it.
\ir ../fixtures/format.psql
CREATE VIEW pg_temp.sync_rows AS
SELECT id, app_id, table_name, record_id, user_id, op, data, :"stamps" AS field_timestamps,
       client_id, created_at
  FROM public.sync_changes;

-- ---- tables: every column and index ----
SELECT has_table('mana_ai', 'mission_snapshots', 'mission_snapshots exists');
SELECT columns_are('mana_ai', 'mission_snapshots',
    ARRAY['user_id', 'mission_id', 'record', 'last_applied_at', 'updated_at'], 'mission_snapshots columns');
SELECT col_type_is('mana_ai', 'mission_snapshots', 'user_id', 'text', 'mission_snapshots.user_id text');
SELECT col_type_is('mana_ai', 'mission_snapshots', 'mission_id', 'text', 'mission_snapshots.mission_id text');
SELECT col_type_is('mana_ai', 'mission_snapshots', 'record', 'jsonb', 'mission_snapshots.record jsonb');
SELECT col_type_is('mana_ai', 'mission_snapshots', 'last_applied_at', 'timestamp with time zone', 'mission_snapshots.last_applied_at timestamptz');
SELECT col_type_is('mana_ai', 'mission_snapshots', 'updated_at', 'timestamp with time zone', 'mission_snapshots.updated_at timestamptz');
SELECT col_not_null('mana_ai', 'mission_snapshots', 'record', 'mission_snapshots.record not null');
SELECT col_not_null('mana_ai', 'mission_snapshots', 'last_applied_at', 'mission_snapshots.last_applied_at not null');
SELECT col_is_pk('mana_ai', 'mission_snapshots', ARRAY['user_id', 'mission_id'], 'mission_snapshots PK (user_id, mission_id)');
SELECT indexes_are('mana_ai', 'mission_snapshots', ARRAY['mission_snapshots_pkey'], 'mission_snapshots indexes');
SELECT index_is_unique('mana_ai', 'mission_snapshots', 'mission_snapshots_pkey', 'mission_snapshots_pkey unique');

SELECT has_table('mana_ai', 'agent_snapshots', 'agent_snapshots exists');
SELECT columns_are('mana_ai', 'agent_snapshots',
    ARRAY['user_id', 'agent_id', 'record', 'last_applied_at', 'updated_at'], 'agent_snapshots columns');
SELECT col_type_is('mana_ai', 'agent_snapshots', 'user_id', 'text', 'agent_snapshots.user_id text');
SELECT col_type_is('mana_ai', 'agent_snapshots', 'agent_id', 'text', 'agent_snapshots.agent_id text');
SELECT col_type_is('mana_ai', 'agent_snapshots', 'record', 'jsonb', 'agent_snapshots.record jsonb');
SELECT col_type_is('mana_ai', 'agent_snapshots', 'last_applied_at', 'timestamp with time zone', 'agent_snapshots.last_applied_at timestamptz');
SELECT col_type_is('mana_ai', 'agent_snapshots', 'updated_at', 'timestamp with time zone', 'agent_snapshots.updated_at timestamptz');
SELECT col_not_null('mana_ai', 'agent_snapshots', 'record', 'agent_snapshots.record not null');
SELECT col_not_null('mana_ai', 'agent_snapshots', 'last_applied_at', 'agent_snapshots.last_applied_at not null');
SELECT col_is_pk('mana_ai', 'agent_snapshots', ARRAY['user_id', 'agent_id'], 'agent_snapshots PK (user_id, agent_id)');
SELECT indexes_are('mana_ai', 'agent_snapshots', ARRAY['agent_snapshots_pkey'], 'agent_snapshots indexes');
SELECT index_is_unique('mana_ai', 'agent_snapshots', 'agent_snapshots_pkey', 'agent_snapshots_pkey unique');

SELECT columns_are('mana_ai', 'snapshot_horizon', ARRAY['kind', 'horizon'], 'snapshot_horizon columns');
SELECT col_type_is('mana_ai', 'snapshot_horizon', 'horizon', 'timestamp with time zone', 'horizon timestamptz');
SELECT results_eq('SELECT kind FROM mana_ai.snapshot_horizon ORDER BY kind', ARRAY['agents', 'missions'], 'one horizon per kind');
SELECT columns_are('mana_ai', 'snapshot_applied', ARRAY['kind', 'row_id', 'user_id', 'created_at'], 'snapshot_applied columns');
SELECT col_type_is('mana_ai', 'snapshot_applied', 'row_id', 'uuid', 'snapshot_applied.row_id uuid');
SELECT col_type_is('mana_ai', 'snapshot_applied', 'created_at', 'timestamp with time zone', 'snapshot_applied.created_at timestamptz');
SELECT indexes_are('mana_ai', 'snapshot_applied', ARRAY['snapshot_applied_pkey', 'snapshot_applied_kind_created_idx'], 'snapshot_applied indexes');
SELECT columns_are('mana_ai', 'snapshot_tombstones', ARRAY['kind', 'user_id', 'record_id', 'deleted_at'], 'snapshot_tombstones columns');
SELECT col_is_pk('mana_ai', 'snapshot_tombstones', ARRAY['kind', 'user_id', 'record_id'], 'snapshot_tombstones PK');

-- ---- views: typed columns ----
SELECT has_view('mana_ai', 'missions', 'missions view');
SELECT has_view('mana_ai', 'due_missions', 'due_missions view');
SELECT has_view('mana_ai', 'agents', 'agents view');
SELECT col_type_is('mana_ai', 'missions', 'next_run_at', 'timestamp with time zone', 'missions.next_run_at timestamptz');
SELECT col_type_is('mana_ai', 'missions', 'deleted_at', 'timestamp with time zone', 'missions.deleted_at timestamptz');
SELECT col_type_is('mana_ai', 'missions', 'created_at', 'timestamp with time zone', 'missions.created_at timestamptz');
SELECT col_type_is('mana_ai', 'missions', 'updated_at', 'timestamp with time zone', 'missions.updated_at timestamptz');
SELECT col_type_is('mana_ai', 'missions', 'has_grant', 'boolean', 'missions.has_grant boolean');
SELECT col_type_is('mana_ai', 'missions', 'deleted', 'boolean', 'missions.deleted boolean');
SELECT col_type_is('mana_ai', 'missions', 'due', 'boolean', 'missions.due boolean');
SELECT col_type_is('mana_ai', 'missions', 'iteration_count', 'integer', 'missions.iteration_count integer');
SELECT col_type_is('mana_ai', 'missions', 'cadence', 'jsonb', 'missions.cadence jsonb');
SELECT hasnt_column('mana_ai', 'missions', 'record', 'the missions view shows no raw record (issue 19)');
SELECT hasnt_column('mana_ai', 'missions', 'objective', 'nor the objective');
SELECT columns_are('mana_ai', 'due_missions', ARRAY(
    SELECT attname::text FROM pg_attribute WHERE attrelid = 'mana_ai.missions'::regclass AND attnum > 0 ORDER BY attnum),
    'due_missions has the missions columns');
SELECT col_type_is('mana_ai', 'agents', 'max_concurrent_missions', 'integer', 'agents.max_concurrent_missions integer');
SELECT col_type_is('mana_ai', 'agents', 'max_tokens_per_day', 'bigint', 'agents.max_tokens_per_day bigint');
SELECT col_type_is('mana_ai', 'agents', 'deleted', 'boolean', 'agents.deleted boolean');
SELECT col_type_is('mana_ai', 'agents', 'deleted_at', 'timestamp with time zone', 'agents.deleted_at timestamptz');
SELECT hasnt_column('mana_ai', 'agents', 'record', 'the agents view shows no raw record (issue 19)');
SELECT hasnt_column('mana_ai', 'agents', 'role', 'nor the agent''s role (its system prompt)');
SELECT hasnt_column('mana_ai', 'agents', 'policy', 'nor its policy');
SELECT col_type_is('mana_ai', 'agents', 'state', 'text', 'agents.state text');

-- ---- functions and privileges ----
SELECT has_function('mana_ai', 'lww_merge', ARRAY['text', 'text', 'jsonb', 'jsonb', 'timestamp with time zone'], 'lww_merge aggregate');
SELECT is_aggregate('mana_ai', 'lww_merge', ARRAY['text', 'text', 'jsonb', 'jsonb', 'timestamp with time zone'], 'lww_merge is an aggregate');
SELECT function_returns('mana_ai', 'replay_record', ARRAY['text', 'text', 'text', 'text'], 'jsonb', 'replay_record returns jsonb');
SELECT function_returns('mana_ai', 'refresh_snapshots', ARRAY[]::text[], 'setof record', 'refresh_snapshots returns a table');
SELECT is((SELECT array_agg(a::text ORDER BY o) FROM pg_proc p, unnest(p.proargnames, p.proargmodes::text[]) WITH ORDINALITY u(a, m, o)
             WHERE p.oid = 'mana_ai.refresh_snapshots()'::regprocedure AND m = 't'),
          ARRAY['kind', 'rows_applied', 'new_snapshots', 'updated_snapshots', 'deleted_snapshots', 'skipped_rows'],
          'refresh_snapshots columns (contract)');
SELECT is_definer('mana_ai', 'snapshot_users_since', ARRAY['text', 'timestamp with time zone'], 'discovery is SECURITY DEFINER');
SELECT function_returns('mana_ai', 'snapshot_users_since', ARRAY['text', 'timestamp with time zone'], 'setof text', 'discovery returns ids only');
SELECT is_definer('mana_ai', 'snapshot_rows_of', ARRAY['text[]', 'timestamp with time zone', 'timestamp with time zone'], 'the batched read is SECURITY DEFINER');
SELECT is_definer('mana_ai', 'refresh_horizon', ARRAY[]::text[], 'refresh_horizon is SECURITY DEFINER');
SELECT isnt_definer('mana_ai', 'refresh_snapshots', ARRAY[]::text[], 'refresh runs as its caller');
SELECT isnt_definer('mana_ai', 'replay_record', ARRAY['text', 'text', 'text', 'text'], 'replay runs as its caller');
SELECT ok((SELECT proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] FROM pg_proc
            WHERE oid = 'mana_ai.snapshot_users_since(text, timestamptz)'::regprocedure), 'discovery pins search_path');
SELECT ok((SELECT proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] FROM pg_proc
            WHERE oid = 'mana_ai.refresh_horizon()'::regprocedure), 'refresh_horizon pins search_path');
SELECT ok((SELECT proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] FROM pg_proc
            WHERE oid = 'mana_ai.snapshot_rows_of(text[], timestamptz, timestamptz)'::regprocedure), 'the batched read pins search_path');
SELECT ok(NOT has_function_privilege('public', 'mana_ai.snapshot_users_since(text, timestamptz)', 'EXECUTE'), 'PUBLIC cannot discover users');
SELECT ok(NOT has_function_privilege('public', 'mana_ai.snapshot_rows_of(text[], timestamptz, timestamptz)', 'EXECUTE'), 'PUBLIC cannot read rows across users');
SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'mana_ai.snapshot_rows_of(text[], timestamptz, timestamptz)'::regprocedure), 's', 'the batched read writes nothing (STABLE)');
SELECT ok(NOT has_function_privilege('public', 'mana_ai.refresh_snapshots()', 'EXECUTE'), 'PUBLIC cannot refresh');
SELECT ok(NOT has_function_privilege('public', 'mana_ai.replay_record(text, text, text, text)', 'EXECUTE'), 'PUBLIC cannot replay');
SELECT ok(NOT has_table_privilege('public', 'mana_ai.mission_snapshots', 'SELECT'), 'PUBLIC cannot read mission snapshots');
SELECT ok(NOT has_table_privilege('public', 'mana_ai.agent_snapshots', 'SELECT'), 'PUBLIC cannot read agent snapshots');
SELECT ok(NOT has_table_privilege('public', 'mana_ai.missions', 'SELECT'), 'PUBLIC cannot read the missions view');
SELECT throws_ok($$SELECT mana_ai.snapshot_users_since('notes', '-infinity')$$, '22023', NULL, 'discovery only answers for aiMissions and agents');
SELECT throws_ok($$SELECT mana_ai.replay_record('', 'ai', 'aiMissions', 'x')$$, '22023', 'user id must not be empty', 'replay refuses an empty user');

-- ---- behaviour under a user's scope and as an ordinary role ----
DELETE FROM public.sync_changes;
INSERT INTO pg_temp.sync_rows (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id) VALUES
 ('ai', 'aiMissions', 'p1', 'tap_a', 'insert', '{"title": "A1", "state": "active", "nextRunAt": "2020-01-01T00:00:00Z", "grant": {"wrappedKey": "k"}}', '{}', 'web'),
 ('ai', 'aiMissions', 'p2', 'tap_a', 'insert', '{"title": "A2", "state": "active", "nextRunAt": "2020-01-01T00:00:00Z", "deletedAt": "2026-01-01T00:00:00Z"}', '{}', 'web'),
 ('ai', 'aiMissions', 'p3', 'tap_a', 'insert', '{"title": "A3", "state": "paused", "nextRunAt": "2020-01-01T00:00:00Z"}', '{}', 'web'),
 ('ai', 'aiMissions', 'p4', 'tap_a', 'insert', '{"title": "A4", "state": "active", "nextRunAt": "not a date"}', '{}', 'web'),
 ('ai', 'agents', 'g1', 'tap_a', 'insert', '{"name": "G", "deletedAt": "2026-01-01T00:00:00Z", "maxConcurrentMissions": 1e30}', '{}', 'web'),
 ('ai', 'aiMissions', 'p1', 'tap_b', 'insert', '{"title": "B1"}', '{}', 'web');
SELECT results_eq($$SELECT kind, rows_applied, new_snapshots FROM mana_ai.refresh_snapshots()$$,
                  $$VALUES ('missions'::text, 5::bigint, 5), ('agents', 1, 1)$$, 'refresh folds both users');
SELECT results_eq($$SELECT sum(rows_applied)::int FROM mana_ai.refresh_snapshots()$$, ARRAY[0], 'second refresh applies 0 rows');
SELECT results_eq($$SELECT mission_id FROM mana_ai.due_missions WHERE user_id = 'tap_a'$$, ARRAY['p1'],
                  'due_missions: active, scheduled, past, not deleted');
SELECT is((SELECT has_grant FROM mana_ai.missions WHERE user_id = 'tap_a' AND mission_id = 'p1'), true, 'has_grant true with a grant');
SELECT is((SELECT has_grant FROM mana_ai.missions WHERE user_id = 'tap_a' AND mission_id = 'p2'), false, 'has_grant false without');
SELECT is((SELECT deleted FROM mana_ai.missions WHERE user_id = 'tap_a' AND mission_id = 'p2'), true, 'deletedAt: deleted = true, row kept');
SELECT is((SELECT deleted_at FROM mana_ai.missions WHERE user_id = 'tap_a' AND mission_id = 'p2'), '2026-01-01 00:00:00+00'::timestamptz, 'deleted_at typed');
SELECT is((SELECT next_run_at FROM mana_ai.missions WHERE user_id = 'tap_a' AND mission_id = 'p4'), NULL, 'an unparseable nextRunAt is NULL, not an error');
SELECT is((SELECT due FROM mana_ai.missions WHERE user_id = 'tap_a' AND mission_id = 'p3'), false, 'paused is not due');
SELECT is((SELECT deleted FROM mana_ai.agents WHERE user_id = 'tap_a' AND agent_id = 'g1'), true, 'soft-deleted agent stays visible, flagged');
SELECT is((SELECT max_concurrent_missions FROM mana_ai.agents WHERE user_id = 'tap_a' AND agent_id = 'g1'), 1, 'an absurd maxConcurrentMissions falls back to 1');
SELECT is((SELECT state FROM mana_ai.agents WHERE user_id = 'tap_a' AND agent_id = 'g1'), 'active', 'agent state defaults to active');

-- replay under RLS as an ordinary role
CREATE ROLE tap_worker NOSUPERUSER NOBYPASSRLS;
GRANT USAGE ON SCHEMA mana_ai TO tap_worker;
GRANT SELECT ON public.sync_changes TO tap_worker;
GRANT EXECUTE ON FUNCTION mana_ai.replay_record(text, text, text, text) TO tap_worker;
SET LOCAL ROLE tap_worker;
SELECT is((SELECT count(*)::int FROM public.sync_changes), 0, 'no scope: the ordinary role sees no rows');
SELECT is(mana_ai.replay_record('tap_a', 'ai', 'aiMissions', 'p1') ->> 'title', 'A1', 'replay reads under the user''s scope');
SELECT is(mana_ai.replay_record('tap_b', 'ai', 'aiMissions', 'p1') ->> 'title', 'B1', 'same record id, other user');
SELECT is(current_setting('app.current_user_id', true), '', 'replay leaves no scope behind');
SELECT set_config('app.current_user_id', 'tap_b', true);
SELECT is(mana_ai.replay_record('tap_a', 'ai', 'aiMissions', 'p1') ->> 'title', 'A1', 'replay sets its own scope');
SELECT is(current_setting('app.current_user_id'), 'tap_b', 'the caller''s scope is restored');
RESET ROLE;

-- ---- property: incremental refresh in random batches = full replay ----
CREATE FUNCTION pg_temp.mismatches() RETURNS bigint LANGUAGE sql AS $$
  WITH r AS (
    SELECT user_id, table_name, record_id,
           mana_ai.lww_merge(record_id, op, data, field_timestamps, created_at ORDER BY created_at, id) AS rec
      FROM pg_temp.sync_rows WHERE app_id = 'ai' GROUP BY 1, 2, 3)
  SELECT count(*) FROM r
    FULL JOIN (SELECT user_id, 'aiMissions' AS table_name, mission_id AS record_id, record FROM mana_ai.mission_snapshots
               UNION ALL
               SELECT user_id, 'agents', agent_id, record FROM mana_ai.agent_snapshots) s
      USING (user_id, table_name, record_id)
   WHERE r.rec IS DISTINCT FROM s.record $$;

-- Random histories: 2 users, 3 record ids, both kinds; inserts, updates,
-- deletes, stamps from a small pool of instants spelled several ways (so
-- ties happen), unparseable stamps, malformed rows; created_at in random
-- order (late commits, all inside the window); a refresh after a random
-- subset of rows.  Returns the number of histories whose snapshots differ
-- from a full replay, or whose next refresh applied rows again.
CREATE FUNCTION pg_temp.property(n_histories int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    pool text[] := ARRAY['2026-04-15T12:00:00Z', '2026-04-15T12:00:00.000Z', '2026-04-15T14:00:00+02:00',
                         '2026-04-15T12:00:01Z', '2026-04-15T11:00:01-01:00', '2026-04-15T12:00:02.5Z',
                         '2026-04-15T12:00:01.000000Z', 'not-a-stamp'];
    keys text[] := ARRAY['title', 'state', 'n'];
    bad int := 0;
    nrows int;
    d jsonb;
    ft jsonb;
    r float8;
    k text;
BEGIN
    PERFORM setseed(0.4242);
    FOR h IN 1..n_histories LOOP
        DELETE FROM public.sync_changes;
        DELETE FROM mana_ai.mission_snapshots;
        DELETE FROM mana_ai.agent_snapshots;
        DELETE FROM mana_ai.snapshot_applied;
        DELETE FROM mana_ai.snapshot_tombstones;
        UPDATE mana_ai.snapshot_horizon SET horizon = '-infinity';
        nrows := 1 + floor(random() * 16)::int;
        FOR i IN 1..nrows LOOP
            d := '{}';
            ft := '{}';
            FOREACH k IN ARRAY keys LOOP
                IF random() < 0.6 THEN
                    d := d || jsonb_build_object(k, k || floor(random() * 4)::int);
                    IF random() < 0.7 THEN
                        ft := ft || jsonb_build_object(k, pool[1 + floor(random() * array_length(pool, 1))::int]);
                    END IF;
                END IF;
            END LOOP;
            r := random();
            IF r < 0.04 THEN d := '[1, 2]'; ELSIF r < 0.07 THEN ft := '"stamps"'; END IF;
            r := random();
            INSERT INTO pg_temp.sync_rows (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
            VALUES ('ai', CASE WHEN random() < 0.75 THEN 'aiMissions' ELSE 'agents' END,
                    'r' || floor(random() * 3)::int, 'u' || floor(random() * 2)::int,
                    CASE WHEN r < 0.06 THEN 'delete' WHEN r < 0.4 THEN 'insert' ELSE 'update' END,
                    d, ft, 'prop', now() + floor(random() * 10000000)::int * interval '1 microsecond');
            IF random() < 0.35 THEN
                PERFORM mana_ai.refresh_snapshots();
            END IF;
        END LOOP;
        PERFORM mana_ai.refresh_snapshots();
        IF pg_temp.mismatches() > 0
           OR (SELECT sum(rows_applied) FROM mana_ai.refresh_snapshots()) <> 0 THEN
            bad := bad + 1;
            RAISE NOTICE 'history % differs from a full replay', h;
        END IF;
    END LOOP;
    RETURN bad;
END
$$;
SELECT is(pg_temp.property(250), 0, 'incremental refresh equals a full replay on 250 random histories');
SELECT is(pg_temp.mismatches(), 0::bigint, 'last history: snapshots equal a full replay');
SELECT cmp_ok((SELECT count(*) FROM mana_ai.snapshot_applied), '>', 0::bigint, 'rows inside the window are remembered by id');

-- ---- in-order batches move the horizon and prune the window ----
DELETE FROM public.sync_changes;
DELETE FROM mana_ai.snapshot_applied;
UPDATE mana_ai.snapshot_horizon SET horizon = now() - interval '1 hour';
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
VALUES ('ai', 'aiMissions', 'old', 'tap_a', 'insert', '{"title": "old"}', 'web', now() - interval '1 minute');
SELECT results_eq($$SELECT rows_applied FROM mana_ai.refresh_snapshots() WHERE kind = 'missions'$$, ARRAY[1::bigint], 'a row before the horizon of now is applied');
SELECT is((SELECT count(*)::int FROM mana_ai.snapshot_applied), 0, 'a row below the new horizon is not remembered');
SELECT is((SELECT horizon FROM mana_ai.snapshot_horizon WHERE kind = 'missions') <= now(), true, 'the horizon never passes this transaction''s start');

SELECT * FROM finish();
ROLLBACK;
