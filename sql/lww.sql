-- lww: the field-level last-writer-wins merge (SPEC 2) and replay_record.
CREATE EXTENSION mana_ai;
\i tests/fixtures/sync_changes.sql

CREATE TEMP TABLE h (
    seq int, record_id text, op text, data jsonb, field_timestamps jsonb, created_at timestamptz,
    id uuid DEFAULT gen_random_uuid());
CREATE FUNCTION pg_temp.merge(n int) RETURNS jsonb LANGUAGE sql AS
$$ SELECT mana_ai.lww_merge_report(record_id, op, data, field_timestamps, created_at ORDER BY created_at, seq)
     FROM h WHERE seq / 100 = n $$;

-- 1. insert then updates; the insert's stamps become the record's
INSERT INTO h VALUES
 (100, 'm1', 'insert', '{"title": "a", "state": "active"}', '{"title": "2026-04-15T12:00:00Z", "state": "2026-04-15T12:00:00Z"}', '2026-04-15 12:00:00+00'),
 (101, 'm1', 'update', '{"title": "b"}', '{"title": "2026-04-15T12:05:00Z"}', '2026-04-15 12:05:00+00'),
 (102, 'm1', 'update', '{"state": "paused", "objective": "o"}', '{"state": "2026-04-15T12:06:00Z", "objective": "2026-04-15T12:06:00Z"}', '2026-04-15 12:06:00+00');
SELECT pg_temp.merge(1);

-- 2. an older update is ignored; 3. an equal stamp: the later row wins
INSERT INTO h VALUES
 (200, 'm1', 'insert', '{"title": "a"}', '{"title": "2026-04-15T12:00:00Z"}', '2026-04-15 12:00:00+00'),
 (201, 'm1', 'update', '{"title": "older"}', '{"title": "2026-04-15T11:00:00Z"}', '2026-04-15 12:01:00+00'),
 (300, 'm1', 'insert', '{"title": "a"}', '{"title": "2026-04-15T12:00:00Z"}', '2026-04-15 12:00:00+00'),
 (301, 'm1', 'update', '{"title": "tie"}', '{"title": "2026-04-15T12:00:00Z"}', '2026-04-15 12:01:00+00');
SELECT pg_temp.merge(2) -> 'record' ->> 'title' AS older_ignored,
       pg_temp.merge(3) -> 'record' ->> 'title' AS tie_later_wins;

-- 4. mixed formats and offsets compare as instants, not strings:
-- 12:00:00.000Z ties with 14:00+02:00 (later row wins); 13:59+02:00 is older
INSERT INTO h VALUES
 (400, 'm1', 'insert', '{"title": "a"}', '{"title": "2026-04-15T12:00:00.000Z"}', '2026-04-15 12:00:00+00'),
 (401, 'm1', 'update', '{"title": "same instant"}', '{"title": "2026-04-15T14:00:00+02:00"}', '2026-04-15 12:01:00+00'),
 (402, 'm1', 'update', '{"title": "string-greater but older"}', '{"title": "2026-04-15T13:59:59.999999+02:00"}', '2026-04-15 12:02:00+00'),
 (403, 'm1', 'update', '{"title": "one microsecond later"}', '{"title": "2026-04-15T12:00:00.000001Z"}', '2026-04-15 12:03:00+00');
SELECT pg_temp.merge(4) -> 'record' ->> 'title' AS title,
       pg_temp.merge(4) -> 'record' -> '__fieldTimestamps' ->> 'title' AS stamp;

-- 5. a missing stamp falls back to created_at (microseconds kept);
-- 6. an unparseable stamp is treated as missing and counted
INSERT INTO h VALUES
 (500, 'm1', 'insert', '{"title": "a"}', '{"title": "2026-04-15T12:00:00Z"}', '2026-04-15 12:00:00+00'),
 (501, 'm1', 'update', '{"title": "no stamp", "x": 1}', '{}', '2026-04-15 12:10:00.123456+00'),
 (600, 'm1', 'insert', '{"title": "a"}', '{"title": "2026-04-15T12:00:00Z"}', '2026-04-15 12:00:00+00'),
 (601, 'm1', 'update', '{"title": "bad stamp"}', '{"title": "yesterday"}', '2026-04-15 11:00:00+00'),
 (602, 'm1', 'update', '{"title": "numeric stamp"}', '{"title": 1776254400}', '2026-04-15 12:30:00+00');
SELECT pg_temp.merge(5);
SELECT pg_temp.merge(6);

-- 7. data or field_timestamps not an object: skipped and counted
INSERT INTO h VALUES
 (700, 'm1', 'insert', '[1, 2]', '{}', '2026-04-15 12:00:00+00'),
 (701, 'm1', 'insert', '"text"', '{}', '2026-04-15 12:00:01+00'),
 (702, 'm1', 'insert', '{"title": "first good row"}', '{}', '2026-04-15 12:00:02+00'),
 (703, 'm1', 'update', '{"title": "bad stamps"}', '["x"]', '2026-04-15 12:00:03+00'),
 (704, 'm1', 'update', '42', '{}', '2026-04-15 12:00:04+00'),
 (705, 'm1', 'update', 'null', '{}', '2026-04-15 12:00:05+00');
SELECT pg_temp.merge(7);

-- 8. delete then insert stays deleted
INSERT INTO h VALUES
 (800, 'm1', 'insert', '{"title": "a"}', '{}', '2026-04-15 12:00:00+00'),
 (801, 'm1', 'delete', NULL, '{}', '2026-04-15 12:01:00+00'),
 (802, 'm1', 'insert', '{"title": "resurrected"}', '{}', '2026-04-15 12:02:00+00'),
 (803, 'm1', 'update', '{"title": "later"}', '{"title": "2030-01-01T00:00:00Z"}', '2026-04-15 12:03:00+00');
SELECT pg_temp.merge(8);

-- 9. deletedAt stays in the record (it only hides it from lists)
INSERT INTO h VALUES
 (900, 'm1', 'insert', '{"title": "a"}', '{}', '2026-04-15 12:00:00+00'),
 (901, 'm1', 'update', '{"deletedAt": "2026-04-15T12:01:00Z"}', '{"deletedAt": "2026-04-15T12:01:00Z"}', '2026-04-15 12:01:00+00');
SELECT pg_temp.merge(9) -> 'record';

-- 10. re-applying an already applied row changes nothing
INSERT INTO h SELECT 1000 + seq - 100, record_id, op, data, field_timestamps, created_at FROM h WHERE seq BETWEEN 100 AND 102;
INSERT INTO h SELECT 1003, record_id, op, data, field_timestamps, created_at FROM h WHERE seq = 101;
INSERT INTO h SELECT 1004, record_id, op, data, field_timestamps, created_at FROM h WHERE seq = 102;
SELECT pg_temp.merge(10) -> 'record' = pg_temp.merge(1) -> 'record' AS reapply_is_idempotent;

-- 11. the first row's data id wins over the record id; __fieldTimestamps in data is ignored
INSERT INTO h VALUES
 (1100, 'm1', 'insert', '{"id": "own", "__fieldTimestamps": {"x": "2099-01-01T00:00:00Z"}}', '{}', '2026-04-15 12:00:00+00');
SELECT pg_temp.merge(11) -> 'record';

-- the plain aggregate: NULL for no rows and for a tombstone
SELECT mana_ai.lww_merge(record_id, op, data, field_timestamps, created_at ORDER BY created_at, seq) IS NULL AS tombstone_null
  FROM h WHERE seq / 100 = 8;
SELECT mana_ai.lww_merge(record_id, op, data, field_timestamps, created_at ORDER BY created_at, seq) IS NULL AS empty_null
  FROM h WHERE false;
SELECT mana_ai.lww_merge(record_id, op, data, field_timestamps, created_at ORDER BY created_at, seq) ->> 'title' AS nested_values_kept,
       mana_ai.lww_merge(record_id, op, data, field_timestamps, created_at ORDER BY created_at, seq) -> 'inputs' AS inputs
  FROM (VALUES (1, 'r', 'insert', '{"title": "t", "inputs": [{"module": "notes", "id": "n1"}]}'::jsonb, '{}'::jsonb, now())) v(seq, record_id, op, data, field_timestamps, created_at);

-- iso_timestamp: instants, microseconds, NULL for garbage
SELECT mana_ai.iso_timestamp('2026-04-15T14:00:00.123456+02:00') = '2026-04-15 12:00:00.123456+00' AS offset_ok,
       mana_ai.iso_timestamp('2026-04-15T12:00:00') IS NULL AS zoneless_null,
       mana_ai.iso_timestamp('garbage') IS NULL AS garbage_null;

-- a bare date names no zone, so it is refused like any zone-less stamp
SELECT mana_ai.iso_timestamp('2026-04-15') IS NULL AS bare_date_null;

-- replay_record: under the user's scope, whole history, empty user refused
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, :"stamps", client_id, created_at) VALUES
 ('ai', 'aiMissions', 'r1', 'alice', 'insert', '{"title": "a"}', '{"title": "2026-04-15T12:00:00Z"}', 'web', '2026-04-15 12:00:00+00'),
 ('ai', 'aiMissions', 'r1', 'alice', 'update', '{"title": "b"}', '{"title": "2026-04-15T12:01:00Z"}', 'web', '2026-04-15 12:01:00+00'),
 ('ai', 'aiMissions', 'r1', 'bob',   'insert', '{"title": "bob"}', '{}', 'web', '2026-04-15 12:00:00+00');
SELECT mana_ai.replay_record('alice', 'ai', 'aiMissions', 'r1');
SELECT mana_ai.replay_record('bob', 'ai', 'aiMissions', 'r1') ->> 'title' AS bob_title;
SELECT mana_ai.replay_record('carol', 'ai', 'aiMissions', 'r1') IS NULL AS other_user_null;
SELECT mana_ai.replay_record('', 'ai', 'aiMissions', 'r1');
SELECT mana_ai.replay_record(NULL, 'ai', 'aiMissions', 'r1');
-- the caller's own scope is left as it was
BEGIN;
SELECT set_config('app.current_user_id', 'bob', true);
SELECT mana_ai.replay_record('alice', 'ai', 'aiMissions', 'r1') ->> 'title' AS alice_title,
       current_setting('app.current_user_id') AS scope_after;
ROLLBACK;

DROP TABLE h;
DROP EXTENSION mana_ai CASCADE;
DROP TABLE public.sync_changes;
