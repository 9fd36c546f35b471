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

-- Dumped (issue 19): a restore must not reset a day's budget or a failing
-- mission's backoff, or a restore would replay spend and hammer the LLM.
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_attempts', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.token_usage', '');

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
