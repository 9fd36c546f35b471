-- rebuild.sql: pgTAP suite for the write-back's rebuild of a mission
-- (src/projection/mission_rebuild.c, issue 19): its snapshot plus the rows not yet
-- in it gives exactly what a full replay of the log gives, on random
-- histories whose last rows arrive after the last refresh, some of them
-- late (created_at older than the snapshot's last applied row, as a
-- transaction that commits after a refresh leaves them), in both formats.
-- Runs in a database with pgtap, mana_ai and tests/fixtures/sync_changes.sql.
BEGIN;
SELECT plan(6);
\ir ../fixtures/format.psql
CREATE VIEW pg_temp.sync_rows AS
SELECT id, app_id, table_name, record_id, user_id, op, data, :"stamps" AS field_timestamps,
       client_id, created_at
  FROM public.sync_changes;

-- The library's entry point for tests and bench/writeback (not in the
-- extension's SQL surface): (user_id, mission_id, full) → jsonb.
CREATE FUNCTION pg_temp.rebuild(text, text, bool) RETURNS jsonb
    LANGUAGE c AS '$libdir/mana_ai', 'mana_ai_rebuild_mission_sql';

-- Missions whose rebuild differs from mana_ai.replay_record (full: the
-- streamed fold of the whole history; otherwise from the snapshot).
CREATE FUNCTION pg_temp.differs(full_fold bool) RETURNS bigint LANGUAGE sql AS $$
SELECT count(*)
  FROM (SELECT DISTINCT user_id, record_id FROM public.sync_changes
         WHERE app_id = 'ai' AND table_name = 'aiMissions') k
 WHERE pg_temp.rebuild(k.user_id, k.record_id, full_fold)
       IS DISTINCT FROM mana_ai.replay_record(k.user_id, 'ai', 'aiMissions', k.record_id) $$;

-- Random histories as in projections.sql (ties, bad stamps, malformed
-- rows, deletes, created_at in random order, refreshes after random
-- subsets), then rows after the last refresh: half of them later than
-- anything applied, half late.  Counts the histories where a rebuild
-- differs from the full replay; *late_seen: histories with a late row.
CREATE FUNCTION pg_temp.property(n_histories int, OUT bad int, OUT bad_full int, OUT late_seen int)
LANGUAGE plpgsql AS $$
DECLARE
    pool text[] := ARRAY['2026-04-15T12:00:00Z', '2026-04-15T12:00:00.000Z', '2026-04-15T14:00:00+02:00',
                         '2026-04-15T12:00:01Z', '2026-04-15T11:00:01-01:00', '2026-04-15T12:00:02.5Z',
                         '2026-04-15T12:00:01.000000Z', 'not-a-stamp'];
    keys text[] := ARRAY['title', 'state', 'iterations'];
    nrows int;
    d jsonb;
    ft jsonb;
    r float8;
    k text;
    at timestamptz;
    last_at timestamptz;
BEGIN
    bad := 0; bad_full := 0; late_seen := 0;
    PERFORM setseed(0.1919);
    FOR h IN 1..n_histories LOOP
        DELETE FROM public.sync_changes;
        DELETE FROM mana_ai.mission_snapshots;
        DELETE FROM mana_ai.agent_snapshots;
        DELETE FROM mana_ai.snapshot_applied;
        DELETE FROM mana_ai.snapshot_tombstones;
        UPDATE mana_ai.snapshot_horizon SET horizon = '-infinity';
        nrows := 2 + floor(random() * 16)::int;
        FOR i IN 1..nrows + 4 LOOP
            d := '{}';
            ft := '{}';
            FOREACH k IN ARRAY keys LOOP
                IF random() < 0.6 THEN
                    d := d || jsonb_build_object(k, CASE k WHEN 'iterations'
                                 THEN jsonb_build_array(jsonb_build_object('id', i, 'plan', '[]'::jsonb))
                                 ELSE to_jsonb(k || floor(random() * 4)::int) END);
                    IF random() < 0.7 THEN
                        ft := ft || jsonb_build_object(k, pool[1 + floor(random() * array_length(pool, 1))::int]);
                    END IF;
                END IF;
            END LOOP;
            r := random();
            IF r < 0.03 THEN d := '[1, 2]'; ELSIF r < 0.05 THEN ft := '"stamps"'; END IF;
            at := now() + floor(random() * 10000000)::int * interval '1 microsecond';
            IF i > nrows THEN
                -- after the last refresh: later than every applied row, or late
                SELECT max(last_applied_at) INTO last_at FROM mana_ai.mission_snapshots;
                IF last_at IS NOT NULL AND random() < 0.5 THEN
                    -- never before this transaction's start, as the horizon assumes
                    at := greatest(now(), last_at - floor(1 + random() * 1000)::int * interval '1 microsecond');
                ELSIF last_at IS NOT NULL THEN
                    at := last_at + floor(1 + random() * 1000)::int * interval '1 microsecond';
                END IF;
            END IF;
            r := random();
            INSERT INTO pg_temp.sync_rows (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
            VALUES ('ai', CASE WHEN random() < 0.85 THEN 'aiMissions' ELSE 'agents' END,
                    'r' || floor(random() * 3)::int, 'u' || floor(random() * 2)::int,
                    CASE WHEN r < 0.04 THEN 'delete' WHEN r < 0.3 THEN 'insert' ELSE 'update' END,
                    d, ft, 'prop', at);
            IF i <= nrows AND (random() < 0.35 OR i = nrows) THEN
                PERFORM mana_ai.refresh_snapshots();
            END IF;
        END LOOP;
        IF EXISTS (SELECT 1 FROM public.sync_changes c JOIN mana_ai.mission_snapshots s
                       ON s.user_id = c.user_id AND s.mission_id = c.record_id
                    WHERE c.table_name = 'aiMissions' AND c.created_at <= s.last_applied_at
                      AND NOT EXISTS (SELECT 1 FROM mana_ai.snapshot_applied a WHERE a.row_id = c.id)) THEN
            late_seen := late_seen + 1;
        END IF;
        IF pg_temp.differs(false) > 0 THEN
            bad := bad + 1;
            RAISE NOTICE 'history %: the rebuild from the snapshot differs from a full replay', h;
        END IF;
        IF pg_temp.differs(true) > 0 THEN
            bad_full := bad_full + 1;
            RAISE NOTICE 'history %: the streamed full fold differs from a full replay', h;
        END IF;
    END LOOP;
END
$$;

SELECT * FROM pg_temp.property(200) \gset prop_
SELECT is(:prop_bad, 0, 'the rebuild from the snapshot equals a full replay on 200 random histories');
SELECT is(:prop_bad_full, 0, 'the streamed full fold equals a full replay on the same histories');
SELECT cmp_ok(:prop_late_seen, '>', 20, 'many histories had a late row after the last refresh');

-- A mission with no snapshot yet, and one whose snapshot is current.
DELETE FROM public.sync_changes;
DELETE FROM mana_ai.mission_snapshots;
DELETE FROM mana_ai.snapshot_applied;
INSERT INTO pg_temp.sync_rows (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
VALUES ('ai', 'aiMissions', 'm1', 'tap_a', 'insert', '{"title": "A", "iterations": []}',
        '{"title": "2026-04-15T12:00:00Z", "iterations": "2026-04-15T12:00:00Z"}', 'web', now());
SELECT is(pg_temp.rebuild('tap_a', 'm1', false), mana_ai.replay_record('tap_a', 'ai', 'aiMissions', 'm1'),
          'a mission without a snapshot is replayed');
SELECT is(pg_temp.rebuild('tap_b', 'm1', false), NULL, 'another user''s mission is not read');
SELECT mana_ai.refresh_snapshots();
INSERT INTO pg_temp.sync_rows (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
VALUES ('ai', 'aiMissions', 'm1', 'tap_a', 'update', '{"iterations": [{"id": "i1", "plan": []}]}',
        '{"iterations": "2026-04-15T12:00:05Z"}', 'mana-ai-runner', now() + interval '1 second');
SELECT is(pg_temp.rebuild('tap_a', 'm1', false) -> 'iterations', '[{"id": "i1", "plan": []}]'::jsonb,
          'a row after the snapshot is folded onto it');

SELECT * FROM finish();
ROLLBACK;
