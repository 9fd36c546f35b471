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

-- Which sync format the database has reads the catalog only (issue 17).
GRANT EXECUTE ON FUNCTION mana_ai.sync_format() TO PUBLIC;

-- read_decrypt_audit is granted to nobody: it shows whichever user
-- app.current_user_id names, and any session can set that.  Only the
-- application's role, which sets it per request, should call it (the
-- README shows the GRANT).

-- The worker's role reads public.sync_changes (the sync server's table,
-- so the DBA's GRANT, README "The worker's role") but may not write it:
-- the tick appends through mana_ai.append_runner_iteration, whose EXECUTE
-- the same GRANT block gives the worker's role only (issue 19).
