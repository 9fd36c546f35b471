-- 30_crypto.sql: mission grants, field decryption, the decrypt audit
-- (SPEC 5, 6, 9).  mana_ai.decrypt_audit itself is in 00_schema.sql.
-- None of these functions is executable by PUBLIC (99_privileges.sql).

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
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_decrypt_input';
COMMENT ON FUNCTION mana_ai.decrypt_input(text, text, text, text, text) IS
    'One encrypted input decrypted under its mission''s grant, with exactly one decrypt_audit row; NULL when refused';

CREATE FUNCTION mana_ai.audit_decrypt(user_id text, mission_id text, iteration_id text,
                                      table_name text, record_id text, status text,
                                      reason text DEFAULT NULL) RETURNS bigint
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_audit_decrypt';
COMMENT ON FUNCTION mana_ai.audit_decrypt(text, text, text, text, text, text, text) IS
    'Append one decrypt_audit row (status ok, failed or scope-violation) under the row user''s scope; returns its id';

-- SECURITY DEFINER so that the application's role may call it without
-- SELECT on the table; the explicit user filter keeps it scoped even when
-- the owner is a superuser (who is not subject to row-level security).
-- It trusts app.current_user_id, so it is granted to nobody by default.
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
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'mana_ai_resolve_inputs_sql';
COMMENT ON FUNCTION mana_ai.resolve_inputs(text, text) IS
    'Diagnostic: the mission''s inputs as the planner would see them, [{module, table, title, content}] (decrypts and audits)';
