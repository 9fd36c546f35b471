-- mana_ai 0.1.0 -> 0.2.0.  Whatever sql/install/*.sql changed since 0.1.0
-- is repeated here, so an upgraded database equals a fresh 0.2.0 install
-- (tests/integration/upgrade.sh compares the two catalogs).
\echo Use "ALTER EXTENSION mana_ai UPDATE TO '0.2.0'" to load this file. \quit

-- ---- harden (issue 11): the decrypt audit is no longer PUBLIC ----
-- read_decrypt_audit trusts app.current_user_id, which any session can
-- set; only the application's role should get EXECUTE (README).
REVOKE EXECUTE ON FUNCTION mana_ai.read_decrypt_audit(text, int) FROM PUBLIC;
