-- crypto: the grant, derivation, decrypt and audit surface that needs no
-- key file (the keyed outcomes and the key file checks are in
-- tests/integration/crypto_keys.sh).  Vectors come from Node's WebCrypto
-- (tests/crypto/gen-vectors.mjs).
\set QUIET 1
\i tests/fixtures/crypto/vectors.sql
BEGIN;
SELECT plan(47);

CREATE TEMP VIEW v AS SELECT name, value FROM crypto_vectors;
CREATE FUNCTION pg_temp.vec(n text) RETURNS text LANGUAGE sql AS
    $$ SELECT value FROM crypto_vectors WHERE name = n $$;

-- The SQL surface and who may call it (SPEC 9)
SELECT has_function('mana_ai', 'grant_status', ARRAY['jsonb']);
SELECT has_function('mana_ai', 'derive_mission_key', ARRAY['bytea', 'jsonb']);
SELECT has_function('mana_ai', 'decrypt_input', ARRAY['text', 'text', 'text', 'text', 'text']);
SELECT has_function('mana_ai', 'audit_decrypt', ARRAY['text', 'text', 'text', 'text', 'text', 'text', 'text']);
SELECT has_function('mana_ai', 'read_decrypt_audit', ARRAY['text', 'integer']);
SELECT has_function('mana_ai', 'resolve_inputs', ARRAY['text', 'text']);
SELECT function_returns('mana_ai', 'read_decrypt_audit', ARRAY['text', 'integer'], 'setof mana_ai.decrypt_audit');
SELECT ok(NOT has_function_privilege('public', p.oid, 'EXECUTE'), 'PUBLIC cannot execute ' || p.proname)
  FROM pg_proc p
 WHERE p.pronamespace = 'mana_ai'::regnamespace
   AND p.proname IN ('grant_status', 'derive_mission_key', 'decrypt_input', 'audit_decrypt', 'resolve_inputs')
 ORDER BY p.proname;
SELECT ok(NOT has_function_privilege('public', 'mana_ai.read_decrypt_audit(text, int)', 'EXECUTE'),
          'PUBLIC cannot execute read_decrypt_audit (it trusts app.current_user_id, which anyone can set)');

-- SPEC 5.2: the golden vector, order independence, rejections
SELECT is(encode(mana_ai.derive_mission_key(decode('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20', 'hex'),
          '{"version":"v1","missionId":"mission-abc","tables":["notes","tasks"],"recordIds":["notes:n1","tasks:t1"]}'), 'hex'),
          '7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628', 'golden HKDF vector of SPEC 5.2');
SELECT is(encode(mana_ai.derive_mission_key(decode('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20', 'hex'),
          '{"recordIds":["tasks:t1","notes:n1"],"tables":["tasks","notes"],"missionId":"mission-abc","version":"v1"}'), 'hex'),
          '7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628', 'tables and recordIds in any order');
SELECT isnt(mana_ai.derive_mission_key(decode('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20', 'hex'),
          '{"version":"v1","missionId":"mission-abc","tables":["notes","tasks"],"recordIds":["notes:n1"]}'),
          mana_ai.derive_mission_key(decode('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20', 'hex'),
          '{"version":"v1","missionId":"mission-abc","tables":["notes","tasks"],"recordIds":["notes:n1","tasks:t1"]}'),
          'a narrower scope is another key');
SELECT throws_ok($$SELECT mana_ai.derive_mission_key('\x0102'::bytea,
          '{"version":"v1","missionId":"m","tables":[],"recordIds":[]}')$$,
          '22023', 'cannot derive a mission key', 'a 2-byte master key is refused');
SELECT throws_ok($$SELECT mana_ai.derive_mission_key(decode(repeat('ab', 33), 'hex'),
          '{"version":"v1","missionId":"m","tables":[],"recordIds":[]}')$$,
          '22023', 'cannot derive a mission key', 'a 33-byte master key is refused');
SELECT throws_ok($$SELECT mana_ai.derive_mission_key(decode(repeat('ab', 32), 'hex'),
          '{"version":"v2","missionId":"m","tables":[],"recordIds":[]}')$$,
          '22023', 'cannot derive a mission key', 'version v2 is refused');
SELECT throws_ok($$SELECT mana_ai.derive_mission_key(decode(repeat('ab', 32), 'hex'),
          '{"version":"v1","tables":[],"recordIds":[]}')$$,
          '22023', 'cannot derive a mission key', 'a derivation without missionId is refused');

-- SPEC 5.1 without a key file: every grant is not-configured
SELECT is(current_setting('mana_ai.private_key_file'), '', 'this cluster has no key file');
SELECT is(mana_ai.grant_status(pg_temp.vec('grant_ok')::jsonb), 'not-configured', 'valid grant, no key: not-configured');
SELECT is(mana_ai.grant_status('{}'), 'not-configured', 'empty grant, no key: not-configured');

-- decrypt_input without a usable key: refused, one audit row each
INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record) VALUES
    ('u1', 'mission-abc', jsonb_build_object('title', 'M', 'grant', pg_temp.vec('grant_ok')::jsonb,
        'inputs', '[{"module":"goals","table":"companionGoals","id":"g1"},
                    {"module":"goals","table":"companionGoals","id":"g2"},
                    {"module":"notes","table":"notes","id":"n1"},
                    {"module":"weather","table":"x","id":"w"}]'::jsonb)),
    ('u1', 'no-grant', '{"title":"N","inputs":[]}');
SELECT is(mana_ai.decrypt_input('u1', 'mission-abc', 'journal', 'journal', 'j1'), NULL,
          'a record outside the allowlist is refused');
SELECT results_eq($$SELECT status, reason FROM mana_ai.decrypt_audit WHERE record_id = 'j1'$$,
          $$VALUES ('scope-violation'::text, 'record-not-in-grant-allowlist'::text)$$,
          'scope violation audited once, before any key is touched');
SELECT is(mana_ai.decrypt_input('u1', 'mission-abc', 'notes', 'notes', 'n1'), NULL, 'no key: refused');
SELECT results_eq($$SELECT status, reason FROM mana_ai.decrypt_audit WHERE record_id = 'n1'$$,
          $$VALUES ('failed'::text, 'grant-not-configured'::text)$$, 'no key: failed grant-not-configured');
SELECT is(mana_ai.decrypt_input('u1', 'no-grant', 'notes', 'notes', 'n9'), NULL, 'mission without grant: refused');
SELECT results_eq($$SELECT status, reason FROM mana_ai.decrypt_audit WHERE record_id = 'n9'$$,
          $$VALUES ('failed'::text, 'no-grant'::text)$$, 'mission without grant: failed no-grant');
SELECT throws_ok($$SELECT mana_ai.decrypt_input('u1', 'mission-abc', 'goals', 'companionGoals', 'g1')$$,
          '22023', NULL, 'decrypt_input refuses a plaintext module');
SELECT throws_ok($$SELECT mana_ai.decrypt_input('', 'mission-abc', 'notes', 'notes', 'n1')$$,
          '22023', NULL, 'decrypt_input refuses an empty user id');

-- SPEC 6: goals without a grant; encrypted inputs dropped without audit
SELECT set_config('app.current_user_id', 'u1', true) \g /dev/null
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
    ('companion', 'companionGoals', 'g1', 'u1', 'insert', '{"title":"Laufen","currentValue":3,"target":{"value":10,"period":"week"}}', 't'),
    ('companion', 'companionGoals', 'g2', 'u1', 'insert', '{"period":"month"}', 't');
SELECT is(mana_ai.resolve_inputs('u1', 'mission-abc'),
          '[{"module":"goals","table":"companionGoals","title":"Laufen","content":"Fortschritt: 3 / 10 (week)"},
            {"module":"goals","table":"companionGoals","title":"Goal","content":"Fortschritt: 0 / ? (month)"}]'::jsonb,
          'goals resolve with the exact content line; notes without a key and unknown modules are dropped');
SELECT is((SELECT count(*) FROM mana_ai.decrypt_audit WHERE record_id = 'n1'), 1::bigint,
          'dropping an encrypted input writes no audit row');
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
    ('companion', 'companionGoals', 'g2', 'u1', 'update', '{"deletedAt":"2026-01-01T00:00:00Z"}', 't'),
    ('companion', 'companionGoals', 'g1', 'u1', 'delete', NULL, 't');
SELECT is(mana_ai.resolve_inputs('u1', 'mission-abc'), '[]'::jsonb, 'deletedAt and tombstoned goals are dropped');
SELECT is(mana_ai.resolve_inputs('u1', 'nope'), NULL, 'unknown mission: NULL');

-- audit_decrypt and read_decrypt_audit: RLS, newest first, the 1000 cap
SELECT set_config('app.current_user_id', '', true) \g /dev/null
SELECT throws_ok($$SELECT * FROM mana_ai.read_decrypt_audit()$$, '42501',
          'app.current_user_id is not set', 'reading the audit without a user is an error');
SELECT ok(mana_ai.audit_decrypt('u2', 'm2', 'it-1', 'notes', 'x', 'ok') > 0, 'audit_decrypt returns the new id');
SELECT throws_ok($$SELECT mana_ai.audit_decrypt('u2', 'm2', NULL, 'notes', 'x', 'maybe')$$, '22023', NULL,
          'audit_decrypt refuses an unknown status');
SELECT set_config('app.current_user_id', 'u1', true) \g /dev/null
SELECT is((SELECT array_agg(DISTINCT user_id) FROM mana_ai.read_decrypt_audit()), ARRAY['u1'], 'u1 reads only u1 rows');
SELECT is((SELECT array_agg(record_id) FROM mana_ai.read_decrypt_audit('mission-abc')), ARRAY['n1', 'j1'],
          'newest first, filtered by mission');
SELECT set_config('app.current_user_id', 'u2', true) \g /dev/null
SELECT results_eq($$SELECT user_id, mission_id, iteration_id, status FROM mana_ai.read_decrypt_audit()$$,
          $$VALUES ('u2'::text, 'm2'::text, 'it-1'::text, 'ok'::text)$$, 'u2 reads only its own row');
SELECT mana_ai.audit_decrypt('u2', 'm2', NULL, 'notes', 'bulk-' || i, 'failed', 'ciphertext-malformed')
  FROM generate_series(1, 1005) i \g /dev/null
SELECT is((SELECT count(*) FROM mana_ai.read_decrypt_audit(NULL, 5000)), 1000::bigint, 'at most 1000 rows');
SELECT is((SELECT count(*) FROM mana_ai.read_decrypt_audit()), 200::bigint, '200 rows by default');

-- Roles without rights
CREATE ROLE crypto_nobody NOLOGIN;
CREATE ROLE crypto_reader NOLOGIN;
GRANT SELECT ON mana_ai.decrypt_audit TO crypto_reader;
SET LOCAL ROLE crypto_nobody;
SELECT throws_ok($$SELECT mana_ai.decrypt_input('u1', 'mission-abc', 'notes', 'notes', 'n1')$$,
          '42501', NULL, 'a role without rights cannot call decrypt_input');
SELECT throws_ok($$SELECT mana_ai.grant_status('{}')$$, '42501', NULL, '... nor grant_status');
SELECT throws_ok($$SELECT count(*) FROM mana_ai.read_decrypt_audit('m2', 1)$$,
          '42501', NULL, '... nor read_decrypt_audit (granted to the application''s role only)');
RESET ROLE;
SET LOCAL ROLE crypto_reader;
SELECT set_config('app.current_user_id', 'u1', true) \g /dev/null
SELECT is((SELECT array_agg(DISTINCT user_id) FROM mana_ai.decrypt_audit), ARRAY['u1'],
          'row-level security: a plain SELECT sees only app.current_user_id''s rows');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
