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

-- A user (app.current_user_id) sees their own rows; a role that may
-- EXECUTE mana_ai.mission_runs_of_every_user() (granted to nobody: the
-- README grants it to the operator's role) sees every row.  Up to 0.2.0 that
-- took pg_monitor, which also brings pg_read_all_settings (issue 19).
-- Nobody writes through the table: rows come from the tick only.
CREATE FUNCTION mana_ai.mission_runs_of_every_user() RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN true;
COMMENT ON FUNCTION mana_ai.mission_runs_of_every_user() IS
    'A capability, not a query: whoever may EXECUTE it sees every user''s mission_runs rows';
ALTER TABLE mana_ai.mission_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.mission_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY mission_runs_user_scope ON mana_ai.mission_runs
    FOR SELECT
    USING (user_id = current_setting('app.current_user_id', true)
           OR (SELECT pg_catalog.has_function_privilege('mana_ai.mission_runs_of_every_user()', 'EXECUTE')));

-- Append-only like the audit (issue 19): the same C guard, lifted only by
-- the worker's retention code around purge_mission_runs().
CREATE FUNCTION mana_ai.mission_runs_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'mana_ai_mission_runs_guard';
CREATE TRIGGER mission_runs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON mana_ai.mission_runs
    FOR EACH STATEMENT EXECUTE FUNCTION mana_ai.mission_runs_guard();

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
