-- mana_ai 0.2.0 -> 0.3.0.  Whatever sql/install/*.sql changed since 0.2.0
-- is repeated here, so an upgraded database equals a fresh 0.3.0 install
-- (tests/integration/upgrade.sh compares the two catalogs, from 0.1.0
-- through 0.2.0 and from 0.2.0).  One section per concern, each headed
-- by the issue that brought it.
\echo Use "ALTER EXTENSION mana_ai UPDATE TO '0.3.0'" to load this file. \quit

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

-- next_run_at is the slot mana_ai plans next: the record's nextRunAt,
-- unless mana_ai has planned it in the current sync format and the web
-- app has not moved it past that slot since; then mana_ai's own next
-- slot (mission_slots, README "The slot state").  slot is its text, the
-- key of mission_attempts.  In the seed format mission_slots is empty and
-- both are the record's nextRunAt.
CREATE OR REPLACE VIEW mana_ai.missions AS
SELECT s.user_id,
       s.mission_id,
       s.record ->> 'title'                                  AS title,
       s.record ->> 'objective'                              AS objective,
       s.record ->> 'state'                                  AS state,
       s.record -> 'cadence'                                 AS cadence,
       n.next_run_at,
       s.record ->> 'agentId'                                AS agent_id,
       coalesce(jsonb_typeof(s.record -> 'grant') = 'object', false) AS has_grant,
       CASE WHEN jsonb_typeof(s.record -> 'iterations') = 'array'
            THEN jsonb_array_length(s.record -> 'iterations') ELSE 0 END AS iteration_count,
       coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false) AS deleted,
       mana_ai.iso_timestamp(s.record ->> 'deletedAt')       AS deleted_at,
       (s.record ->> 'state') = 'active'
         AND NOT coalesce(jsonb_typeof(s.record -> 'deletedAt') NOT IN ('null'), false)
         AND coalesce(n.next_run_at <= now(), false)         AS due,
       mana_ai.iso_timestamp(s.record ->> 'createdAt')       AS created_at,
       mana_ai.iso_timestamp(s.record ->> 'updatedAt')       AS updated_at,
       s.last_applied_at,
       s.updated_at                                          AS snapshot_updated_at,
       s.record,
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
    'Every mission snapshot with typed columns; soft-deleted missions show deleted = true; next_run_at is the slot mana_ai plans next';

-- due_missions is m.* of missions: replaced so it carries the slot column.
CREATE OR REPLACE VIEW mana_ai.due_missions AS
SELECT m.*
  FROM mana_ai.missions m
 WHERE m.due
 ORDER BY m.next_run_at, m.user_id, m.mission_id;
COMMENT ON VIEW mana_ai.due_missions IS
    'Active, scheduled, not soft-deleted missions whose nextRunAt has passed, oldest first (SPEC 4.3)';

GRANT EXECUTE ON FUNCTION mana_ai.sync_format() TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_slots', '');
