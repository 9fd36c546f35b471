-- generated from sql/install/*.sql by make; do not edit
\echo Use "CREATE EXTENSION mana_ai" to load this file. \quit

-- ---- sql/install/00_schema.sql ----
-- 00_schema.sql: mana_ai's own tables (the runner's state and its audit
-- trail).  sync_changes belongs to the sync server and is never touched
-- here.

-- A member of the extension, so DROP EXTENSION leaves nothing behind.
CREATE SCHEMA mana_ai;
COMMENT ON SCHEMA mana_ai IS 'mana_ai: in-database AI mission runner';

-- Who may install: the worker ticks in one database (mana_ai.database);
-- installing elsewhere is allowed (the SQL surface works anywhere) but
-- the worker will not see it.

CREATE TABLE mana_ai.mission_snapshots (
    user_id          text        NOT NULL,
    mission_id       text        NOT NULL,
    record           jsonb       NOT NULL,
    last_applied_at  timestamptz NOT NULL DEFAULT '-infinity',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, mission_id)
);
COMMENT ON TABLE mana_ai.mission_snapshots IS
    'LWW-merged aiMissions records, one per (user_id, mission_id); derived from sync_changes, not dumped';

CREATE TABLE mana_ai.agent_snapshots (
    user_id          text        NOT NULL,
    agent_id         text        NOT NULL,
    record           jsonb       NOT NULL,
    last_applied_at  timestamptz NOT NULL DEFAULT '-infinity',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, agent_id)
);
COMMENT ON TABLE mana_ai.agent_snapshots IS
    'LWW-merged agents records, one per (user_id, agent_id); derived from sync_changes, not dumped';

-- One row per decrypt attempt of an encrypted input (SPEC 5.4).
CREATE TABLE mana_ai.decrypt_audit (
    id            bigserial   PRIMARY KEY,
    user_id       text        NOT NULL CHECK (user_id <> ''),
    mission_id    text        NOT NULL,
    iteration_id  text,
    table_name    text        NOT NULL,
    record_id     text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('ok', 'failed', 'scope-violation')),
    reason        text,
    ts            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mana_ai.decrypt_audit IS
    'Append-only record of every server-side decrypt attempt; user-scoped by row-level security';
CREATE INDEX decrypt_audit_user_mission_ts_idx
    ON mana_ai.decrypt_audit (user_id, mission_id, ts DESC);
CREATE INDEX decrypt_audit_ts_idx ON mana_ai.decrypt_audit (ts);

ALTER TABLE mana_ai.decrypt_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.decrypt_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY decrypt_audit_user_scope ON mana_ai.decrypt_audit
    FOR SELECT
    USING (user_id = current_setting('app.current_user_id', true));
CREATE POLICY decrypt_audit_user_insert ON mana_ai.decrypt_audit
    FOR INSERT
    WITH CHECK (user_id = current_setting('app.current_user_id', true));

-- Append-only: the guard lives in C so that only the retention code in
-- the same process can lift it; no SQL-settable flag can.
CREATE FUNCTION mana_ai.decrypt_audit_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'mana_ai_decrypt_audit_guard';
-- Statement level, so the refusal is loud even when RLS hides every row.
CREATE TRIGGER decrypt_audit_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON mana_ai.decrypt_audit
    FOR EACH STATEMENT EXECUTE FUNCTION mana_ai.decrypt_audit_guard();

-- One row per tick, whoever ran it (SPEC 4.11).
CREATE TABLE mana_ai.tick_runs (
    id                  bigserial   PRIMARY KEY,
    source              text        NOT NULL CHECK (source IN ('worker', 'sql')),
    status              text        NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'ok', 'failed', 'overlap-skipped')),
    started_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at         timestamptz,
    backend_pid         int         NOT NULL DEFAULT pg_backend_pid(),
    due_missions        int,
    plans_produced      int,
    plans_written_back  int,
    parse_failures      int,
    errors              jsonb       NOT NULL DEFAULT '[]',
    result              jsonb
);
COMMENT ON TABLE mana_ai.tick_runs IS
    'One row per tick; rows left running by a crash are marked failed when the worker starts';
CREATE INDEX tick_runs_started_at_idx ON mana_ai.tick_runs (started_at);
CREATE INDEX tick_runs_running_idx ON mana_ai.tick_runs (id) WHERE status = 'running';

-- The planner's tool catalog (SPEC 7.1): data, editable by a DBA.
-- parameters: array of {name, type, required, description, enum?}.
CREATE TABLE mana_ai.tools (
    name         text    PRIMARY KEY,
    module       text    NOT NULL,
    description  text    NOT NULL,
    parameters   jsonb   NOT NULL DEFAULT '[]',
    shipped      boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE mana_ai.tools IS
    'Tools the planner may propose; rows with shipped = true come with the extension';
COMMENT ON COLUMN mana_ai.tools.shipped IS
    'true for the rows CREATE EXTENSION inserts; pg_dump keeps only the others';

-- The shipped rows are inserted by 55_tool_catalog.sql, after the
-- validating trigger exists (50_planner.sql).


-- Dumped by pg_dump: the audit trail and a DBA's own tools (SPEC 9).
SELECT pg_catalog.pg_extension_config_dump('mana_ai.decrypt_audit', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.decrypt_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.tools', 'WHERE NOT shipped');

-- ---- sql/install/10_projections.sql ----
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
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT s.id, s.user_id, s.record_id, s.op, s.data, s.field_timestamps, s.created_at,
       s.table_name = 'agents'
  FROM public.sync_changes s
 WHERE s.user_id = ANY (user_ids) AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents')
   AND s.created_at >= LEAST(missions_since, agents_since)
   AND s.created_at >= CASE s.table_name WHEN 'agents' THEN agents_since ELSE missions_since END
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

CREATE VIEW mana_ai.missions AS
SELECT s.user_id,
       s.mission_id,
       s.record ->> 'title'                                  AS title,
       s.record ->> 'objective'                              AS objective,
       s.record ->> 'state'                                  AS state,
       s.record -> 'cadence'                                 AS cadence,
       mana_ai.iso_timestamp(s.record ->> 'nextRunAt')       AS next_run_at,
       s.record ->> 'agentId'                                AS agent_id,
       coalesce(jsonb_typeof(s.record -> 'grant') = 'object', false) AS has_grant,
       CASE WHEN jsonb_typeof(s.record -> 'iterations') = 'array'
            THEN jsonb_array_length(s.record -> 'iterations') ELSE 0 END AS iteration_count,
       coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false) AS deleted,
       mana_ai.iso_timestamp(s.record ->> 'deletedAt')       AS deleted_at,
       (s.record ->> 'state') = 'active'
         AND NOT coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false)
         AND coalesce(mana_ai.iso_timestamp(s.record ->> 'nextRunAt') <= now(), false) AS due,
       mana_ai.iso_timestamp(s.record ->> 'createdAt')       AS created_at,
       mana_ai.iso_timestamp(s.record ->> 'updatedAt')       AS updated_at,
       s.last_applied_at,
       s.updated_at                                          AS snapshot_updated_at,
       s.record
  FROM mana_ai.mission_snapshots s;
COMMENT ON VIEW mana_ai.missions IS
    'Every mission snapshot with typed columns; soft-deleted missions show deleted = true';

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
       s.record ->> 'role'                                   AS role,
       coalesce(s.record ->> 'state', 'active')              AS state,
       s.record -> 'policy'                                  AS policy,
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
       s.updated_at                                          AS snapshot_updated_at,
       s.record
  FROM mana_ai.agent_snapshots s;
COMMENT ON VIEW mana_ai.agents IS
    'Every agent snapshot with typed columns; state defaults to active, max_concurrent_missions to 1';

-- ---- sql/install/20_llm.sql ----
-- 20_llm.sql: the LLM client's diagnostic entry point (SPEC 8).

-- Sends the same prompt `copies` times at once through the planner's LLM
-- client, with the server's mana_ai.llm_* settings, and returns one object
-- per call: {ok, http_status, attempts, seconds, total_tokens, content,
-- error}.  Never returns the bearer key.  Honours query cancel: every call
-- still in flight is aborted within a second.  Operators only: it makes
-- the server open connections to mana_ai.llm_url.
CREATE FUNCTION mana_ai.llm_test_call(system text, user_message text, copies int DEFAULT 1)
RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'mana_ai_llm_test_call';
COMMENT ON FUNCTION mana_ai.llm_test_call(text, text, int) IS
    'Send a prompt to the configured LLM endpoint copies times concurrently; per-call results, never the key';
REVOKE ALL ON FUNCTION mana_ai.llm_test_call(text, text, int) FROM PUBLIC;

-- ---- sql/install/30_crypto.sql ----
-- 30_crypto.sql: mission grants, field decryption, the decrypt audit
-- (SPEC 5, 6, 9).  mana_ai.decrypt_audit itself is in 00_schema.sql.
-- None of these functions is executable by PUBLIC (99_privileges.sql).

CREATE FUNCTION mana_ai.grant_status("grant" jsonb) RETURNS text
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'mana_ai_grant_status';
COMMENT ON FUNCTION mana_ai.grant_status(jsonb) IS
    'Unwrap outcome of a mission grant: ok, not-configured, expired, malformed or wrap-rejected (the key never leaves C)';

CREATE FUNCTION mana_ai.derive_mission_key(master_key bytea, derivation jsonb) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_derive_mission_key';
COMMENT ON FUNCTION mana_ai.derive_mission_key(bytea, jsonb) IS
    'HKDF-SHA-256 Mission Data Key of SPEC 5.2 (v1; 32-byte master key), for parity tests and tooling';

CREATE FUNCTION mana_ai.decrypt_input(user_id text, mission_id text, module text,
                                      table_name text, record_id text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_decrypt_input';
COMMENT ON FUNCTION mana_ai.decrypt_input(text, text, text, text, text) IS
    'One encrypted input decrypted under its mission''s grant, with exactly one decrypt_audit row; NULL when refused';

CREATE FUNCTION mana_ai.audit_decrypt(user_id text, mission_id text, iteration_id text,
                                      table_name text, record_id text, status text,
                                      reason text DEFAULT NULL) RETURNS bigint
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_audit_decrypt';
COMMENT ON FUNCTION mana_ai.audit_decrypt(text, text, text, text, text, text, text) IS
    'Append one decrypt_audit row (status ok, failed or scope-violation) under the row user''s scope; returns its id';

-- SECURITY DEFINER so that the application's role may call it without
-- SELECT on the table; the explicit user filter keeps it scoped even when
-- the owner is a superuser (who is not subject to row-level security).
-- It trusts app.current_user_id, so it is granted to nobody by default.
CREATE FUNCTION mana_ai.read_decrypt_audit(mission_id text DEFAULT NULL, max_rows int DEFAULT 200)
    RETURNS SETOF mana_ai.decrypt_audit
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := current_setting('app.current_user_id', true);
BEGIN
    IF me IS NULL OR me = '' THEN
        RAISE EXCEPTION 'app.current_user_id is not set'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The decrypt audit is read per user.',
                  HINT = 'Run SELECT set_config(''app.current_user_id'', ''<user id>'', true) in the same transaction first.';
    END IF;
    IF max_rows IS NOT NULL AND max_rows < 0 THEN
        RAISE EXCEPTION 'max_rows must not be negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        SELECT a.*
          FROM mana_ai.decrypt_audit a
         WHERE a.user_id = me
           AND (read_decrypt_audit.mission_id IS NULL OR a.mission_id = read_decrypt_audit.mission_id)
         ORDER BY a.ts DESC, a.id DESC
         LIMIT least(coalesce(max_rows, 200), 1000);
END
$$;
COMMENT ON FUNCTION mana_ai.read_decrypt_audit(text, int) IS
    'The current app.current_user_id''s decrypt audit rows, newest first, at most 1000';

CREATE FUNCTION mana_ai.resolve_inputs(user_id text, mission_id text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_resolve_inputs_sql';
COMMENT ON FUNCTION mana_ai.resolve_inputs(text, text) IS
    'Diagnostic: the mission''s inputs as the planner would see them, [{module, table, title, content}] (decrypts and audits)';

-- ---- sql/install/40_schedule.sql ----
-- 40_schedule.sql: when a mission runs next (SPEC 1.2 cadences, 4.9).
-- Pure functions of their arguments (and of mana_ai.timezone): they read
-- no table, so they are meant to stay executable by everyone.

CREATE FUNCTION mana_ai.next_run_at(cadence jsonb, from_ts timestamptz)
RETURNS timestamptz
LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'mana_ai_next_run_at_sql';
COMMENT ON FUNCTION mana_ai.next_run_at(jsonb, timestamptz) IS
    'Next slot strictly after from_ts for a mission cadence (manual: NULL); daily, weekly and cron in mana_ai.timezone';

CREATE FUNCTION mana_ai.next_run_at_in(cadence jsonb, from_ts timestamptz, zone text)
RETURNS timestamptz
LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'mana_ai_next_run_at_in_sql';
COMMENT ON FUNCTION mana_ai.next_run_at_in(jsonb, timestamptz, text) IS
    'next_run_at evaluated in an explicit time zone (mana_ai.timezone can only be set in the server configuration)';

-- ---- sql/install/50_planner.sql ----
-- 50_planner.sql: the planner's SQL surface (SPEC 7): validation of the
-- tool catalog on write, the strict parser and the prompt renderer.
-- mana_ai.tools itself is created (and seeded) in 00_schema.sql.

-- ---------------------------------------------------------------------
-- Tool catalog validation.  The catalog is data a DBA edits, and the
-- planner shows it to the LLM verbatim, so a row is checked on every
-- INSERT and UPDATE: a name the LLM can repeat exactly, and parameters
-- the tools protocol can turn into a JSON Schema (the same C check).  The trigger words each refusal with a hint; the
-- CHECK constraints stay as a backstop should the trigger be disabled.
-- ---------------------------------------------------------------------

ALTER TABLE mana_ai.tools
    ADD CONSTRAINT tools_name_format
        CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD CONSTRAINT tools_module_not_empty
        CHECK (module ~ '^[a-z][a-zA-Z0-9_-]{0,62}$'),
    ADD CONSTRAINT tools_description_not_empty
        CHECK (btrim(description) <> '');

CREATE FUNCTION mana_ai.tool_parameters_error(parameters jsonb) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'mana_ai_tool_parameters_error';
COMMENT ON FUNCTION mana_ai.tool_parameters_error(jsonb) IS
    'Why a parameter list cannot become the JSON Schema of a tools-protocol function (NULL: it can)';

CREATE FUNCTION mana_ai.tools_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    problem text;
BEGIN
    IF NEW.name IS NULL OR NEW.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tool name "%"', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'A tool name is lower-case snake_case of 1 to 63 characters, such as create_task.';
    END IF;
    IF NEW.module IS NULL OR NEW.module !~ '^[a-z][a-zA-Z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid module "%" for tool "%"', NEW.module, NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'A module is the app name the tool writes to, such as todo or calendar.';
    END IF;
    IF NEW.description IS NULL OR btrim(NEW.description) = '' THEN
        RAISE EXCEPTION 'tool "%" needs a description', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'The planner shows the description to the LLM; say what the tool does.';
    END IF;
    IF NEW.parameters IS NULL THEN
        RAISE EXCEPTION 'parameters of tool "%" must be a JSON array', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'Use [] for a tool without parameters, or [{"name": ..., "type": ..., "required": ..., "description": ...}].';
    END IF;

    -- The one rule set of the tools protocol (src/core/tool_schema.c): a
    -- list it cannot turn into a JSON Schema is refused here, not when a
    -- tick offers the tool.
    problem := mana_ai.tool_parameters_error(NEW.parameters);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid parameters for tool "%": %', NEW.name, problem
            USING ERRCODE = 'check_violation',
                  HINT = 'parameters is [] or [{"name": "dueDate", "type": "string", "required": false, "description": "...", "enum": [...]}]: name an identifier other than rationale, type one of string, number, integer, boolean, array, object; required, description and enum optional.';
    END IF;

    -- The primary key is the real guard (also between concurrent
    -- writers); this check only words the common case with a hint.
    IF EXISTS (SELECT 1 FROM mana_ai.tools t
                WHERE t.name = NEW.name
                  AND (TG_OP = 'INSERT' OR t.name IS DISTINCT FROM OLD.name)) THEN
        RAISE EXCEPTION 'tool "%" already exists', NEW.name
            USING ERRCODE = 'unique_violation',
                  HINT = 'Tool names are unique; UPDATE the existing row instead.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION mana_ai.tools_validate() IS
    'Refuses a mana_ai.tools row whose name, module or description is unusable or whose parameters cannot become a JSON Schema';

CREATE TRIGGER tools_validate
    BEFORE INSERT OR UPDATE ON mana_ai.tools
    FOR EACH ROW EXECUTE FUNCTION mana_ai.tools_validate();

-- ---------------------------------------------------------------------
-- Parser and prompt (SPEC 7.3, 7.4, 9).  No LLM call in any of them.
-- ---------------------------------------------------------------------

CREATE FUNCTION mana_ai.parse_plan(answer text) RETURNS jsonb
LANGUAGE c STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mana_ai_parse_plan';
COMMENT ON FUNCTION mana_ai.parse_plan(text) IS
    'Strict parse of an LLM answer against the full tool catalog: {ok:true, plan:{summary, steps}} or {ok:false, reason, step?, detail}';

CREATE FUNCTION mana_ai.parse_plan_for(answer text, agent jsonb) RETURNS jsonb
LANGUAGE c STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mana_ai_parse_plan_for_agent';
COMMENT ON FUNCTION mana_ai.parse_plan_for(text, jsonb) IS
    'parse_plan against the catalog filtered by the agent record''s policy (NULL agent: all tools)';

CREATE FUNCTION mana_ai.render_prompt(mission jsonb, agent jsonb DEFAULT NULL, inputs jsonb DEFAULT '[]')
RETURNS jsonb
LANGUAGE c STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mana_ai_render_prompt_sql';
COMMENT ON FUNCTION mana_ai.render_prompt(jsonb, jsonb, jsonb) IS
    'The planner prompt {system, user} for a mission record, an optional agent record and resolved inputs [{module, table, title, content}]';

-- ---- sql/install/55_tool_catalog.sql ----
-- 55_tool_catalog.sql: the product's propose tools (SPEC 7.1, issue 12),
-- 62 tools over 25 modules.  Generated by catalog/describe.py from
-- catalog/tool-catalog.json (the product's catalog) and its German
-- descriptions; regenerate, never edit by hand.  Parameter names are the
-- web app's: an approved proposal is executed by exactly these names.
-- Inserted after 50_planner.sql so the tools_validate trigger checks them.

INSERT INTO mana_ai.tools (name, module, description, parameters, shipped)
VALUES
('create_task', 'todo', 'Legt eine neue Aufgabe in der Todo-Liste an.', '[{"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "dueDate", "type": "string", "required": false, "description": "Fälligkeitsdatum (ISO-8601, YYYY-MM-DD)"}, {"name": "priority", "type": "string", "required": false, "description": "Priorität", "enum": ["low", "medium", "high"]}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}]', true),
('complete_task', 'todo', 'Hakt eine bestimmte offene Aufgabe als erledigt ab.', '[{"name": "taskId", "type": "string", "required": true, "description": "ID der Aufgabe"}]', true),
('complete_tasks_by_title', 'todo', 'Hakt alle offenen Aufgaben ab, deren Titel den Suchtext enthält.', '[{"name": "titleMatch", "type": "string", "required": true, "description": "Titel oder Titelteil der Aufgaben"}]', true),
('create_event', 'calendar', 'Trägt einen Termin mit Beginn und Ende in den Kalender ein.', '[{"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "startTime", "type": "string", "required": true, "description": "Beginn (ISO-8601 mit Zeitzone)"}, {"name": "endTime", "type": "string", "required": true, "description": "Ende (ISO-8601 mit Zeitzone)"}, {"name": "isAllDay", "type": "boolean", "required": false, "description": "Ganztägiger Termin"}, {"name": "location", "type": "string", "required": false, "description": "Ort"}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}]', true),
('create_note', 'notes', 'Schreibt eine neue Notiz.', '[{"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "content", "type": "string", "required": true, "description": "Inhalt der Notiz (Markdown erlaubt)"}]', true),
('update_note', 'notes', 'Ändert Titel oder Inhalt einer bestehenden Notiz.', '[{"name": "noteId", "type": "string", "required": true, "description": "ID der Notiz"}, {"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "content", "type": "string", "required": false, "description": "Neuer Inhalt der Notiz"}]', true),
('append_to_note', 'notes', 'Hängt Text an das Ende einer bestehenden Notiz an.', '[{"name": "noteId", "type": "string", "required": true, "description": "ID der Notiz"}, {"name": "content", "type": "string", "required": true, "description": "Anzuhängender Text"}]', true),
('add_tag_to_note', 'notes', 'Versieht eine Notiz mit einem Schlagwort.', '[{"name": "noteId", "type": "string", "required": true, "description": "ID der Notiz"}, {"name": "tag", "type": "string", "required": true, "description": "Schlagwort"}]', true),
('create_place', 'places', 'Speichert einen Ort mit Koordinaten in der Ortesammlung.', '[{"name": "name", "type": "string", "required": true, "description": "Name des Ortes"}, {"name": "latitude", "type": "number", "required": true, "description": "Breitengrad in Grad"}, {"name": "longitude", "type": "number", "required": true, "description": "Längengrad in Grad"}, {"name": "category", "type": "string", "required": false, "description": "Art des Ortes", "enum": ["home", "work", "food", "shopping", "sport", "culture", "nature", "transport", "health", "education", "nightlife", "other"]}, {"name": "address", "type": "string", "required": false, "description": "Postanschrift"}]', true),
('visit_place', 'places', 'Vermerkt, dass der Nutzer einen gespeicherten Ort besucht hat.', '[{"name": "placeId", "type": "string", "required": true, "description": "ID des Ortes"}]', true),
('undo_drink', 'drink', 'Nimmt den zuletzt erfassten Drink wieder aus dem Tagesprotokoll.', '[]', true),
('save_news_article', 'news', 'Legt einen Nachrichtenartikel in der Leseliste ab.', '[{"name": "url", "type": "string", "required": true, "description": "Adresse (URL)"}, {"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "summary", "type": "string", "required": false, "description": "Kurze Zusammenfassung"}]', true),
('save_article', 'articles', 'Speichert einen Artikel aus dem Netz zum späteren Lesen.', '[{"name": "url", "type": "string", "required": true, "description": "Adresse (URL)"}, {"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "reason", "type": "string", "required": false, "description": "Warum der Artikel lesenswert ist"}]', true),
('archive_article', 'articles', 'Verschiebt einen gelesenen Artikel ins Archiv.', '[{"name": "articleId", "type": "string", "required": true, "description": "ID des Artikels"}]', true),
('tag_article', 'articles', 'Versieht einen gespeicherten Artikel mit einem Schlagwort.', '[{"name": "articleId", "type": "string", "required": true, "description": "ID des Artikels"}, {"name": "tagName", "type": "string", "required": true, "description": "Schlagwort"}]', true),
('add_article_highlight', 'articles', 'Markiert eine Textstelle in einem Artikel, wahlweise mit Notiz.', '[{"name": "articleId", "type": "string", "required": true, "description": "ID des Artikels"}, {"name": "text", "type": "string", "required": true, "description": "Markierter Text"}, {"name": "color", "type": "string", "required": false, "description": "Farbe der Markierung", "enum": ["yellow", "green", "blue", "pink"]}, {"name": "note", "type": "string", "required": false, "description": "Notiz"}]', true),
('research_news', 'news-research', 'Sucht aktuelle Nachrichten zu einem Thema zusammen.', '[{"name": "query", "type": "string", "required": true, "description": "Suchbegriff oder Thema"}, {"name": "language", "type": "string", "required": false, "description": "Sprache (ISO-639-1, z. B. de)"}, {"name": "limit", "type": "number", "required": false, "description": "Höchstzahl der Treffer"}]', true),
('create_journal_entry', 'journal', 'Schreibt einen Tagebucheintrag, wahlweise mit Stimmung.', '[{"name": "content", "type": "string", "required": true, "description": "Text des Eintrags"}, {"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "mood", "type": "string", "required": false, "description": "Stimmung des Tages", "enum": ["dankbar", "glücklich", "zufrieden", "neutral", "nachdenklich", "traurig", "gestresst", "wütend"]}]', true),
('create_habit', 'habits', 'Legt eine neue Gewohnheit an, die der Nutzer täglich abhaken kann.', '[{"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "icon", "type": "string", "required": true, "description": "Symbol (Emoji oder Icon-Name)"}, {"name": "color", "type": "string", "required": true, "description": "Farbe als Hex-Wert, z. B. #4caf50"}]', true),
('log_habit', 'habits', 'Hakt eine Gewohnheit für heute ab.', '[{"name": "habitId", "type": "string", "required": true, "description": "ID der Gewohnheit"}, {"name": "note", "type": "string", "required": false, "description": "Notiz zum heutigen Eintrag"}]', true),
('create_goal', 'goals', 'Setzt ein neues Ziel, aus einer Vorlage oder frei beschrieben.', '[{"name": "templateId", "type": "string", "required": false, "description": "ID einer Zielvorlage; ohne sie beschreiben title und targetValue das Ziel"}, {"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}, {"name": "targetValue", "type": "number", "required": false, "description": "Zielwert"}, {"name": "period", "type": "string", "required": false, "description": "Zeitraum, in dem das Ziel gilt", "enum": ["day", "week", "month"]}, {"name": "comparison", "type": "string", "required": false, "description": "Ziel erreicht bei mindestens (gte) oder höchstens (lte) dem Zielwert", "enum": ["gte", "lte"]}, {"name": "eventType", "type": "string", "required": false, "description": "Ereignisart, die auf das Ziel einzahlt"}, {"name": "moduleId", "type": "string", "required": false, "description": "Modul, aus dem die Ereignisse kommen"}]', true),
('pause_goal', 'goals', 'Pausiert ein laufendes Ziel, ohne den Fortschritt zu verlieren.', '[{"name": "goalId", "type": "string", "required": true, "description": "ID des Ziels"}]', true),
('resume_goal', 'goals', 'Setzt ein pausiertes Ziel fort.', '[{"name": "goalId", "type": "string", "required": true, "description": "ID des Ziels"}]', true),
('complete_goal', 'goals', 'Schließt ein Ziel als erreicht ab.', '[{"name": "goalId", "type": "string", "required": true, "description": "ID des Ziels"}]', true),
('create_contact', 'contacts', 'Legt einen neuen Kontakt im Adressbuch an.', '[{"name": "firstName", "type": "string", "required": true, "description": "Vorname"}, {"name": "lastName", "type": "string", "required": false, "description": "Nachname"}, {"name": "email", "type": "string", "required": false, "description": "E-Mail-Adresse"}, {"name": "phone", "type": "string", "required": false, "description": "Telefonnummer"}, {"name": "company", "type": "string", "required": false, "description": "Firma"}, {"name": "notes", "type": "string", "required": false, "description": "Notizen zum Kontakt"}]', true),
('log_mood', 'mood', 'Hält die aktuelle Stimmung mit Stärke und Gefühl fest.', '[{"name": "level", "type": "number", "required": true, "description": "Stärke der Stimmung von 1 (sehr schlecht) bis 10 (sehr gut)"}, {"name": "emotion", "type": "string", "required": true, "description": "Vorherrschendes Gefühl", "enum": ["happy", "calm", "energized", "grateful", "excited", "loved", "hopeful", "neutral", "bored", "tired", "sad", "anxious", "angry", "stressed", "frustrated", "overwhelmed"]}, {"name": "activity", "type": "string", "required": false, "description": "Was der Nutzer gerade tut", "enum": ["work", "exercise", "social", "alone", "commute", "eating", "resting", "creative", "outdoors", "screen", "chores", "other"]}, {"name": "notes", "type": "string", "required": false, "description": "Notizen"}]', true),
('add_transaction', 'finance', 'Bucht eine Einnahme oder Ausgabe im Haushaltsbuch.', '[{"name": "type", "type": "string", "required": true, "description": "Einnahme oder Ausgabe", "enum": ["income", "expense"]}, {"name": "amount", "type": "number", "required": true, "description": "Betrag in der Landeswährung"}, {"name": "description", "type": "string", "required": true, "description": "Wofür das Geld war"}, {"name": "date", "type": "string", "required": false, "description": "Buchungsdatum (ISO-8601, YYYY-MM-DD)"}]', true),
('start_timer', 'times', 'Startet die Zeiterfassung, wahlweise für ein Projekt.', '[{"name": "description", "type": "string", "required": false, "description": "Beschreibung"}, {"name": "projectId", "type": "string", "required": false, "description": "ID des Projekts"}]', true),
('stop_timer', 'times', 'Hält die laufende Zeiterfassung an.', '[]', true),
('suggest_event', 'events', 'Schlägt dem Nutzer eine gefundene Veranstaltung vor.', '[{"name": "discovered_event_id", "type": "string", "required": true, "description": "ID der gefundenen Veranstaltung"}, {"name": "reason", "type": "string", "required": false, "description": "Warum das für den Nutzer interessant ist"}]', true),
('create_quiz', 'quiz', 'Legt ein neues Quiz an.', '[{"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}, {"name": "category", "type": "string", "required": false, "description": "Themengebiet"}]', true),
('update_quiz', 'quiz', 'Ändert Titel, Beschreibung oder Status eines Quiz.', '[{"name": "quizId", "type": "string", "required": true, "description": "ID des Quiz"}, {"name": "title", "type": "string", "required": false, "description": "Titel"}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}, {"name": "category", "type": "string", "required": false, "description": "Themengebiet"}, {"name": "isPinned", "type": "boolean", "required": false, "description": "Quiz oben anheften"}, {"name": "isArchived", "type": "boolean", "required": false, "description": "Quiz archivieren"}]', true),
('add_quiz_question', 'quiz', 'Fügt einem Quiz eine Frage mit Antwortmöglichkeiten hinzu.', '[{"name": "quizId", "type": "string", "required": true, "description": "ID des Quiz"}, {"name": "type", "type": "string", "required": true, "description": "Fragetyp", "enum": ["single", "multi", "truefalse", "text"]}, {"name": "questionText", "type": "string", "required": true, "description": "Fragetext"}, {"name": "optionsJson", "type": "string", "required": true, "description": "Antwortmöglichkeiten als JSON-Text"}, {"name": "explanation", "type": "string", "required": false, "description": "Erklärung der richtigen Antwort"}]', true),
('update_quiz_question', 'quiz', 'Ändert eine bestehende Quizfrage.', '[{"name": "questionId", "type": "string", "required": true, "description": "ID der Frage"}, {"name": "questionText", "type": "string", "required": false, "description": "Fragetext"}, {"name": "type", "type": "string", "required": false, "description": "Fragetyp", "enum": ["single", "multi", "truefalse", "text"]}, {"name": "optionsJson", "type": "string", "required": false, "description": "Antwortmöglichkeiten als JSON-Text"}, {"name": "explanation", "type": "string", "required": false, "description": "Erklärung der richtigen Antwort"}]', true),
('delete_quiz_question', 'quiz', 'Entfernt eine Frage aus einem Quiz.', '[{"name": "questionId", "type": "string", "required": true, "description": "ID der Frage"}]', true),
('create_invoice', 'invoices', 'Erstellt einen Rechnungsentwurf mit Positionen für einen Kunden.', '[{"name": "clientName", "type": "string", "required": true, "description": "Name des Kunden"}, {"name": "clientEmail", "type": "string", "required": false, "description": "E-Mail-Adresse des Kunden"}, {"name": "clientAddress", "type": "string", "required": false, "description": "Anschrift des Kunden"}, {"name": "subject", "type": "string", "required": false, "description": "Betreff"}, {"name": "currency", "type": "string", "required": false, "description": "Währung", "enum": ["CHF", "EUR", "USD"]}, {"name": "dueDate", "type": "string", "required": false, "description": "Fälligkeitsdatum (ISO-8601, YYYY-MM-DD)"}, {"name": "lines", "type": "array", "required": true, "description": "Rechnungspositionen: Liste von {description, quantity, unitPrice}"}]', true),
('mark_invoice_paid', 'invoices', 'Vermerkt eine Rechnung als bezahlt.', '[{"name": "invoiceId", "type": "string", "required": true, "description": "ID der Rechnung"}, {"name": "paidAt", "type": "string", "required": false, "description": "Zahlungsdatum (ISO-8601)"}]', true),
('create_library_entry', 'library', 'Nimmt ein Buch, einen Film, eine Serie oder einen Comic in die Bibliothek auf.', '[{"name": "kind", "type": "string", "required": true, "description": "Art des Werks", "enum": ["book", "movie", "series", "comic"]}, {"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "creators", "type": "string", "required": false, "description": "Autorinnen, Regie oder Zeichner, kommagetrennt"}, {"name": "year", "type": "number", "required": false, "description": "Erscheinungsjahr"}, {"name": "status", "type": "string", "required": false, "description": "Lesestand oder Schaustand", "enum": ["planned", "active", "completed", "paused", "dropped"]}, {"name": "rating", "type": "number", "required": false, "description": "Bewertung von 1 bis 5"}, {"name": "tags", "type": "string", "required": false, "description": "Schlagwörter, kommagetrennt"}, {"name": "genres", "type": "string", "required": false, "description": "Genres, kommagetrennt"}]', true),
('update_library_entry_status', 'library', 'Ändert den Lesestand oder Schaustand eines Bibliothekseintrags.', '[{"name": "entryId", "type": "string", "required": true, "description": "ID des Eintrags"}, {"name": "status", "type": "string", "required": true, "description": "Neuer Lesestand oder Schaustand", "enum": ["planned", "active", "completed", "paused", "dropped"]}]', true),
('rate_library_entry', 'library', 'Bewertet einen Eintrag der Bibliothek.', '[{"name": "entryId", "type": "string", "required": true, "description": "ID des Eintrags"}, {"name": "rating", "type": "number", "required": true, "description": "Bewertung von 1 bis 5"}]', true),
('create_campaign_draft', 'broadcast', 'Entwirft eine E-Mail-Kampagne, die der Nutzer vor dem Versand prüft.', '[{"name": "name", "type": "string", "required": true, "description": "Interner Name der Kampagne"}, {"name": "subject", "type": "string", "required": true, "description": "Betreff"}, {"name": "preheader", "type": "string", "required": false, "description": "Vorschautext im Posteingang"}, {"name": "htmlContent", "type": "string", "required": true, "description": "Inhalt der E-Mail als HTML"}]', true),
('create_website', 'website', 'Legt eine neue, leere Website an.', '[{"name": "name", "type": "string", "required": true, "description": "Name der Website"}, {"name": "slug", "type": "string", "required": true, "description": "Kurzname in der Adresse der Website"}]', true),
('apply_website_template', 'website', 'Erstellt eine Website aus einer Vorlage.', '[{"name": "templateId", "type": "string", "required": true, "description": "Vorlage der Website", "enum": ["portfolio", "personal-linktree", "event", "blank"]}, {"name": "name", "type": "string", "required": true, "description": "Name der Website"}, {"name": "slug", "type": "string", "required": true, "description": "Kurzname in der Adresse der Website"}]', true),
('create_website_page', 'website', 'Fügt einer Website eine neue Seite hinzu.', '[{"name": "siteId", "type": "string", "required": true, "description": "ID der Website"}, {"name": "path", "type": "string", "required": true, "description": "Pfad der Seite, z. B. /ueber-mich"}, {"name": "title", "type": "string", "required": true, "description": "Titel"}]', true),
('add_website_block', 'website', 'Setzt einen Inhaltsblock auf eine Seite der Website.', '[{"name": "pageId", "type": "string", "required": true, "description": "ID der Seite"}, {"name": "type", "type": "string", "required": true, "description": "Blocktyp", "enum": ["hero", "richText", "cta", "image", "gallery", "faq", "form", "moduleEmbed", "columns", "spacer"]}, {"name": "props", "type": "object", "required": false, "description": "Eigenschaften des Blocks"}, {"name": "parentBlockId", "type": "string", "required": false, "description": "ID des umgebenden Blocks"}, {"name": "slotKey", "type": "string", "required": false, "description": "Platz im umgebenden Block"}]', true),
('update_website_block', 'website', 'Ändert die Eigenschaften eines Inhaltsblocks.', '[{"name": "blockId", "type": "string", "required": true, "description": "ID des Inhaltsblocks"}, {"name": "patch", "type": "object", "required": true, "description": "Zu ändernde Eigenschaften des Blocks"}]', true),
('publish_website', 'website', 'Veröffentlicht den aktuellen Stand einer Website.', '[{"name": "siteId", "type": "string", "required": true, "description": "ID der Website"}]', true),
('create_draft', 'writing', 'Legt einen Schreibentwurf mit Thema, Zielgruppe und Ton an.', '[{"name": "kind", "type": "string", "required": true, "description": "Textsorte", "enum": ["blog", "essay", "email", "social", "story", "letter", "speech", "cover-letter", "product-description", "press-release", "bio", "other"]}, {"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "topic", "type": "string", "required": true, "description": "Thema"}, {"name": "audience", "type": "string", "required": false, "description": "Zielgruppe des Textes"}, {"name": "tone", "type": "string", "required": false, "description": "Ton des Textes"}, {"name": "language", "type": "string", "required": false, "description": "Sprache des Textes (ISO-639-1)"}, {"name": "targetWords", "type": "number", "required": false, "description": "Gewünschte Länge in Wörtern"}, {"name": "styleId", "type": "string", "required": false, "description": "ID eines gespeicherten Schreibstils"}, {"name": "extraInstructions", "type": "string", "required": false, "description": "Weitere Anweisungen an den Schreibassistenten"}]', true),
('generate_draft_content', 'writing', 'Lässt den Text eines Schreibentwurfs ausformulieren.', '[{"name": "draftId", "type": "string", "required": true, "description": "ID des Entwurfs"}]', true),
('refine_draft_selection', 'writing', 'Überarbeitet einen markierten Abschnitt eines Entwurfs.', '[{"name": "draftId", "type": "string", "required": true, "description": "ID des Entwurfs"}, {"name": "operation", "type": "string", "required": true, "description": "Art der Überarbeitung", "enum": ["shorten", "expand", "tone", "rewrite", "translate"]}, {"name": "selectionStart", "type": "number", "required": true, "description": "Anfang der Markierung (Zeichenposition)"}, {"name": "selectionEnd", "type": "number", "required": true, "description": "Ende der Markierung (Zeichenposition)"}, {"name": "targetTone", "type": "string", "required": false, "description": "Gewünschter Ton"}, {"name": "instruction", "type": "string", "required": false, "description": "Freie Anweisung zur Überarbeitung"}, {"name": "targetLanguage", "type": "string", "required": false, "description": "Zielsprache beim Übersetzen"}]', true),
('set_draft_status', 'writing', 'Setzt den Bearbeitungsstand eines Entwurfs.', '[{"name": "draftId", "type": "string", "required": true, "description": "ID des Entwurfs"}, {"name": "status", "type": "string", "required": true, "description": "Neuer Bearbeitungsstand", "enum": ["draft", "refining", "complete", "published"]}]', true),
('save_draft_as_article', 'writing', 'Übernimmt einen fertigen Entwurf als Artikel.', '[{"name": "draftId", "type": "string", "required": true, "description": "ID des Entwurfs"}]', true),
('create_comic_story', 'comic', 'Beginnt eine neue Comic-Geschichte in einem Zeichenstil.', '[{"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "style", "type": "string", "required": true, "description": "Zeichenstil", "enum": ["comic", "manga", "cartoon", "graphic-novel", "webtoon"]}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}, {"name": "storyContext", "type": "string", "required": false, "description": "Hintergrund der Geschichte"}, {"name": "tags", "type": "string", "required": false, "description": "Schlagwörter, kommagetrennt"}]', true),
('generate_comic_panel', 'comic', 'Zeichnet ein neues Bild für eine Comic-Geschichte.', '[{"name": "storyId", "type": "string", "required": true, "description": "ID der Comic-Geschichte"}, {"name": "panelPrompt", "type": "string", "required": true, "description": "Was auf dem Bild zu sehen ist"}, {"name": "caption", "type": "string", "required": false, "description": "Bildunterschrift"}, {"name": "dialogue", "type": "string", "required": false, "description": "Sprechblasentext"}, {"name": "quality", "type": "string", "required": false, "description": "Bildqualität", "enum": ["low", "medium", "high"]}, {"name": "model", "type": "string", "required": false, "description": "Bildmodell", "enum": ["openai/gpt-image-2", "google/gemini-3-pro-image-preview", "google/gemini-3.1-flash-image-preview"]}]', true),
('create_comic_character', 'comic', 'Legt eine neue Comicfigur an.', '[{"name": "name", "type": "string", "required": true, "description": "Name der Figur"}, {"name": "style", "type": "string", "required": true, "description": "Zeichenstil", "enum": ["comic", "manga", "cartoon", "graphic-novel", "webtoon"]}, {"name": "addPrompt", "type": "string", "required": false, "description": "Zusätzliche Zeichenanweisung für die Figur"}, {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}, {"name": "tags", "type": "string", "required": false, "description": "Schlagwörter, kommagetrennt"}]', true),
('generate_character_variant', 'comic', 'Zeichnet neue Varianten einer Comicfigur.', '[{"name": "characterId", "type": "string", "required": true, "description": "ID der Comicfigur"}, {"name": "count", "type": "number", "required": false, "description": "Anzahl der Varianten (1 bis 4)"}, {"name": "quality", "type": "string", "required": false, "description": "Bildqualität", "enum": ["low", "medium", "high"]}, {"name": "model", "type": "string", "required": false, "description": "Bildmodell", "enum": ["openai/gpt-image-2", "google/gemini-3-pro-image-preview", "google/gemini-3.1-flash-image-preview"]}]', true),
('pin_character_variant', 'comic', 'Legt eine Variante als maßgebliches Aussehen der Figur fest.', '[{"name": "characterId", "type": "string", "required": true, "description": "ID der Comicfigur"}, {"name": "variantMediaId", "type": "string", "required": true, "description": "ID des Varianten-Bildes"}]', true),
('capture_sign', 'augur', 'Hält ein Omen, eine Weissagung oder eine Ahnung fest, um sie später zu prüfen.', '[{"name": "kind", "type": "string", "required": true, "description": "Art des Zeichens", "enum": ["omen", "fortune", "hunch"]}, {"name": "source", "type": "string", "required": true, "description": "Woher das Zeichen kommt"}, {"name": "claim", "type": "string", "required": true, "description": "Was das Zeichen vorhersagt"}, {"name": "sourceCategory", "type": "string", "required": false, "description": "Art der Quelle", "enum": ["gut", "tarot", "horoscope", "fortune-cookie", "iching", "dream", "person", "media", "natural", "other"]}, {"name": "vibe", "type": "string", "required": false, "description": "Stimmung des Zeichens", "enum": ["good", "bad", "mysterious"]}, {"name": "feltMeaning", "type": "string", "required": false, "description": "Was das Zeichen für den Nutzer bedeutet"}, {"name": "expectedOutcome", "type": "string", "required": false, "description": "Was eintreten soll"}, {"name": "expectedBy", "type": "string", "required": false, "description": "Bis wann es eintreten soll (ISO-8601)"}, {"name": "probability", "type": "number", "required": false, "description": "Geschätzte Wahrscheinlichkeit von 0 bis 1"}, {"name": "tags", "type": "string", "required": false, "description": "Schlagwörter, kommagetrennt"}]', true),
('resolve_sign', 'augur', 'Vermerkt, ob sich ein festgehaltenes Zeichen erfüllt hat.', '[{"name": "entryId", "type": "string", "required": true, "description": "ID des Eintrags"}, {"name": "outcome", "type": "string", "required": true, "description": "Wie es ausging", "enum": ["fulfilled", "partly", "not-fulfilled"]}, {"name": "note", "type": "string", "required": false, "description": "Notiz zum Ausgang"}]', true),
('create_last', 'lasts', 'Hält ein "letztes Mal" fest, das dem Nutzer wichtig ist.', '[{"name": "title", "type": "string", "required": true, "description": "Titel"}, {"name": "category", "type": "string", "required": false, "description": "Lebensbereich", "enum": ["culinary", "adventure", "travel", "people", "career", "creative", "nature", "culture", "health", "tech", "other"]}, {"name": "status", "type": "string", "required": false, "description": "Vermutet oder bestätigt", "enum": ["suspected", "confirmed"]}, {"name": "date", "type": "string", "required": false, "description": "Wann es das letzte Mal war (ISO-8601)"}, {"name": "confidence", "type": "string", "required": false, "description": "Wie sicher es das letzte Mal war", "enum": ["probably", "likely", "certain"]}, {"name": "meaning", "type": "string", "required": false, "description": "Was dieses letzte Mal bedeutet"}, {"name": "note", "type": "string", "required": false, "description": "Notiz"}]', true),
('confirm_last', 'lasts', 'Bestätigt ein vermutetes letztes Mal und hält fest, was es bedeutet.', '[{"name": "lastId", "type": "string", "required": true, "description": "ID des letzten Mals"}, {"name": "date", "type": "string", "required": false, "description": "Wann es das letzte Mal war (ISO-8601)"}, {"name": "meaning", "type": "string", "required": false, "description": "Was dieses letzte Mal bedeutet"}, {"name": "whatIKnewThen", "type": "string", "required": false, "description": "Was der Nutzer damals wusste"}, {"name": "whatIKnowNow", "type": "string", "required": false, "description": "Was der Nutzer heute weiß"}, {"name": "tenderness", "type": "number", "required": false, "description": "Wie zärtlich die Erinnerung ist, von 1 bis 5"}, {"name": "wouldReclaim", "type": "string", "required": false, "description": "Ob der Nutzer es zurückholen würde", "enum": ["no", "maybe", "yes"]}]', true),
('reclaim_last', 'lasts', 'Vermerkt, dass der Nutzer etwas wieder aufgenommen hat.', '[{"name": "lastId", "type": "string", "required": true, "description": "ID des letzten Mals"}, {"name": "reclaimedNote", "type": "string", "required": false, "description": "Wie es dazu kam"}]', true);

-- ---- sql/install/60_tick.sql ----
-- 60_tick.sql: the tick (SPEC 4): its own retry state, token ledger,
-- the iteration shape it writes back, and the entry points.

-- Retries with backoff per due slot (SPEC 4.10), kept here rather than in
-- the user's log so a failing mission never hammers the LLM every tick.
CREATE TABLE mana_ai.mission_attempts (
    user_id          text        NOT NULL,
    mission_id       text        NOT NULL,
    slot             text        NOT NULL,   -- the nextRunAt being planned
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, mission_id)
);
COMMENT ON TABLE mana_ai.mission_attempts IS
    'Consecutive planner failures of a mission''s current due slot and when to try again';

-- Tokens spent per agent, for the 24 h budget gate (SPEC 4.4).
CREATE TABLE mana_ai.token_usage (
    user_id     text        NOT NULL,
    agent_id    text        NOT NULL,
    mission_id  text        NOT NULL,
    tokens      bigint      NOT NULL CHECK (tokens >= 0),
    ts          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_usage_agent_ts_idx ON mana_ai.token_usage (user_id, agent_id, ts);
COMMENT ON TABLE mana_ai.token_usage IS
    'usage.total_tokens per planner call, kept 24 h for maxTokensPerDay';

-- The ISO-8601 form the web app writes (JavaScript toISOString):
-- to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), NULL for
-- an infinite ts.  In C: as SQL it could not be inlined (to_char is only
-- stable), so every call went through fmgr_sql, twice per write-back.
CREATE FUNCTION mana_ai.iso_text(ts timestamptz) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_iso_text';

-- A server iteration (SPEC 1.3) from a parsed plan ({summary, steps}) or,
-- when error is given ({name, message, phase}), a failed one.  In C (it
-- used to be a SQL function, parsed and planned again for every mission
-- written back); tests/pgtap/build_iteration.sql pins its output.
CREATE FUNCTION mana_ai.build_iteration(iteration_id text, started_at timestamptz,
                                        finished_at timestamptz, plan jsonb, error jsonb)
    RETURNS jsonb
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_build_iteration';

CREATE FUNCTION mana_ai.tick() RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_tick_sql';
COMMENT ON FUNCTION mana_ai.tick() IS
    'One tick (SPEC 4) in the calling transaction; the worker runs the same code';

-- SPEC 9: callable as written with the default search_path.
CREATE FUNCTION public.mana_ai_tick() RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_tick_sql';
COMMENT ON FUNCTION public.mana_ai_tick() IS
    'One tick of the mana_ai runner: {scannedAt, dueMissionCount, plansProduced, plansWrittenBack, parseFailures, errors[]}';
REVOKE ALL ON FUNCTION public.mana_ai_tick() FROM PUBLIC;

CREATE FUNCTION mana_ai.build_prompt(user_id text, mission_id text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_build_prompt';
COMMENT ON FUNCTION mana_ai.build_prompt(text, text) IS
    'The {system, user} messages the planner would send for this mission (grant unwrapped, inputs resolved); no LLM call';

-- Retention of the audit trail.  SECURITY DEFINER so the worker's role,
-- which does not bypass row-level security, can reach every user's old
-- rows; the append-only guard still refuses it unless the worker's own
-- retention code (C, same process) has lifted it for this call.
CREATE FUNCTION mana_ai.purge_decrypt_audit(keep_minutes int) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM mana_ai.decrypt_audit
         WHERE ts < now() - make_interval(mins => keep_minutes)
        RETURNING 1)
    SELECT count(*) FROM gone;
END;
REVOKE ALL ON FUNCTION mana_ai.purge_decrypt_audit(int) FROM PUBLIC;

-- ---- sql/install/65_mission_runs.sql ----
-- 65_mission_runs.sql: "why did my mission not run?" (issue 13).  One row
-- per mission a tick considered, as pg_cron's job_run_details is for jobs.
-- Written once per tick by the worker's tick through
-- mana_ai.record_mission_runs(); kept mana_ai.mission_runs_retention.
-- Holds decisions, ids, counts and the error the iteration already shows:
-- never a key, never decrypted text.

CREATE TABLE mana_ai.mission_runs (
    id              bigserial   PRIMARY KEY,
    tick_id         bigint      NOT NULL,
    user_id         text        NOT NULL CHECK (user_id <> ''),
    mission_id      text        NOT NULL,
    agent_id        text        NOT NULL,
    slot            text,                     -- the nextRunAt the tick considered
    decision        text        NOT NULL CHECK (decision IN
                        ('ran', 'skipped-paused', 'skipped-archived', 'skipped-deleted',
                         'skipped-concurrency', 'skipped-budget', 'backing-off', 'failed')),
    iteration_id    text,
    model           text,
    tokens          bigint      CHECK (tokens >= 0),
    planner_ms      double precision CHECK (planner_ms >= 0),
    error_phase     text,
    error_message   text,
    ts              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mana_ai.mission_runs IS
    'One row per mission a tick considered and what it decided; user-scoped by row-level security';
CREATE INDEX mission_runs_user_mission_ts_idx ON mana_ai.mission_runs (user_id, mission_id, ts DESC);
CREATE INDEX mission_runs_ts_idx ON mana_ai.mission_runs (ts);
CREATE INDEX mission_runs_tick_idx ON mana_ai.mission_runs (tick_id);

-- A user (app.current_user_id) sees their own rows; members of pg_monitor
-- (the operator's role, and the Prometheus exporter's) see every row.
-- Nobody writes through the table: rows come from the tick only.
ALTER TABLE mana_ai.mission_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.mission_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY mission_runs_user_scope ON mana_ai.mission_runs
    FOR SELECT
    USING (user_id = current_setting('app.current_user_id', true)
           OR pg_catalog.pg_has_role('pg_monitor', 'MEMBER'));

-- The latest row per mission.  security_invoker: the caller's row-level
-- security applies, not the view owner's.
CREATE VIEW mana_ai.mission_last_run WITH (security_invoker = true) AS
SELECT DISTINCT ON (user_id, mission_id)
       user_id, mission_id, agent_id, slot, decision, iteration_id, model, tokens,
       planner_ms, error_phase, error_message, tick_id, ts
  FROM mana_ai.mission_runs
 ORDER BY user_id, mission_id, ts DESC, id DESC;
COMMENT ON VIEW mana_ai.mission_last_run IS
    'The last decision of every mission the tick considered (one row per mission)';

-- The tick's one write: every decision of a tick in one statement.  SECURITY
-- DEFINER because those rows belong to many users and the worker's role does
-- not bypass row-level security; only the worker's role may call it.
CREATE FUNCTION mana_ai.record_mission_runs(tick_id bigint, runs jsonb) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH added AS (
        INSERT INTO mana_ai.mission_runs (tick_id, user_id, mission_id, agent_id, slot, decision,
                                          iteration_id, model, tokens, planner_ms,
                                          error_phase, error_message)
        SELECT record_mission_runs.tick_id, r.user_id, r.mission_id, r.agent_id, r.slot, r.decision,
               r.iteration_id, r.model, r.tokens, r.planner_ms, r.error_phase, r.error_message
          FROM pg_catalog.jsonb_to_recordset(runs) AS r(user_id text, mission_id text, agent_id text,
                   slot text, decision text, iteration_id text, model text, tokens bigint,
                   planner_ms double precision, error_phase text, error_message text)
        RETURNING 1)
    SELECT count(*) FROM added;
END;
COMMENT ON FUNCTION mana_ai.record_mission_runs(bigint, jsonb) IS
    'Insert one tick''s mission_runs rows from [{user_id, mission_id, agent_id, slot, decision, ...}]';

CREATE FUNCTION mana_ai.purge_mission_runs(keep_minutes int) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM mana_ai.mission_runs
         WHERE ts < now() - make_interval(mins => keep_minutes)
        RETURNING 1)
    SELECT count(*) FROM gone;
END;
COMMENT ON FUNCTION mana_ai.purge_mission_runs(int) IS
    'Retention: delete mission_runs rows older than keep_minutes (the worker, mana_ai.mission_runs_retention)';
REVOKE ALL ON FUNCTION mana_ai.record_mission_runs(bigint, jsonb), mana_ai.purge_mission_runs(int) FROM PUBLIC;

-- ---- sql/install/80_ops.sql ----
-- 80_ops.sql: what a DBA looks at: the worker's status and the metrics.

CREATE FUNCTION mana_ai.worker_state(
    OUT worker_pid int,
    OUT launcher_pid int,
    OUT worker_loaded boolean,
    OUT enabled boolean,
    OUT database text,
    OUT tick_interval interval,
    OUT last_tick_started_at timestamptz,
    OUT last_tick_finished_at timestamptz,
    OUT next_tick_at timestamptz,
    OUT waiting_for_extension boolean,
    OUT grants_configured boolean,
    OUT llm_url text)
RETURNS record
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'mana_ai_worker_state';

-- One row; worker_pid is NULL when the worker is not running (or the
-- library is not in shared_preload_libraries: worker_loaded = false).
CREATE VIEW mana_ai.status AS
    SELECT * FROM mana_ai.worker_state();
COMMENT ON VIEW mana_ai.status IS
    'The mana_ai worker: pid, schedule, configuration (never a key)';

CREATE FUNCTION mana_ai.metric_rows(OUT name text, OUT labels jsonb, OUT value float8)
RETURNS SETOF record
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'mana_ai_metrics_rows';

CREATE VIEW mana_ai.metrics AS
    SELECT name, labels, value FROM mana_ai.metric_rows();
COMMENT ON VIEW mana_ai.metrics IS
    'SPEC 10 counters and histograms from shared memory; empty without shared_preload_libraries';

CREATE FUNCTION mana_ai.metrics_prometheus() RETURNS text
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'mana_ai_metrics_prometheus';
COMMENT ON FUNCTION mana_ai.metrics_prometheus() IS
    'The metrics in Prometheus text exposition format';

-- ---- sql/install/99_privileges.sql ----
-- 99_privileges.sql: runs last.  PUBLIC gets nothing that reads another
-- user's data or decrypts (SPEC 9); the README shows the GRANTs for an
-- operator role, the application's role and the worker's role.

REVOKE ALL ON ALL TABLES IN SCHEMA mana_ai FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA mana_ai FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mana_ai FROM PUBLIC;
GRANT USAGE ON SCHEMA mana_ai TO PUBLIC;

-- The catalog of tools is not user data.
GRANT SELECT ON mana_ai.tools TO PUBLIC;

-- Cadence arithmetic reads no data; neither does the catalog's check,
-- which the tools_validate trigger runs as whoever writes a tool.
GRANT EXECUTE ON FUNCTION mana_ai.next_run_at(jsonb, timestamptz),
                          mana_ai.next_run_at_in(jsonb, timestamptz, text),
                          mana_ai.tool_parameters_error(jsonb) TO PUBLIC;

-- read_decrypt_audit is granted to nobody: it shows whichever user
-- app.current_user_id names, and any session can set that.  Only the
-- application's role, which sets it per request, should call it (the
-- README shows the GRANT).
