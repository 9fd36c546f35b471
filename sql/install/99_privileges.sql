-- 99_privileges.sql: runs last.  PUBLIC gets nothing that reads another
-- user's data or decrypts (SPEC 9); the README shows the GRANTs for an
-- operator role and for the worker's role.

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

-- Each user reads only their own audit rows (row-level security).
GRANT EXECUTE ON FUNCTION mana_ai.read_decrypt_audit(text, int) TO PUBLIC;
