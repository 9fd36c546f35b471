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
