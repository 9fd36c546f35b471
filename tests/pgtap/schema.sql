-- schema: mana_ai's own tables, their columns and indexes, the audit
-- trail's row-level security and append-only guard, the tool catalog,
-- and parameters no ordinary session can set.
LOAD 'mana_ai';
BEGIN;
SELECT plan(61);

SELECT has_schema('mana_ai');
SELECT has_table('mana_ai', 'decrypt_audit', 'decrypt_audit exists');
SELECT has_table('mana_ai', 'tick_runs', 'tick_runs exists');
SELECT has_table('mana_ai', 'tools', 'tools exists');
SELECT has_table('mana_ai', 'mission_snapshots', 'mission_snapshots exists');
SELECT has_table('mana_ai', 'agent_snapshots', 'agent_snapshots exists');

-- decrypt_audit (SPEC 5.4, contract columns)
SELECT columns_are('mana_ai', 'decrypt_audit',
    ARRAY['id', 'user_id', 'mission_id', 'iteration_id', 'table_name',
          'record_id', 'status', 'reason', 'ts']);
SELECT col_type_is('mana_ai', 'decrypt_audit', 'id', 'bigint', 'decrypt_audit.id is bigint');
SELECT col_default_is('mana_ai', 'decrypt_audit', 'id',
    $$nextval('mana_ai.decrypt_audit_id_seq'::regclass)$$, 'decrypt_audit.id is a bigserial');
SELECT col_is_pk('mana_ai', 'decrypt_audit', 'id', 'decrypt_audit.id is the primary key');
SELECT col_not_null('mana_ai', 'decrypt_audit', 'user_id', 'user_id not null');
SELECT col_not_null('mana_ai', 'decrypt_audit', 'mission_id', 'mission_id not null');
SELECT col_is_null('mana_ai', 'decrypt_audit', 'iteration_id', 'iteration_id nullable');
SELECT col_not_null('mana_ai', 'decrypt_audit', 'table_name', 'table_name not null');
SELECT col_not_null('mana_ai', 'decrypt_audit', 'record_id', 'record_id not null');
SELECT col_not_null('mana_ai', 'decrypt_audit', 'status', 'status not null');
SELECT col_is_null('mana_ai', 'decrypt_audit', 'reason', 'reason nullable');
SELECT col_type_is('mana_ai', 'decrypt_audit', 'ts', 'timestamp with time zone', 'ts is timestamptz');
SELECT col_default_is('mana_ai', 'decrypt_audit', 'ts', 'now()', 'ts defaults to now()');
SELECT indexes_are('mana_ai', 'decrypt_audit',
    ARRAY['decrypt_audit_pkey', 'decrypt_audit_user_mission_ts_idx', 'decrypt_audit_ts_idx']);
SELECT index_is_type('mana_ai', 'decrypt_audit', 'decrypt_audit_user_mission_ts_idx', 'btree');
SELECT throws_ok($$INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
                   VALUES ('u', 'm', 't', 'r', 'maybe')$$,
    '23514', NULL, 'status outside ok|failed|scope-violation is refused');

-- tick_runs (SPEC 4.11)
SELECT columns_are('mana_ai', 'tick_runs',
    ARRAY['id', 'source', 'status', 'started_at', 'finished_at', 'backend_pid',
          'due_missions', 'plans_produced', 'plans_written_back', 'parse_failures',
          'errors', 'result']);
SELECT col_is_pk('mana_ai', 'tick_runs', 'id', 'tick_runs.id is the primary key');
SELECT col_type_is('mana_ai', 'tick_runs', 'errors', 'jsonb', 'tick_runs.errors is jsonb');
SELECT col_type_is('mana_ai', 'tick_runs', 'started_at', 'timestamp with time zone', 'started_at is timestamptz');
SELECT indexes_are('mana_ai', 'tick_runs',
    ARRAY['tick_runs_pkey', 'tick_runs_started_at_idx', 'tick_runs_running_idx']);

-- tools (SPEC 7.1)
SELECT columns_are('mana_ai', 'tools', ARRAY['name', 'module', 'description', 'parameters', 'shipped']);
SELECT col_is_pk('mana_ai', 'tools', 'name', 'tools.name is the primary key');
SELECT col_type_is('mana_ai', 'tools', 'parameters', 'jsonb', 'tools.parameters is jsonb');
SELECT indexes_are('mana_ai', 'tools', ARRAY['tools_pkey']);
SELECT is((SELECT count(*)::int FROM mana_ai.tools WHERE shipped), 62,
    'tools holds the 62 shipped tools of the product catalog (tests/pgtap/planner.sql checks each)');
SELECT is((SELECT count(*)::int FROM mana_ai.tools t, jsonb_array_elements(t.parameters) p
            WHERE NOT (p ? 'name' AND p ? 'type' AND p ? 'required' AND p ? 'description')),
    0, 'every shipped parameter has name, type, required and description');
SELECT ok((SELECT bool_and(length(description) > 0) FROM mana_ai.tools),
    'every shipped tool has a description');

-- pg_dump keeps the audit trail, a DBA's own tools and the slot state, not the snapshots
SELECT set_eq($$SELECT c.relname::text FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
                 JOIN pg_class c ON c.oid = cfg.oid WHERE e.extname = 'mana_ai'$$,
    ARRAY['decrypt_audit', 'decrypt_audit_id_seq', 'tools', 'mission_slots', 'mission_attempts', 'token_usage'],
    'pg_extension_config_dump covers decrypt_audit (and its sequence), tools, the slot state and the budget and backoff state only');

-- Row-level security on decrypt_audit: two users, each sees only their own
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class
            WHERE oid = 'mana_ai.decrypt_audit'::regclass),
    'decrypt_audit has row-level security enabled and forced');
CREATE ROLE mana_ai_tap_reader NOLOGIN;
GRANT USAGE ON SCHEMA mana_ai TO mana_ai_tap_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON mana_ai.decrypt_audit TO mana_ai_tap_reader;
GRANT USAGE ON SEQUENCE mana_ai.decrypt_audit_id_seq TO mana_ai_tap_reader;

SET LOCAL ROLE mana_ai_tap_reader;
SELECT set_config('app.current_user_id', 'alice', true);
SELECT lives_ok($$INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
                  VALUES ('alice', 'm-a', 'notes', 'n1', 'ok'), ('alice', 'm-a', 'tasks', 't1', 'failed')$$,
    'alice can append her own audit rows');
SELECT throws_ok($$INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
                   VALUES ('bob', 'm-b', 'notes', 'n9', 'ok')$$,
    '42501', NULL, 'alice cannot append rows for bob');
SELECT set_config('app.current_user_id', 'bob', true);
SELECT lives_ok($$INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
                  VALUES ('bob', 'm-b', 'notes', 'n9', 'scope-violation')$$,
    'bob can append his own audit rows');
SELECT results_eq($$SELECT user_id, record_id FROM mana_ai.decrypt_audit ORDER BY id$$,
    $$VALUES ('bob'::text, 'n9'::text)$$, 'bob sees only his row');
SELECT set_config('app.current_user_id', 'alice', true);
SELECT results_eq($$SELECT user_id, record_id FROM mana_ai.decrypt_audit ORDER BY id$$,
    $$VALUES ('alice'::text, 'n1'::text), ('alice', 't1')$$, 'alice sees only her two rows');
SELECT set_config('app.current_user_id', '', true);
SELECT is_empty($$SELECT * FROM mana_ai.decrypt_audit$$, 'an empty user id sees no rows');
RESET ROLE;
SET LOCAL ROLE mana_ai_tap_reader;
SELECT is((SELECT count(*)::int FROM mana_ai.decrypt_audit
            WHERE current_setting('app.current_user_id', true) IS NULL
               OR current_setting('app.current_user_id', true) = ''), 0,
    'with app.current_user_id unset no rows are visible');

-- Append-only for everyone, owner and superuser included
SELECT set_config('app.current_user_id', 'alice', true);
SELECT throws_ok($$UPDATE mana_ai.decrypt_audit SET status = 'ok' WHERE user_id = 'alice'$$,
    '42501', 'mana_ai.decrypt_audit is append-only', 'UPDATE is refused for a granted role');
SELECT throws_ok($$DELETE FROM mana_ai.decrypt_audit WHERE user_id = 'alice'$$,
    '42501', 'mana_ai.decrypt_audit is append-only', 'DELETE is refused for a granted role');
RESET ROLE;
SELECT throws_ok($$UPDATE mana_ai.decrypt_audit SET reason = 'x'$$,
    '42501', 'mana_ai.decrypt_audit is append-only', 'UPDATE is refused for the superuser');
SELECT throws_ok($$DELETE FROM mana_ai.decrypt_audit$$,
    '42501', 'mana_ai.decrypt_audit is append-only', 'DELETE is refused for the superuser');
SELECT throws_ok($$TRUNCATE mana_ai.decrypt_audit$$,
    '42501', 'mana_ai.decrypt_audit is append-only', 'TRUNCATE is refused');

-- PUBLIC reads no user data
SELECT ok(NOT has_table_privilege('public', 'mana_ai.decrypt_audit', 'SELECT'), 'PUBLIC cannot read decrypt_audit');
SELECT ok(NOT has_table_privilege('public', 'mana_ai.mission_snapshots', 'SELECT'), 'PUBLIC cannot read mission_snapshots');
SELECT ok(NOT has_table_privilege('public', 'mana_ai.agent_snapshots', 'SELECT'), 'PUBLIC cannot read agent_snapshots');
SELECT ok(NOT has_table_privilege('public', 'mana_ai.tick_runs', 'SELECT'), 'PUBLIC cannot read tick_runs');

-- No ordinary session can set any mana_ai parameter
SELECT is((SELECT count(*)::int FROM pg_settings WHERE name LIKE 'mana_ai.%'), 30,
    'all 30 mana_ai parameters are defined (model_breaker_failures, max_iterations_kept, injection_policy, refresh_lock_timeout, llm_requests_per_minute, llm_tokens_per_minute and planner_core_modules added in 0.3.0)');
CREATE ROLE mana_ai_tap_user NOLOGIN;
SET LOCAL ROLE mana_ai_tap_user;
SELECT throws_ok($$SET mana_ai.llm_url = 'http://evil.example'$$, '55P02', NULL, 'ordinary role cannot SET mana_ai.llm_url');
SELECT throws_ok($$SET mana_ai.private_key_file = '/etc/passwd'$$, '55P02', NULL, 'ordinary role cannot SET mana_ai.private_key_file');
SELECT throws_ok($$SET mana_ai.llm_key_file = '/etc/shadow'$$, '55P02', NULL, 'ordinary role cannot SET mana_ai.llm_key_file');
SELECT throws_ok($$SET mana_ai.enabled = off$$, '55P02', NULL, 'ordinary role cannot SET mana_ai.enabled');
SELECT throws_ok($$SELECT set_config('mana_ai.timezone', 'Europe/Berlin', true)$$, '55P02', NULL,
    'ordinary role cannot set_config mana_ai.timezone');
SELECT throws_ok($$SET mana_ai.made_up = 1$$, '42602', NULL, 'the mana_ai prefix is reserved');
SELECT is((SELECT count(*)::int FROM pg_settings WHERE name LIKE 'mana_ai.%'
             AND context NOT IN ('postmaster', 'sighup')), 0,
    'every mana_ai parameter is postmaster or sighup');
SELECT throws_ok($$SHOW mana_ai.private_key_file$$, '42501', NULL,
    'an ordinary role cannot even read the key file path');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
