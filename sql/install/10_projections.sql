-- 10_projections.sql: the event log folded into live records (SPEC 2, 3).
-- lww_merge / replay_record / refresh_snapshots, the refresh's own state,
-- the one cross-user discovery path, and the missions/agents views.

-- ---- LWW merge (SPEC 2) ----

CREATE FUNCTION mana_ai.lww_merge_trans(internal, text, text, jsonb, jsonb, timestamptz)
    RETURNS internal
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_lww_merge_trans';
CREATE FUNCTION mana_ai.lww_merge_final(internal)
    RETURNS jsonb
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_lww_merge_final';
CREATE FUNCTION mana_ai.lww_merge_report_final(internal)
    RETURNS jsonb
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_lww_merge_report_final';

-- Feed rows in order: lww_merge(record_id, op, data, field_timestamps,
-- created_at ORDER BY created_at, id).  The result depends on that order.
CREATE AGGREGATE mana_ai.lww_merge(record_id text, op text, data jsonb,
                                   field_timestamps jsonb, created_at timestamptz) (
    SFUNC = mana_ai.lww_merge_trans,
    STYPE = internal,
    FINALFUNC = mana_ai.lww_merge_final,
    FINALFUNC_MODIFY = READ_ONLY
);
COMMENT ON AGGREGATE mana_ai.lww_merge(text, text, jsonb, jsonb, timestamptz) IS
    'Field-level last-writer-wins merge of one record''s sync_changes rows; call with ORDER BY created_at, id';

-- Same fold, with the counts: {record, rowsApplied, skippedRows, badStamps, tombstoned}.
CREATE AGGREGATE mana_ai.lww_merge_report(record_id text, op text, data jsonb,
                                          field_timestamps jsonb, created_at timestamptz) (
    SFUNC = mana_ai.lww_merge_trans,
    STYPE = internal,
    FINALFUNC = mana_ai.lww_merge_report_final,
    FINALFUNC_MODIFY = READ_ONLY
);
COMMENT ON AGGREGATE mana_ai.lww_merge_report(text, text, jsonb, jsonb, timestamptz) IS
    'lww_merge plus the number of rows applied, rows skipped as malformed and stamps that did not parse';

-- Every function that runs SQL of its own inside (SPI) pins search_path,
-- here and in the other files: its statements name unqualified built-ins
-- (now(), unnest, jsonb_build_object, ->>, =), which an object of the same
-- name in a schema earlier on the caller's path would otherwise replace
-- (CVE-2018-1058).  The worker pins it at connect (worker.c).
CREATE FUNCTION mana_ai.replay_record(user_id text, app_id text, table_name text, record_id text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_replay_record_sql';
COMMENT ON FUNCTION mana_ai.replay_record(text, text, text, text) IS
    'One record replayed by LWW from its whole history, read with app.current_user_id = user_id; NULL if never written or deleted';

-- Strict stamp parsing for the views: NULL instead of an error.
CREATE FUNCTION mana_ai.iso_timestamp(stamp text)
    RETURNS timestamptz
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_iso_timestamp';
COMMENT ON FUNCTION mana_ai.iso_timestamp(text) IS
    'A strict zoned ISO-8601 stamp as timestamptz (microseconds kept); NULL when it does not parse';

-- ---- Incremental snapshot refresh (SPEC 3) ----

-- The refresh cursor per kind: rows created before it are all folded in.
-- It never passes the start of a transaction still in progress.
CREATE TABLE mana_ai.snapshot_horizon (
    kind     text        PRIMARY KEY CHECK (kind IN ('missions', 'agents')),
    horizon  timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE mana_ai.snapshot_horizon IS
    'Refresh cursor per snapshot kind; every sync_changes row created before it is folded in';
INSERT INTO mana_ai.snapshot_horizon (kind) VALUES ('missions'), ('agents');

-- Rows at or after the horizon that were already folded in (the window
-- where a late commit may still land); pruned as the horizon passes them.
CREATE TABLE mana_ai.snapshot_applied (
    kind        text        NOT NULL CHECK (kind IN ('missions', 'agents')),
    row_id      uuid        NOT NULL,
    user_id     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, row_id)
);
CREATE INDEX snapshot_applied_kind_created_idx
    ON mana_ai.snapshot_applied (kind, created_at);
COMMENT ON TABLE mana_ai.snapshot_applied IS
    'sync_changes row ids folded in while still inside the refresh window (created_at >= horizon)';

-- Tombstoned records: their snapshot stays deleted whatever follows.
CREATE TABLE mana_ai.snapshot_tombstones (
    kind         text        NOT NULL CHECK (kind IN ('missions', 'agents')),
    user_id      text        NOT NULL,
    record_id    text        NOT NULL,
    deleted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, user_id, record_id)
);
COMMENT ON TABLE mana_ai.snapshot_tombstones IS
    'Records deleted by an op=delete row; a tombstone is terminal (SPEC 2.3)';

-- The horizon a refresh may move to: the start of the oldest transaction
-- in progress in this database (it may still insert rows stamped with
-- it), NULL when that cannot be known (prepared transactions exist,
-- track_activities is off, or a backend's transaction cannot be dated):
-- then the horizon stays.  Every kind of backend that can insert counts:
-- client backends, walsenders, and every background worker (logical
-- replication apply and table sync workers, parallel workers, other
-- extensions' workers, each of which pg_stat_activity names by its own
-- type); only autovacuum workers, which never insert into a user table,
-- are left out, so a long VACUUM does not hold the horizon.  While this
-- database has a subscription, rows arrive with the created_at the
-- publisher gave them, older than any transaction here: the horizon then
-- also stays mana_ai.late_row_window behind now().  SECURITY DEFINER
-- because pg_stat_activity hides other roles' xact_start; returns one
-- timestamp, no data.  PL/pgSQL so its plans stay cached in a long-lived
-- backend (a SQL function would be planned again on every refresh), and
-- straight on pg_stat_get_activity/pg_prepared_xact rather than the views
-- with their joins.
CREATE FUNCTION mana_ai.refresh_horizon()
    RETURNS timestamptz
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    db oid := (SELECT d.oid FROM pg_catalog.pg_database d
                WHERE d.datname = pg_catalog.current_database());
    oldest timestamptz;
    undated boolean;
BEGIN
    IF NOT pg_catalog.current_setting('track_activities')::boolean
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xact() p WHERE p.dbid = db) THEN
        RETURN NULL;
    END IF;
    SELECT pg_catalog.min(a.xact_start),
           pg_catalog.bool_or(a.state = 'disabled'
                              OR (a.xact_start IS NULL AND a.backend_xid IS NOT NULL))
      INTO oldest, undated
      FROM pg_catalog.pg_stat_get_activity(NULL) a
     WHERE a.datid = db AND a.backend_type IS DISTINCT FROM 'autovacuum worker';
    IF undated THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subdbid = db) THEN
        oldest := LEAST(oldest, pg_catalog.now() - COALESCE(NULLIF(
            pg_catalog.current_setting('mana_ai.late_row_window', true), ''), '60s')::pg_catalog.interval);
    END IF;
    RETURN LEAST(pg_catalog.now(), oldest);
END
$$;
COMMENT ON FUNCTION mana_ai.refresh_horizon() IS
    'Oldest start of an open transaction in this database (refresh cursor bound); returns no user data';

-- THE REFRESH'S DISCOVERY (one of its two cross-user reads, with
-- snapshot_rows_of below).  Which users have ai/aiMissions or ai/agents
-- rows (table_name: one of them; NULL: either) created at or after since:
-- user ids only, never data.  Owned by the superuser who ran CREATE
-- EXTENSION, so it sees past row-level security; everything else reads
-- one user's rows under that user's app.current_user_id, or through
-- snapshot_rows_of.  Uses the
-- opt-in index sync_changes_mana_ai_refresh_idx (see docs) when it exists
-- and is valid: then O(new rows).  Else a skip scan over user_id on the
-- production index (user_id, app_id, created_at), one probe for the next
-- user and one for that user's ai rows since: O(users), no row data read.
-- A first refresh (since -infinity: every row is new and will be read)
-- takes one index-only pass instead, O(rows) but cheaper than 10,000
-- probes at 10,000 users.
CREATE FUNCTION mana_ai.snapshot_users_since(table_name text, since timestamptz)
    RETURNS SETOF text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t1 text := table_name;
    t2 text;                    -- NULL matches nothing
BEGIN
    IF table_name IS NULL THEN
        t1 := 'aiMissions';
        t2 := 'agents';
    ELSIF table_name NOT IN ('aiMissions', 'agents') THEN
        RAISE EXCEPTION 'table_name must be aiMissions, agents or NULL (both)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since = '-infinity' THEN
        -- A first refresh reads every row anyway: one pass over the
        -- production index (user_id, app_id, table_name, created_at),
        -- index-only, is cheaper than a probe per user.
        RETURN QUERY
            SELECT DISTINCT s.user_id FROM public.sync_changes s
             WHERE s.app_id = 'ai' AND s.table_name IN (t1, t2);
    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indexrelid = pg_catalog.to_regclass('public.sync_changes_mana_ai_refresh_idx')
                  AND i.indisvalid) THEN
        RETURN QUERY
            SELECT DISTINCT s.user_id FROM public.sync_changes s
             WHERE s.app_id = 'ai' AND s.table_name IN (t1, t2)
               AND s.created_at >= since;
    ELSE
        -- Per user one probe for any ai row since (an empty range when
        -- nothing is new), then, for those only, one per table: each an
        -- exact range of an index, never a walk through a user's history.
        RETURN QUERY
            WITH RECURSIVE u(user_id) AS (
                SELECT pg_catalog.min(s.user_id) FROM public.sync_changes s
                UNION ALL
                SELECT (SELECT pg_catalog.min(s.user_id) FROM public.sync_changes s
                         WHERE s.user_id > u.user_id)
                  FROM u WHERE u.user_id IS NOT NULL
            ), candidates AS MATERIALIZED (
                SELECT u.user_id FROM u
                 WHERE u.user_id IS NOT NULL
                   AND EXISTS (SELECT 1 FROM public.sync_changes s
                                WHERE s.user_id = u.user_id AND s.app_id = 'ai'
                                  AND s.created_at >= since)
            )
            SELECT c.user_id FROM candidates c
             WHERE EXISTS (SELECT 1 FROM public.sync_changes s
                            WHERE s.user_id = c.user_id AND s.app_id = 'ai'
                              AND s.table_name = t1 AND s.created_at >= since)
                OR EXISTS (SELECT 1 FROM public.sync_changes s
                            WHERE s.user_id = c.user_id AND s.app_id = 'ai'
                              AND s.table_name = t2 AND s.created_at >= since);
    END IF;
END
$$;
COMMENT ON FUNCTION mana_ai.snapshot_users_since(text, timestamptz) IS
    'The only cross-user read of the refresh: ids of users with new aiMissions/agents rows (NULL table_name: either), never data';

-- Which sync_changes format this database has, from the catalog
-- (sync_format.c): 'seed' (SPEC 1.1, field_timestamps) or 'current'
-- (SPEC 11.1, field_meta, origin, space_id); an error naming both when
-- the table matches neither.  Reads no user data.
CREATE FUNCTION mana_ai.sync_format() RETURNS text
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_sync_format_sql';
COMMENT ON FUNCTION mana_ai.sync_format() IS
    'The format of public.sync_changes: seed (field_timestamps) or current (field_meta, origin, space_id)';

-- THE REFRESH'S BATCHED READ.  The aiMissions and agents rows of the ai
-- app of the listed users created at or after each kind's horizon, for
-- the refresh only (granted to the worker's role alone): one statement
-- per batch of users instead of one per user, a bitmap heap scan that
-- visits each heap page of the batch once.  It crosses users, so it is
-- SECURITY DEFINER like snapshot_users_since (row-level security on
-- app.current_user_id admits one user per statement); it widens no
-- role's reach (the worker's role can already read every user's rows,
-- one user at a time, by setting app.current_user_id), only how many
-- users one statement returns.  Each row names its user: the refresh
-- writes every snapshot under the user_id of its own rows.
CREATE FUNCTION mana_ai.snapshot_rows_of(user_ids text[], missions_since timestamptz,
                                         agents_since timestamptz)
    RETURNS TABLE (id uuid, user_id text, record_id text, op text, data jsonb,
                   field_timestamps jsonb, created_at timestamptz, is_agent boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- One static query per sync format (SPEC 1.1 field_timestamps, SPEC
    -- 11.1 field_meta; the result column keeps the first name): PL/pgSQL
    -- plans a query when it first runs, so the other format's column is
    -- never looked up.  A row written by the runner (client_id
    -- mana-ai-runner) contributes iterations and updatedAt only (seed
    -- format: and nextRunAt, SPEC 1.3), whatever else it carries (issue
    -- 19; src/projection/runner_fields.h does the same for the C statements).
    IF mana_ai.sync_format() = 'current' THEN
        RETURN QUERY
        SELECT s.id, s.user_id, s.record_id, s.op,
               CASE WHEN s.client_id = 'mana-ai-runner' AND jsonb_typeof(s.data) = 'object'
                    THEN s.data - ARRAY(SELECT k FROM jsonb_object_keys(s.data) AS k WHERE k NOT IN ('iterations', 'updatedAt'))
                    ELSE s.data END,
               CASE WHEN s.client_id = 'mana-ai-runner' AND jsonb_typeof(s.field_meta) = 'object'
                    THEN s.field_meta - ARRAY(SELECT k FROM jsonb_object_keys(s.field_meta) AS k WHERE k NOT IN ('iterations', 'updatedAt'))
                    ELSE s.field_meta END,
               s.created_at,
               s.table_name = 'agents'
          FROM public.sync_changes s
         WHERE s.user_id = ANY (user_ids) AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents')
           AND s.created_at >= LEAST(missions_since, agents_since)
           AND s.created_at >= CASE s.table_name WHEN 'agents' THEN agents_since ELSE missions_since END;
    ELSE
        RETURN QUERY
        SELECT s.id, s.user_id, s.record_id, s.op,
               CASE WHEN s.client_id = 'mana-ai-runner' AND jsonb_typeof(s.data) = 'object'
                    THEN s.data - ARRAY(SELECT k FROM jsonb_object_keys(s.data) AS k WHERE k NOT IN ('iterations', 'updatedAt', 'nextRunAt'))
                    ELSE s.data END,
               CASE WHEN s.client_id = 'mana-ai-runner' AND jsonb_typeof(s.field_timestamps) = 'object'
                    THEN s.field_timestamps - ARRAY(SELECT k FROM jsonb_object_keys(s.field_timestamps) AS k WHERE k NOT IN ('iterations', 'updatedAt', 'nextRunAt'))
                    ELSE s.field_timestamps END,
               s.created_at,
               s.table_name = 'agents'
          FROM public.sync_changes s
         WHERE s.user_id = ANY (user_ids) AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents')
           AND s.created_at >= LEAST(missions_since, agents_since)
           AND s.created_at >= CASE s.table_name WHEN 'agents' THEN agents_since ELSE missions_since END;
    END IF;
END
$$;
COMMENT ON FUNCTION mana_ai.snapshot_rows_of(text[], timestamptz, timestamptz) IS
    'The refresh''s batched read: the aiMissions/agents rows of the listed users since each kind''s horizon';

CREATE FUNCTION mana_ai.refresh_snapshots()
    RETURNS TABLE (kind text, rows_applied bigint, new_snapshots int,
                   updated_snapshots int, deleted_snapshots int, skipped_rows bigint)
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_refresh_snapshots';
COMMENT ON FUNCTION mana_ai.refresh_snapshots() IS
    'Fold new sync_changes rows into mission_snapshots and agent_snapshots; one row per kind';

-- ---- Views (SPEC 9) ----

-- No expression index on nextRunAt: writing a snapshot would then need
-- EXECUTE on iso_timestamp, and the due scan over one row per mission is
-- cheap next to the tick itself.

-- What operations need, never the raw record (issue 19): the record holds
-- the grant with its wrapped key, the inputs, every plan and the agent's
-- system prompt.  Chosen on purpose beyond ids, state, cadence, schedule
-- and counts: a mission's title and an agent's name (the README's operator
-- role lists them).  The tick reads records from the snapshot tables.
--
-- next_run_at is the slot mana_ai plans next: the record's nextRunAt,
-- unless mana_ai has planned it in the current sync format and the web
-- app has not moved it past that slot since; then mana_ai's own next
-- slot (mission_slots, README "The slot state").  slot is its text, the
-- key of mission_attempts.  In the seed format mission_slots is empty and
-- both are the record's nextRunAt.
CREATE VIEW mana_ai.missions AS
SELECT s.user_id,
       s.mission_id,
       s.record ->> 'title'                                  AS title,
       s.record ->> 'state'                                  AS state,
       s.record -> 'cadence'                                 AS cadence,
       n.next_run_at,
       s.record ->> 'agentId'                                AS agent_id,
       coalesce(jsonb_typeof(s.record -> 'grant') = 'object', false) AS has_grant,
       CASE WHEN jsonb_typeof(s.record -> 'iterations') = 'array'
            THEN jsonb_array_length(s.record -> 'iterations') ELSE 0 END AS iteration_count,
       CASE WHEN jsonb_typeof(s.record -> 'iterations') = 'array'
            THEN s.record -> 'iterations' -> -1 ->> 'overallStatus' END AS last_iteration_status,
       CASE WHEN jsonb_typeof(s.record -> 'iterations') = 'array'
            THEN mana_ai.iso_timestamp(coalesce(s.record -> 'iterations' -> -1 ->> 'finishedAt',
                                                s.record -> 'iterations' -> -1 ->> 'startedAt'))
            END                                              AS last_iteration_at,
       coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false) AS deleted,
       mana_ai.iso_timestamp(s.record ->> 'deletedAt')       AS deleted_at,
       (s.record ->> 'state') = 'active'
         AND NOT coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false)
         AND coalesce(n.next_run_at <= now(), false)         AS due,
       mana_ai.iso_timestamp(s.record ->> 'createdAt')       AS created_at,
       mana_ai.iso_timestamp(s.record ->> 'updatedAt')       AS updated_at,
       s.last_applied_at,
       s.updated_at                                          AS snapshot_updated_at,
       n.slot
  FROM mana_ai.mission_snapshots s
  LEFT JOIN mana_ai.mission_slots p ON p.user_id = s.user_id AND p.mission_id = s.mission_id
  CROSS JOIN LATERAL (SELECT mana_ai.iso_timestamp(s.record ->> 'nextRunAt') AS r) x
  CROSS JOIN LATERAL (
      SELECT CASE WHEN x.r IS NULL OR p.planned_slot IS NULL OR x.r > p.planned_slot
                  THEN x.r ELSE mana_ai.iso_timestamp(p.next_slot) END AS next_run_at,
             CASE WHEN x.r IS NULL OR p.planned_slot IS NULL OR x.r > p.planned_slot
                  THEN s.record ->> 'nextRunAt' ELSE p.next_slot END AS slot) n;
COMMENT ON VIEW mana_ai.missions IS
    'Every mission snapshot with typed ops columns (never the record); soft-deleted missions show deleted = true; next_run_at is the slot mana_ai plans next';

CREATE VIEW mana_ai.due_missions AS
SELECT m.*
  FROM mana_ai.missions m
 WHERE m.due
 ORDER BY m.next_run_at, m.user_id, m.mission_id;
COMMENT ON VIEW mana_ai.due_missions IS
    'Active, scheduled, not soft-deleted missions whose nextRunAt has passed, oldest first (SPEC 4.3)';

CREATE VIEW mana_ai.agents AS
SELECT s.user_id,
       s.agent_id,
       s.record ->> 'name'                                   AS name,
       coalesce(s.record ->> 'state', 'active')              AS state,
       CASE WHEN jsonb_typeof(s.record -> 'maxConcurrentMissions') = 'number'
             AND (s.record ->> 'maxConcurrentMissions')::numeric BETWEEN 0 AND 2147483647
            THEN floor((s.record ->> 'maxConcurrentMissions')::numeric)::int
            ELSE 1 END                                       AS max_concurrent_missions,
       CASE WHEN jsonb_typeof(s.record -> 'maxTokensPerDay') = 'number'
             AND (s.record ->> 'maxTokensPerDay')::numeric BETWEEN 0 AND 9223372036854775807
            THEN floor((s.record ->> 'maxTokensPerDay')::numeric)::bigint
            END                                              AS max_tokens_per_day,
       coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false) AS deleted,
       mana_ai.iso_timestamp(s.record ->> 'deletedAt')       AS deleted_at,
       mana_ai.iso_timestamp(s.record ->> 'createdAt')       AS created_at,
       mana_ai.iso_timestamp(s.record ->> 'updatedAt')       AS updated_at,
       s.last_applied_at,
       s.updated_at                                          AS snapshot_updated_at
  FROM mana_ai.agent_snapshots s;
COMMENT ON VIEW mana_ai.agents IS
    'Every agent snapshot with typed ops columns (never the record, role or policy); state defaults to active, max_concurrent_missions to 1';
