-- foundation: the extension installs, its parameters are server-only,
-- the audit trail is append-only and the ops views answer without preload.
CREATE EXTENSION mana_ai;

SELECT name, setting, unit, context
  FROM pg_settings WHERE name LIKE 'mana_ai.%' ORDER BY name;

-- No session may point the runner elsewhere, even a superuser's.
SET mana_ai.llm_url = 'http://evil.example';
SET mana_ai.enabled = off;
SET mana_ai.database = 'other';
SELECT set_config('mana_ai.private_key_file', '/etc/passwd', false);
-- The prefix is reserved: no placeholder can be invented either.
SET mana_ai.no_such_setting = 1;

SELECT name, module, jsonb_array_length(parameters) AS params, shipped
  FROM mana_ai.tools ORDER BY name;

-- Append-only audit trail.
SELECT set_config('app.current_user_id', 'user-a', false);
INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
VALUES ('user-a', 'm1', 'notes', 'n1', 'ok');
UPDATE mana_ai.decrypt_audit SET status = 'failed';
DELETE FROM mana_ai.decrypt_audit;
TRUNCATE mana_ai.decrypt_audit;
SELECT user_id, mission_id, status FROM mana_ai.decrypt_audit;

-- Without shared_preload_libraries the worker is reported absent.
SELECT worker_pid, worker_loaded, database, tick_interval, grants_configured, llm_url
  FROM mana_ai.status;
SELECT count(*) AS metrics_rows FROM mana_ai.metrics;
SELECT mana_ai.metrics_prometheus();

DROP EXTENSION mana_ai;
SELECT count(*) AS leftovers FROM pg_namespace WHERE nspname = 'mana_ai';
