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
-- (README, "Upgrade").
CREATE FUNCTION mana_ai.mission_runs_of_every_user() RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN true;
COMMENT ON FUNCTION mana_ai.mission_runs_of_every_user() IS
    'A capability, not a query: whoever may EXECUTE it sees every user''s mission_runs rows';
REVOKE ALL ON FUNCTION mana_ai.mission_runs_of_every_user() FROM PUBLIC;
ALTER POLICY mission_runs_user_scope ON mana_ai.mission_runs
    USING (user_id = current_setting('app.current_user_id', true)
           OR (SELECT pg_catalog.has_function_privilege('mana_ai.mission_runs_of_every_user()', 'EXECUTE')));

GRANT EXECUTE ON FUNCTION mana_ai.sync_format() TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_slots', '');

-- ---- the worker's role cannot exfiltrate through the tick (issue 19) ----
-- The tick's one write into sync_changes (62_runner_write.sql): the
-- worker's role loses its INSERT on public.sync_changes (the DBA's
-- REVOKE, README "Upgrade"), and the refresh takes only
-- iterations (seed: and updatedAt/nextRunAt) from the runner's rows.
-- The slots taken by a tick, valid in the transaction (xact) that took
-- them; append_runner_iteration consumes the row.  No role but the owner
-- reaches it.
CREATE TABLE mana_ai.runner_claims (
    user_id    text NOT NULL,
    mission_id text NOT NULL,
    slot       text NOT NULL,
    xact       xid8 NOT NULL,
    PRIMARY KEY (user_id, mission_id)
);
COMMENT ON TABLE mana_ai.runner_claims IS
    'Slots a tick has taken in transaction xact, each good for one runner row (append_runner_iteration); not dumped';

-- Take the mission's slot for this transaction: only when mana_ai's own
-- state (the mission's snapshot and slot state, as mana_ai.missions reads
-- them) says the mission is active, not deleted, due, and slot is the
-- slot it plans next.
CREATE FUNCTION mana_ai.claim_runner_slot(user_id text, mission_id text, slot text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM mana_ai.missions m
         WHERE m.user_id = claim_runner_slot.user_id AND m.mission_id = claim_runner_slot.mission_id
           AND m.due AND m.slot = claim_runner_slot.slot) THEN
        RAISE EXCEPTION 'mission % is not due at slot %', mission_id, slot
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the tick takes a mission, at the slot it plans next.';
    END IF;
    INSERT INTO mana_ai.runner_claims AS c (user_id, mission_id, slot, xact)
    VALUES (claim_runner_slot.user_id, claim_runner_slot.mission_id, claim_runner_slot.slot,
            pg_catalog.pg_current_xact_id())
    ON CONFLICT ON CONSTRAINT runner_claims_pkey
    DO UPDATE SET slot = EXCLUDED.slot, xact = EXCLUDED.xact;
END
$$;
COMMENT ON FUNCTION mana_ai.claim_runner_slot(text, text, text) IS
    'The tick takes a due mission''s slot for the current transaction (append_runner_iteration needs it); worker''s role only';

-- Append the runner's row for a mission this transaction has claimed:
-- op update of ai/aiMissions, client_id mana-ai-runner, schema_version 1;
-- data {iterations} in the current format (SPEC 11.2: field_meta, origin
-- agent, the mission's space_id), data {iterations[, updatedAt, nextRunAt]}
-- in the seed one (SPEC 1.3: field_timestamps), nextRunAt later than now.
-- stamps must stamp only fields of data; actor is the owning agent (SPEC
-- 1.4) for this mission.  Written under the user's app.current_user_id,
-- which the caller has set to user_id.
CREATE FUNCTION mana_ai.append_runner_iteration(user_id text, mission_id text, data jsonb,
                                                stamps jsonb, actor jsonb)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    seed  boolean := mana_ai.sync_format() = 'seed';
    its   jsonb := data -> 'iterations';
    extra text[];
BEGIN
    IF user_id IS NULL OR mission_id IS NULL
       OR current_setting('app.current_user_id', true) IS DISTINCT FROM user_id THEN
        RAISE EXCEPTION 'append_runner_iteration runs in the scope of the mission''s user'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Set app.current_user_id to the user first.';
    END IF;
    DELETE FROM mana_ai.runner_claims c
     WHERE c.user_id = append_runner_iteration.user_id
       AND c.mission_id = append_runner_iteration.mission_id
       AND c.xact = pg_catalog.pg_current_xact_id();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mission % was not taken by a tick in this transaction', mission_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the tick appends iterations, after claim_runner_slot().';
    END IF;
    IF jsonb_typeof(data) IS DISTINCT FROM 'object' OR jsonb_typeof(its) IS DISTINCT FROM 'array'
       OR jsonb_array_length(its) = 0
       OR jsonb_typeof(its -> -1) IS DISTINCT FROM 'object'
       OR jsonb_typeof(its -> -1 -> 'id') IS DISTINCT FROM 'string'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(its) e WHERE jsonb_typeof(e) <> 'object') THEN
        RAISE EXCEPTION 'the runner''s row must carry data.iterations, an array of iteration objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(k ORDER BY k) INTO extra FROM jsonb_object_keys(data) k
     WHERE k <> 'iterations' AND (NOT seed OR k NOT IN ('updatedAt', 'nextRunAt'));
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'the runner''s row may not write %', array_to_string(extra, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE WHEN seed THEN 'It writes iterations, updatedAt and nextRunAt (SPEC 1.3).'
                              ELSE 'It writes iterations only (SPEC 11.2).' END;
    END IF;
    IF seed AND jsonb_typeof(data -> 'nextRunAt') = 'string'
       AND coalesce(mana_ai.iso_timestamp(data ->> 'nextRunAt') <= now(), true) THEN
        RAISE EXCEPTION 'the runner''s nextRunAt must be a later instant than now'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed AND jsonb_typeof(data -> 'nextRunAt') NOT IN ('string', 'null') THEN
        RAISE EXCEPTION 'the runner''s nextRunAt must be an instant or null'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(stamps) IS DISTINCT FROM 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(stamps) k WHERE NOT data ? k) THEN
        RAISE EXCEPTION 'the runner''s stamps must stamp fields of its data'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(actor) IS DISTINCT FROM 'object' OR actor ->> 'kind' IS DISTINCT FROM 'ai'
       OR actor ->> 'missionId' IS DISTINCT FROM mission_id THEN
        RAISE EXCEPTION 'the runner''s actor must be the mission''s agent (SPEC 1.4)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One static INSERT per format: PL/pgSQL plans a statement when it
    -- first runs, so the other format's columns are never looked up.
    IF seed THEN
        INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,
                                         data, field_timestamps, client_id, schema_version, actor)
        VALUES ('ai', 'aiMissions', mission_id, user_id, 'update',
                data, stamps, 'mana-ai-runner', 1, actor);
    ELSE
        INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,
                                         data, field_meta, client_id, schema_version, actor, origin, space_id)
        VALUES ('ai', 'aiMissions', mission_id, user_id, 'update',
                data, stamps, 'mana-ai-runner', 1, actor, 'agent',
                (SELECT s.space_id FROM public.sync_changes s
                  WHERE s.table_name = 'aiMissions' AND s.record_id = append_runner_iteration.mission_id
                    AND s.user_id = append_runner_iteration.user_id
                    AND s.app_id = 'ai' AND s.space_id IS NOT NULL
                  ORDER BY s.created_at DESC, s.id DESC LIMIT 1));
    END IF;
END
$$;
COMMENT ON FUNCTION mana_ai.append_runner_iteration(text, text, jsonb, jsonb, jsonb) IS
    'The tick''s one write into sync_changes: the runner''s iteration row (SPEC 1.3/11.2) for a mission claimed in this transaction; worker''s role only';

REVOKE ALL ON TABLE mana_ai.runner_claims FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.claim_runner_slot(text, text, text),
                       mana_ai.append_runner_iteration(text, text, jsonb, jsonb, jsonb) FROM PUBLIC;

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
