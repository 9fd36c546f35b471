-- mana_ai 0.2.0 -> 0.3.0.  Whatever sql/install/*.sql changed since 0.2.0
-- is repeated here, so an upgraded database equals a fresh 0.3.0 install
-- (tests/integration/upgrade.sh compares the two catalogs, from 0.1.0
-- through 0.2.0 and from 0.2.0).  One section per concern, each headed
-- by the issue that brought it.
\echo Use "ALTER EXTENSION mana_ai UPDATE TO '0.3.0'" to load this file. \quit

-- ---- UTF8 databases only (issue 19) ----
DO $encoding$
BEGIN
    IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
        RAISE EXCEPTION 'mana_ai needs a UTF8 database; database "%" is %',
                        pg_catalog.current_database(), pg_catalog.getdatabaseencoding()
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Missions, plans and decrypted inputs are UTF-8 JSON; in another encoding one answer could fail a whole tick.',
                  HINT = 'Install mana_ai in the sync server''s database, created with ENCODING ''UTF8'' (CREATE DATABASE ... TEMPLATE template0 ENCODING ''UTF8'').';
    END IF;
END
$encoding$;

-- ---- both sync_changes formats, the slot state of the current one (issue 17) ----
-- The slot state of the current sync format (SPEC 11.2, issue 17): there
-- mana_ai may write nothing into a mission but its iterations, so the
-- next slot of a mission it planned is kept here instead of in the
-- record's nextRunAt.  planned_slot is the slot last planned, next_slot
-- the one after it by the cadence as the ISO-8601 text the seed format
-- writes into nextRunAt (NULL: manual, or no valid cadence).
-- mana_ai.missions.next_run_at reads: the record's nextRunAt when it is
-- later than planned_slot (the web app moved it), else next_slot (README,
-- "The slot state").  The seed format writes nextRunAt and no row here.
CREATE TABLE mana_ai.mission_slots (
    user_id       text        NOT NULL,
    mission_id    text        NOT NULL,
    planned_slot  timestamptz NOT NULL,
    next_slot     text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, mission_id)
);
COMMENT ON TABLE mana_ai.mission_slots IS
    'Current sync format: the slot mana_ai last planned per mission and the next one, kept out of the user''s record';

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

-- The refresh's batched read picks the format's stamps column (it named
-- field_timestamps alone before).  The result's column names are kept.
CREATE OR REPLACE FUNCTION mana_ai.snapshot_rows_of(user_ids text[], missions_since timestamptz,
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
    -- never looked up.
    IF mana_ai.sync_format() = 'current' THEN
        RETURN QUERY
        SELECT s.id, s.user_id, s.record_id, s.op, s.data, s.field_meta, s.created_at,
               s.table_name = 'agents'
          FROM public.sync_changes s
         WHERE s.user_id = ANY (user_ids) AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents')
           AND s.created_at >= LEAST(missions_since, agents_since)
           AND s.created_at >= CASE s.table_name WHEN 'agents' THEN agents_since ELSE missions_since END;
    ELSE
        RETURN QUERY
        SELECT s.id, s.user_id, s.record_id, s.op, s.data, s.field_timestamps, s.created_at,
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

GRANT EXECUTE ON FUNCTION mana_ai.sync_format() TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_slots', '');

-- ---- token_usage and mission_attempts survive a dump and restore (issue 19) ----
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_attempts', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.token_usage', '');

-- ---- mission_runs is append-only like decrypt_audit (issue 19) ----
CREATE FUNCTION mana_ai.mission_runs_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'mana_ai_mission_runs_guard';
CREATE TRIGGER mission_runs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON mana_ai.mission_runs
    FOR EACH STATEMENT EXECUTE FUNCTION mana_ai.mission_runs_guard();
REVOKE ALL ON FUNCTION mana_ai.mission_runs_guard() FROM PUBLIC;

-- ---- the tick lock no login can take (issue 19) ----
-- The tick lock (issue 19): one tick per database is an exclusive lock
-- tagged with this table (which never holds a row) in PostgreSQL's user
-- lock method, taken by the tick in C (session-level in the worker).
-- Before 0.3.0 it was an advisory lock on a fixed key, which any login
-- could take to stall every tick.  No SQL statement can take this one
-- (LOCK TABLE and pg_advisory_lock use other tags); pg_locks shows the
-- holder's pid as an ExclusiveLock on relation mana_ai.tick_lock.
CREATE TABLE mana_ai.tick_lock ();
COMMENT ON TABLE mana_ai.tick_lock IS
    'Never holds a row: the tick lock (pg_locks: ExclusiveLock on this relation, the tick''s pid)';

-- For a move between shards (mana_ai_proxy) and tests: hold the tick lock in
-- this session, waiting for a tick in progress (bounded by lock_timeout),
-- until release_tick_lock() or the session ends.  Granted to nobody.
CREATE FUNCTION mana_ai.hold_tick_lock() RETURNS boolean
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'mana_ai_hold_tick_lock';
COMMENT ON FUNCTION mana_ai.hold_tick_lock() IS
    'Hold the tick lock for this session (no tick runs meanwhile); release_tick_lock() ends it';
CREATE FUNCTION mana_ai.release_tick_lock() RETURNS boolean
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'mana_ai_release_tick_lock';
COMMENT ON FUNCTION mana_ai.release_tick_lock() IS
    'Release the tick lock hold_tick_lock() took; false if this session did not hold it';
REVOKE ALL ON TABLE mana_ai.tick_lock FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.hold_tick_lock(), mana_ai.release_tick_lock() FROM PUBLIC;

-- ---- the ops views show no raw record (issue 19) ----
-- missions, due_missions and agents lose record (and objective, role,
-- policy) and gain the last iteration's status and time; missions and
-- due_missions take the slot state (issue 17) as next_run_at and slot.  A view cannot
-- drop a column in place: they are dropped and created again, and the
-- privileges a DBA granted on them (the worker's and the operator's roles)
-- are put back as they were.
CREATE TABLE mana_ai.upgrade_saved_acls AS
SELECT c.relname::text AS relname, a.grantee, a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
 WHERE c.relnamespace = 'mana_ai'::regnamespace
   AND c.relname IN ('missions', 'due_missions', 'agents') AND a.grantee <> c.relowner;
DROP VIEW mana_ai.due_missions;
DROP VIEW mana_ai.missions;
DROP VIEW mana_ai.agents;
-- What operations need, never the raw record (issue 19): the record holds
-- the grant with its wrapped key, the inputs, every plan and the agent's
-- system prompt.  Chosen on purpose beyond ids, state, cadence, schedule
-- and counts: a mission's title and an agent's name (the README's operator
-- role lists them).  The tick reads records from the snapshot tables.
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
REVOKE ALL ON mana_ai.missions, mana_ai.due_missions, mana_ai.agents FROM PUBLIC;
-- The DBA's grants come back as GRANTs (so role dependencies are recorded),
-- and the extension's initial privileges stay those of a fresh install.
DO $acls$
DECLARE
    v text;
    g record;
    init aclitem[];
BEGIN
    FOREACH v IN ARRAY ARRAY['missions', 'due_missions', 'agents'] LOOP
        init := (SELECT c.relacl FROM pg_catalog.pg_class c
                  WHERE c.oid = pg_catalog.format('mana_ai.%I', v)::regclass);
        FOR g IN SELECT * FROM mana_ai.upgrade_saved_acls s WHERE s.relname = v LOOP
            EXECUTE pg_catalog.format('GRANT %s ON mana_ai.%I TO %s%s', g.privilege_type, v,
                                      CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                                           ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END,
                                      CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        UPDATE pg_catalog.pg_init_privs i SET initprivs = init
         WHERE i.objoid = pg_catalog.format('mana_ai.%I', v)::regclass
           AND i.classoid = 'pg_catalog.pg_class'::regclass AND i.objsubid = 0;
    END LOOP;
END
$acls$;
DROP TABLE mana_ai.upgrade_saved_acls;

-- ---- the operator needs no pg_monitor (issue 19) ----
-- Every user's run history is shown to whoever may EXECUTE
-- mission_runs_of_every_user(), no longer to pg_monitor members (which
-- also brought pg_read_all_settings).  After the update, GRANT EXECUTE ON
-- FUNCTION mana_ai.mission_runs_of_every_user() TO the operator's role
-- (README, "Upgrading").
CREATE FUNCTION mana_ai.mission_runs_of_every_user() RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN true;
COMMENT ON FUNCTION mana_ai.mission_runs_of_every_user() IS
    'A capability, not a query: whoever may EXECUTE it sees every user''s mission_runs rows';
REVOKE ALL ON FUNCTION mana_ai.mission_runs_of_every_user() FROM PUBLIC;
ALTER POLICY mission_runs_user_scope ON mana_ai.mission_runs
    USING (user_id = current_setting('app.current_user_id', true)
           OR (SELECT pg_catalog.has_function_privilege('mana_ai.mission_runs_of_every_user()', 'EXECUTE')));
