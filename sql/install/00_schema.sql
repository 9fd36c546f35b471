-- 00_schema.sql: mana_ai's own tables (the runner's state and its audit
-- trail).  sync_changes belongs to the sync server and is never touched
-- here.

-- UTF8 only (issue 19): every record, prompt and answer is UTF-8 JSON; in a
-- LATIN1 database one answer that does not convert would fail the tick.
-- Refused before anything is created.
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

-- Dumped by pg_dump: the audit trail, a DBA's own tools (SPEC 9) and the
-- slot state (without it a restored database would plan a slot again).
SELECT pg_catalog.pg_extension_config_dump('mana_ai.decrypt_audit', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.decrypt_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.tools', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_slots', '');
