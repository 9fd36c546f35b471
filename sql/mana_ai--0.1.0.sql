-- mana_ai 0.1.0 install script, as released. Never edit: fresh installs of
-- later versions are built from sql/install/*.sql, and 0.1.0 databases reach
-- them through sql/mana_ai--0.1.0--*.sql.
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

INSERT INTO mana_ai.tools (name, module, description, parameters, shipped) VALUES
('create_task', 'todo', 'Legt eine neue Aufgabe an.', '[
  {"name": "title", "type": "string", "required": true, "description": "Titel der Aufgabe"},
  {"name": "description", "type": "string", "required": false, "description": "Beschreibung oder Notizen"},
  {"name": "dueDate", "type": "string", "required": false, "description": "Faelligkeitsdatum (ISO-8601, YYYY-MM-DD)"},
  {"name": "priority", "type": "string", "required": false, "description": "Prioritaet", "enum": ["low", "medium", "high"]}
]', true),
('complete_task', 'todo', 'Markiert eine bestehende Aufgabe als erledigt.', '[
  {"name": "taskId", "type": "string", "required": true, "description": "ID der Aufgabe"}
]', true),
('complete_tasks_by_title', 'todo', 'Markiert alle offenen Aufgaben mit passendem Titel als erledigt.', '[
  {"name": "title", "type": "string", "required": true, "description": "Titel oder Titelteil der Aufgaben"}
]', true),
('create_event', 'calendar', 'Legt einen Kalendertermin an.', '[
  {"name": "title", "type": "string", "required": true, "description": "Titel des Termins"},
  {"name": "startDate", "type": "string", "required": true, "description": "Beginn (ISO-8601)"},
  {"name": "endDate", "type": "string", "required": false, "description": "Ende (ISO-8601)"},
  {"name": "location", "type": "string", "required": false, "description": "Ort"},
  {"name": "description", "type": "string", "required": false, "description": "Beschreibung"}
]', true),
('create_place', 'places', 'Speichert einen neuen Ort.', '[
  {"name": "name", "type": "string", "required": true, "description": "Name des Ortes"},
  {"name": "address", "type": "string", "required": false, "description": "Adresse"},
  {"name": "category", "type": "string", "required": false, "description": "Kategorie", "enum": ["food", "cafe", "shop", "sport", "culture", "nature", "work", "other"]}
]', true),
('visit_place', 'places', 'Vermerkt einen Besuch an einem gespeicherten Ort.', '[
  {"name": "placeId", "type": "string", "required": true, "description": "ID des Ortes"},
  {"name": "note", "type": "string", "required": false, "description": "Notiz zum Besuch"}
]', true),
('undo_drink', 'drink', 'Nimmt den zuletzt erfassten Drink zurueck.', '[
  {"name": "drinkType", "type": "string", "required": false, "description": "Art des Getraenks", "enum": ["water", "coffee", "tea", "alcohol", "other"]}
]', true),
('save_news_article', 'news', 'Speichert einen Nachrichtenartikel zum spaeteren Lesen.', '[
  {"name": "url", "type": "string", "required": true, "description": "URL des Artikels"},
  {"name": "title", "type": "string", "required": false, "description": "Titel des Artikels"},
  {"name": "summary", "type": "string", "required": false, "description": "Kurze Zusammenfassung"}
]', true);

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

CREATE FUNCTION mana_ai.replay_record(user_id text, app_id text, table_name text, record_id text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
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
-- it), NULL when that cannot be known (prepared transactions exist, or
-- track_activities is off): then the horizon stays.  SECURITY DEFINER
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
BEGIN
    IF NOT pg_catalog.current_setting('track_activities')::boolean
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xact() p WHERE p.dbid = db) THEN
        RETURN NULL;
    END IF;
    RETURN LEAST(pg_catalog.now(),
                 (SELECT pg_catalog.min(a.xact_start) FROM pg_catalog.pg_stat_get_activity(NULL) a
                   WHERE a.datid = db AND a.backend_type IN ('client backend', 'background worker')));
END
$$;
COMMENT ON FUNCTION mana_ai.refresh_horizon() IS
    'Oldest start of an open transaction in this database (refresh cursor bound); returns no user data';

-- THE ONLY CROSS-USER READ.  Which users have ai/aiMissions or ai/agents
-- rows (table_name: one of them; NULL: either) created at or after since:
-- user ids only, never data.  Owned by the superuser who ran CREATE
-- EXTENSION, so it sees past row-level security; everything else reads
-- one user's rows under that user's app.current_user_id.  Uses the
-- opt-in index sync_changes_mana_ai_refresh_idx (see docs) when it exists
-- and is valid: then O(new rows).  Else, and for a first refresh (since
-- -infinity: every row is new, so visiting each user once is cheaper), a
-- skip scan over user_id on the production index (user_id, app_id,
-- created_at), one probe for the next user and one for that user's ai
-- rows since: O(users), no row data read.
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
    IF since > '-infinity' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
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

CREATE FUNCTION mana_ai.refresh_snapshots()
    RETURNS TABLE (kind text, rows_applied bigint, new_snapshots int,
                   updated_snapshots int, deleted_snapshots int, skipped_rows bigint)
    LANGUAGE c VOLATILE
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
-- None of these functions is executable by PUBLIC (99_privileges.sql)
-- except read_decrypt_audit, which only ever shows the caller's rows.

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
    AS 'MODULE_PATHNAME', 'mana_ai_decrypt_input';
COMMENT ON FUNCTION mana_ai.decrypt_input(text, text, text, text, text) IS
    'One encrypted input decrypted under its mission''s grant, with exactly one decrypt_audit row; NULL when refused';

CREATE FUNCTION mana_ai.audit_decrypt(user_id text, mission_id text, iteration_id text,
                                      table_name text, record_id text, status text,
                                      reason text DEFAULT NULL) RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'mana_ai_audit_decrypt';
COMMENT ON FUNCTION mana_ai.audit_decrypt(text, text, text, text, text, text, text) IS
    'Append one decrypt_audit row (status ok, failed or scope-violation) under the row user''s scope; returns its id';

-- SECURITY DEFINER so that PUBLIC may call it without SELECT on the
-- table; the explicit user filter keeps it scoped even when the owner is
-- a superuser (who is not subject to row-level security).
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
-- of one fixed shape.  The trigger words each refusal with a hint; the
-- CHECK constraints stay as a backstop should the trigger be disabled.
-- ---------------------------------------------------------------------

ALTER TABLE mana_ai.tools
    ADD CONSTRAINT tools_name_format
        CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD CONSTRAINT tools_module_not_empty
        CHECK (module ~ '^[a-z][a-zA-Z0-9_-]{0,62}$'),
    ADD CONSTRAINT tools_description_not_empty
        CHECK (btrim(description) <> '');

CREATE FUNCTION mana_ai.tools_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p       jsonb;
    i       int := 0;
    seen    text[] := '{}';
    pname   text;
    bad_key text;
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
    IF NEW.parameters IS NULL OR jsonb_typeof(NEW.parameters) <> 'array' THEN
        RAISE EXCEPTION 'parameters of tool "%" must be a JSON array', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'Use [] for a tool without parameters, or [{"name": ..., "type": ..., "required": ..., "description": ...}].';
    END IF;

    FOR p IN SELECT value FROM jsonb_array_elements(NEW.parameters) AS e(value)
    LOOP
        IF jsonb_typeof(p) <> 'object' THEN
            RAISE EXCEPTION 'parameter % of tool "%" must be a JSON object', i, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'Each parameter is {"name", "type", "required", "description"} and optionally "enum".';
        END IF;

        SELECT k INTO bad_key FROM jsonb_object_keys(p) AS k
         WHERE k NOT IN ('name', 'type', 'required', 'description', 'enum')
         ORDER BY k LIMIT 1;
        IF bad_key IS NOT NULL THEN
            RAISE EXCEPTION 'parameter % of tool "%" has unknown key "%"', i, NEW.name, bad_key
                USING ERRCODE = 'check_violation',
                      HINT = 'Allowed keys: name, type, required, description, enum.';
        END IF;

        IF jsonb_typeof(p->'name') IS DISTINCT FROM 'string'
           OR NOT (p->>'name') ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'parameter % of tool "%" needs a name', i, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'A parameter name is an identifier such as "dueDate".';
        END IF;
        pname := p->>'name';
        IF pname = ANY (seen) THEN
            RAISE EXCEPTION 'tool "%" has parameter "%" twice', NEW.name, pname
                USING ERRCODE = 'check_violation',
                      HINT = 'Parameter names must be unique within a tool.';
        END IF;
        seen := seen || pname;

        IF jsonb_typeof(p->'type') IS DISTINCT FROM 'string'
           OR NOT (p->>'type') IN ('string', 'number', 'integer', 'boolean', 'array', 'object') THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" has an invalid type', pname, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'type is one of string, number, integer, boolean, array, object.';
        END IF;
        IF jsonb_typeof(p->'required') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" needs "required": true or false', pname, NEW.name
                USING ERRCODE = 'check_violation';
        END IF;
        IF jsonb_typeof(p->'description') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" needs a description string', pname, NEW.name
                USING ERRCODE = 'check_violation';
        END IF;
        IF p ? 'enum' AND (
               jsonb_typeof(p->'enum') <> 'array'
            OR jsonb_array_length(p->'enum') = 0
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(p->'enum') AS v(x)
                        WHERE jsonb_typeof(x) <> 'string')
            OR (SELECT count(DISTINCT x) <> count(*) FROM jsonb_array_elements(p->'enum') AS v(x))) THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" has an invalid enum', pname, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'enum is a non-empty array of distinct strings.';
        END IF;
        i := i + 1;
    END LOOP;

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
    'Refuses a mana_ai.tools row whose parameters are not [{name, type, required, description, enum?}]';

CREATE TRIGGER tools_validate
    BEFORE INSERT OR UPDATE ON mana_ai.tools
    FOR EACH ROW EXECUTE FUNCTION mana_ai.tools_validate();

-- ---------------------------------------------------------------------
-- Parser and prompt (SPEC 7.3, 7.4, 9).  No LLM call in any of them.
-- ---------------------------------------------------------------------

CREATE FUNCTION mana_ai.parse_plan(answer text) RETURNS jsonb
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'mana_ai_parse_plan';
COMMENT ON FUNCTION mana_ai.parse_plan(text) IS
    'Strict parse of an LLM answer against the full tool catalog: {ok:true, plan:{summary, steps}} or {ok:false, reason, step?, detail}';

CREATE FUNCTION mana_ai.parse_plan_for(answer text, agent jsonb) RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'mana_ai_parse_plan_for_agent';
COMMENT ON FUNCTION mana_ai.parse_plan_for(text, jsonb) IS
    'parse_plan against the catalog filtered by the agent record''s policy (NULL agent: all tools)';

CREATE FUNCTION mana_ai.render_prompt(mission jsonb, agent jsonb DEFAULT NULL, inputs jsonb DEFAULT '[]')
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'mana_ai_render_prompt_sql';
COMMENT ON FUNCTION mana_ai.render_prompt(jsonb, jsonb, jsonb) IS
    'The planner prompt {system, user} for a mission record, an optional agent record and resolved inputs [{module, table, title, content}]';

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
    AS 'MODULE_PATHNAME', 'mana_ai_tick_sql';
COMMENT ON FUNCTION mana_ai.tick() IS
    'One tick (SPEC 4) in the calling transaction; the worker runs the same code';

-- SPEC 9: callable as written with the default search_path.
CREATE FUNCTION public.mana_ai_tick() RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'mana_ai_tick_sql';
COMMENT ON FUNCTION public.mana_ai_tick() IS
    'One tick of the mana_ai runner: {scannedAt, dueMissionCount, plansProduced, plansWrittenBack, parseFailures, errors[]}';
REVOKE ALL ON FUNCTION public.mana_ai_tick() FROM PUBLIC;

CREATE FUNCTION mana_ai.build_prompt(user_id text, mission_id text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT
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
-- operator role and for the worker's role.

REVOKE ALL ON ALL TABLES IN SCHEMA mana_ai FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA mana_ai FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mana_ai FROM PUBLIC;
GRANT USAGE ON SCHEMA mana_ai TO PUBLIC;

-- The catalog of tools is not user data.
GRANT SELECT ON mana_ai.tools TO PUBLIC;

-- Cadence arithmetic reads no data.
GRANT EXECUTE ON FUNCTION mana_ai.next_run_at(jsonb, timestamptz),
                          mana_ai.next_run_at_in(jsonb, timestamptz, text) TO PUBLIC;

-- Each user reads only their own audit rows (row-level security).
GRANT EXECUTE ON FUNCTION mana_ai.read_decrypt_audit(text, int) TO PUBLIC;
