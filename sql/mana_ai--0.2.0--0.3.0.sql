-- mana_ai 0.2.0 -> 0.3.0.  Whatever sql/install/*.sql changed since 0.2.0
-- is repeated here, so an upgraded database equals a fresh 0.3.0 install
-- (tests/integration/upgrade.sh compares the two catalogs, from 0.1.0
-- through 0.2.0 and from 0.2.0).  One section per concern, each headed
-- by the issue that brought it.
\echo Use "ALTER EXTENSION mana_ai UPDATE TO '0.3.0'" to load this file. \quit

-- ---- token_usage and mission_attempts survive a dump and restore (issue 19) ----
SELECT pg_catalog.pg_extension_config_dump('mana_ai.mission_attempts', '');
SELECT pg_catalog.pg_extension_config_dump('mana_ai.token_usage', '');

-- ---- mission_runs is append-only like decrypt_audit (issue 19) ----
CREATE FUNCTION mana_ai.mission_runs_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'mana_ai_mission_runs_guard';
CREATE TRIGGER mission_runs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON mana_ai.mission_runs
    FOR EACH STATEMENT EXECUTE FUNCTION mana_ai.mission_runs_guard();
REVOKE ALL ON FUNCTION mana_ai.mission_runs_guard() FROM PUBLIC;

-- ---- UTF8 databases only (issue 19) ----
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
