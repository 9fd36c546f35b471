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
