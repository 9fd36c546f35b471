-- mana_ai_proxy 0.2.0: the PL/Proxy front of a mana_sync sharded by user.
--
-- Installed in a proxy database (not in a shard).  The shard map is
-- PL/Proxy's own SQL/MED cluster definition, which the operator creates:
--
--   CREATE SERVER mana_sync FOREIGN DATA WRAPPER plproxy OPTIONS (
--       p0 'host=10.0.0.1 port=5432 dbname=mana_sync connect_timeout=3',
--       p1 'host=10.0.0.2 port=5432 dbname=mana_sync connect_timeout=3');
--   CREATE USER MAPPING FOR PUBLIC SERVER mana_sync OPTIONS (user 'mana_proxy', password '...');
--
-- A user lives on partition hashtext(user_id) & (n - 1) (n a power of two,
-- PL/Proxy's own mapping) unless mana_ai_proxy.placement says otherwise
-- (a user who was moved).  docs/scale-out.md has the whole story.

\echo Use "CREATE EXTENSION mana_ai_proxy CASCADE" to load this file. \quit

CREATE SCHEMA mana_ai_proxy;
COMMENT ON SCHEMA mana_ai_proxy IS 'mana_ai_proxy: cluster-wide view of a mana_sync sharded by user';

-- ---------------------------------------------------------------- shard map

-- The partitions of the SQL/MED server mana_sync, in PL/Proxy's order.
CREATE VIEW mana_ai_proxy.shards AS
SELECT substr(o.option_name, 2)::int AS partition,
       o.option_name                 AS shard,
       o.option_value                AS conninfo
  FROM pg_catalog.pg_foreign_server s
  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'plproxy'
 CROSS JOIN LATERAL pg_catalog.pg_options_to_table(s.srvoptions) o
 WHERE s.srvname = 'mana_sync' AND o.option_name ~ '^p[0-9]+$'
 ORDER BY 1;
COMMENT ON VIEW mana_ai_proxy.shards IS
    'The shard map: partitions p0..pN-1 of the PL/Proxy SQL/MED server mana_sync (connection strings hold no password)';

-- SECURITY DEFINER: anyone may know how many shards there are, not
-- their connection strings.
CREATE FUNCTION mana_ai_proxy.partition_count() RETURNS int
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN (SELECT count(*)::int FROM mana_ai_proxy.shards);
COMMENT ON FUNCTION mana_ai_proxy.partition_count() IS
    'Number of partitions of the mana_sync cluster (a power of two)';

-- Users who do not live where the hash puts them: moved users, and a user
-- being moved (moving_to set: the sync server holds that user's writes
-- until the row says moving_to IS NULL again).
CREATE TABLE mana_ai_proxy.placement (
    user_id      text        PRIMARY KEY CHECK (user_id <> ''),
    partition    int         NOT NULL CHECK (partition >= 0),
    moving_to    int         CHECK (moving_to >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mana_ai_proxy.placement IS
    'Users placed away from hashtext(user_id) & (n-1) (moved); moving_to is set while a move is in progress';
SELECT pg_catalog.pg_extension_config_dump('mana_ai_proxy.placement', '');

-- PL/Proxy's own convention: the partition is hash & (n - 1).
CREATE FUNCTION mana_ai_proxy.home_partition(user_id text) RETURNS int
    LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.hashtext(user_id) & (mana_ai_proxy.partition_count() - 1);
COMMENT ON FUNCTION mana_ai_proxy.home_partition(text) IS
    'hashtext(user_id) & (partition_count() - 1): where a user is placed unless moved';

-- THE ROUTING FUNCTION: the sync server places users with it, and every
-- per-user proxy function runs on it.  Returns a partition number, which
-- PL/Proxy's "& (n - 1)" leaves unchanged.
CREATE FUNCTION mana_ai_proxy.partition_of(user_id text) RETURNS int
    LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce((SELECT p.partition FROM mana_ai_proxy.placement p WHERE p.user_id = partition_of.user_id),
                    mana_ai_proxy.home_partition(user_id));
COMMENT ON FUNCTION mana_ai_proxy.partition_of(text) IS
    'The partition a user lives on: placement if moved, else hashtext(user_id) & (n-1)';

-- ----------------------------------------------- PL/Proxy calls, one shard

-- RUN ON <argument> takes the argument as the hash: a partition number
-- 0..n-1 maps to itself.  Argument names are substituted in the SELECT
-- text, hence the i_ prefix and aliases that never equal them.

CREATE FUNCTION mana_ai_proxy.shard_status(i_partition int,
    OUT worker_pid int, OUT launcher_pid int, OUT worker_loaded boolean, OUT enabled boolean,
    OUT database text, OUT tick_interval interval, OUT last_tick_started_at timestamptz,
    OUT last_tick_finished_at timestamptz, OUT next_tick_at timestamptz,
    OUT waiting_for_extension boolean, OUT grants_configured boolean, OUT llm_url text)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON i_partition;
    SELECT st.worker_pid, st.launcher_pid, st.worker_loaded, st.enabled, st.database,
           st.tick_interval, st.last_tick_started_at, st.last_tick_finished_at, st.next_tick_at,
           st.waiting_for_extension, st.grants_configured, st.llm_url
      FROM mana_ai.status st;
$$;

CREATE FUNCTION mana_ai_proxy.shard_metrics(i_partition int,
    OUT name text, OUT labels jsonb, OUT value float8)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON i_partition;
    SELECT mt.name, mt.labels, mt.value FROM mana_ai.metrics mt;
$$;

CREATE FUNCTION mana_ai_proxy.shard_metrics_prometheus(i_partition int) RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON i_partition;
    SELECT mana_ai.metrics_prometheus() AS shard_metrics_prometheus;
$$;

CREATE FUNCTION mana_ai_proxy.shard_tick_runs(i_partition int, i_max_rows int,
    OUT id bigint, OUT source text, OUT status text, OUT started_at timestamptz,
    OUT finished_at timestamptz, OUT backend_pid int, OUT due_missions int,
    OUT plans_produced int, OUT plans_written_back int, OUT parse_failures int,
    OUT errors jsonb, OUT result jsonb)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON i_partition;
    SELECT tr.id, tr.source, tr.status, tr.started_at, tr.finished_at, tr.backend_pid,
           tr.due_missions, tr.plans_produced, tr.plans_written_back, tr.parse_failures,
           tr.errors, tr.result
      FROM mana_ai.tick_runs tr ORDER BY tr.id DESC LIMIT i_max_rows;
$$;

CREATE FUNCTION mana_ai_proxy.shard_due_missions(i_partition int,
    OUT user_id text, OUT mission_id text, OUT title text, OUT state text,
    OUT next_run_at timestamptz, OUT agent_id text, OUT iteration_count int)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON i_partition;
    SELECT dm.user_id, dm.mission_id, dm.title, dm.state, dm.next_run_at, dm.agent_id,
           dm.iteration_count
      FROM mana_ai.due_missions dm;
$$;

CREATE FUNCTION mana_ai_proxy.shard_tick(i_partition int) RETURNS jsonb
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON i_partition;
    SELECT public.mana_ai_tick() AS shard_tick;
$$;

-- ------------------------------------------ PL/Proxy calls, routed by user

CREATE FUNCTION mana_ai_proxy.mission(i_user_id text, i_mission_id text,
    OUT user_id text, OUT mission_id text, OUT title text, OUT objective text, OUT state text,
    OUT cadence jsonb, OUT next_run_at timestamptz, OUT agent_id text, OUT has_grant boolean,
    OUT iteration_count int, OUT deleted boolean, OUT due boolean,
    OUT last_applied_at timestamptz, OUT record jsonb)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON mana_ai_proxy.partition_of(i_user_id);
    SELECT ms.user_id, ms.mission_id, ms.title, ms.objective, ms.state, ms.cadence,
           ms.next_run_at, ms.agent_id, ms.has_grant, ms.iteration_count, ms.deleted, ms.due,
           ms.last_applied_at, ms.record
      FROM mana_ai.missions ms
     WHERE ms.user_id = i_user_id AND ms.mission_id = i_mission_id;
$$;
COMMENT ON FUNCTION mana_ai_proxy.mission(text, text) IS
    'One mission''s snapshot, from the shard partition_of(user_id) names';

CREATE FUNCTION mana_ai_proxy.mission_runs(i_user_id text, i_mission_id text, i_max_rows int DEFAULT 50,
    OUT tick_id bigint, OUT slot text, OUT decision text, OUT iteration_id text,
    OUT model text, OUT tokens bigint, OUT planner_ms double precision,
    OUT error_phase text, OUT error_message text, OUT ts timestamptz)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON mana_ai_proxy.partition_of(i_user_id);
    SELECT mr.tick_id, mr.slot, mr.decision, mr.iteration_id, mr.model, mr.tokens,
           mr.planner_ms, mr.error_phase, mr.error_message, mr.ts
      FROM mana_ai.mission_runs mr
     WHERE mr.user_id = i_user_id AND mr.mission_id = i_mission_id
     ORDER BY mr.ts DESC, mr.id DESC LIMIT i_max_rows;
$$;
COMMENT ON FUNCTION mana_ai_proxy.mission_runs(text, text, int) IS
    'A mission''s run history (newest first), from the shard partition_of(user_id) names';

-- ------------------------------------------------------ cluster-wide views

-- RUN ON ALL fails the whole query when one partition cannot be reached,
-- so every cluster-wide function asks one shard at a time and catches that
-- shard's error: a shard that is down is reported down (status) or left
-- out (the rest), never fails the query.

CREATE FUNCTION mana_ai_proxy.cluster_status(
    OUT shard text, OUT partition int, OUT up boolean, OUT error text,
    OUT worker_pid int, OUT launcher_pid int, OUT worker_loaded boolean, OUT enabled boolean,
    OUT database text, OUT tick_interval interval, OUT last_tick_started_at timestamptz,
    OUT last_tick_finished_at timestamptz, OUT next_tick_at timestamptz,
    OUT waiting_for_extension boolean, OUT grants_configured boolean, OUT llm_url text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    r record;
BEGIN
    FOR s IN SELECT * FROM mana_ai_proxy.shards LOOP
        shard := s.shard; partition := s.partition;
        BEGIN
            SELECT * INTO STRICT r FROM mana_ai_proxy.shard_status(s.partition);
            up := true; error := NULL;
            worker_pid := r.worker_pid; launcher_pid := r.launcher_pid;
            worker_loaded := r.worker_loaded; enabled := r.enabled; database := r.database;
            tick_interval := r.tick_interval; last_tick_started_at := r.last_tick_started_at;
            last_tick_finished_at := r.last_tick_finished_at; next_tick_at := r.next_tick_at;
            waiting_for_extension := r.waiting_for_extension;
            grants_configured := r.grants_configured; llm_url := r.llm_url;
        EXCEPTION WHEN OTHERS THEN
            up := false; error := SQLERRM;
            worker_pid := NULL; launcher_pid := NULL; worker_loaded := NULL; enabled := NULL;
            database := NULL; tick_interval := NULL; last_tick_started_at := NULL;
            last_tick_finished_at := NULL; next_tick_at := NULL; waiting_for_extension := NULL;
            grants_configured := NULL; llm_url := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE VIEW mana_ai_proxy.status AS SELECT * FROM mana_ai_proxy.cluster_status();
COMMENT ON VIEW mana_ai_proxy.status IS
    'One row per shard: up (reachable, mana_ai.status read) or down with the error, and that shard''s mana_ai.status';

CREATE FUNCTION mana_ai_proxy.cluster_metrics(OUT shard text, OUT name text, OUT labels jsonb, OUT value float8)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM mana_ai_proxy.shards LOOP
        BEGIN
            RETURN QUERY SELECT s.shard, m.name, m.labels, m.value
                           FROM mana_ai_proxy.shard_metrics(s.partition) m;
        EXCEPTION WHEN OTHERS THEN
            NULL;               -- down: mana_ai_proxy.status says so
        END;
    END LOOP;
END
$$;

CREATE VIEW mana_ai_proxy.shard_metrics AS SELECT * FROM mana_ai_proxy.cluster_metrics();
COMMENT ON VIEW mana_ai_proxy.shard_metrics IS
    'Every reachable shard''s mana_ai.metrics, with the shard name';

-- Every mana_ai metric is a counter or a histogram, so the cluster's value
-- is the sum over shards.  The two mana_ai_proxy_* rows say how many
-- shards that sum is over.
CREATE VIEW mana_ai_proxy.metrics AS
WITH per_shard AS MATERIALIZED (SELECT * FROM mana_ai_proxy.cluster_metrics())
SELECT name, labels, sum(value)::float8 AS value
  FROM per_shard GROUP BY name, labels
UNION ALL
SELECT 'mana_ai_proxy_shards', '{}'::jsonb, mana_ai_proxy.partition_count()::float8
UNION ALL
SELECT 'mana_ai_proxy_shards_up', '{}'::jsonb, (SELECT count(DISTINCT shard) FROM per_shard)::float8;
COMMENT ON VIEW mana_ai_proxy.metrics IS
    'mana_ai.metrics summed over the reachable shards, plus mana_ai_proxy_shards and mana_ai_proxy_shards_up';

-- Prometheus text: each shard's exposition with a shard label on every
-- sample, families kept together (HELP/TYPE once, then every shard's
-- samples), and mana_ai_proxy_shard_up per shard (0 for a shard that is
-- down, whose samples are absent).
CREATE FUNCTION mana_ai_proxy.metrics_prometheus() RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    body text;
    line text;
    family text;
    m text[];
    up_lines text := '';
    heads jsonb := '{}';        -- family -> its HELP/TYPE lines
    samples jsonb := '{}';      -- family -> its sample lines, every shard
    families text[] := '{}';    -- first-seen order
    out text := '';
    label text;
BEGIN
    FOR s IN SELECT * FROM mana_ai_proxy.shards LOOP
        BEGIN
            body := mana_ai_proxy.shard_metrics_prometheus(s.partition);
        EXCEPTION WHEN OTHERS THEN
            body := NULL;
        END;
        up_lines := up_lines || format('mana_ai_proxy_shard_up{shard="%s"} %s', s.shard,
                                       CASE WHEN body IS NULL THEN 0 ELSE 1 END) || E'\n';
        CONTINUE WHEN body IS NULL;
        label := format('shard="%s"', s.shard);
        family := NULL;
        FOREACH line IN ARRAY string_to_array(rtrim(body, E'\n'), E'\n') LOOP
            CONTINUE WHEN line = '';
            m := regexp_match(line, '^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)');
            IF m IS NOT NULL THEN
                family := m[2];
                IF NOT families @> ARRAY[family] THEN
                    families := families || family;
                    heads := jsonb_set(heads, ARRAY[family], '""');
                    samples := jsonb_set(samples, ARRAY[family], '""');
                END IF;
                -- each HELP/TYPE line once, from the first shard that sent it
                IF position(line || E'\n' IN heads ->> family) = 0 THEN
                    heads := jsonb_set(heads, ARRAY[family], to_jsonb((heads ->> family) || line || E'\n'));
                END IF;
                CONTINUE;
            END IF;
            CONTINUE WHEN line LIKE '#%';
            IF family IS NULL THEN
                family := split_part(split_part(line, '{', 1), ' ', 1);
                IF NOT families @> ARRAY[family] THEN
                    families := families || family;
                    heads := jsonb_set(heads, ARRAY[family], '""');
                    samples := jsonb_set(samples, ARRAY[family], '""');
                END IF;
            END IF;
            IF position('{' IN line) > 0 THEN
                line := regexp_replace(line, '\{', '{' || label || ',');
            ELSE
                line := regexp_replace(line, '^([a-zA-Z_:][a-zA-Z0-9_:]*) ', '\1{' || label || '} ');
            END IF;
            samples := jsonb_set(samples, ARRAY[family], to_jsonb((samples ->> family) || line || E'\n'));
        END LOOP;
    END LOOP;
    FOREACH family IN ARRAY families LOOP
        out := out || (heads ->> family) || (samples ->> family);
    END LOOP;
    RETURN out
        || E'# HELP mana_ai_proxy_shard_up 1 if the proxy reached the shard''s mana_ai, else 0\n'
        || E'# TYPE mana_ai_proxy_shard_up gauge\n'
        || up_lines;
END
$$;
COMMENT ON FUNCTION mana_ai_proxy.metrics_prometheus() IS
    'Every shard''s mana_ai metrics in Prometheus text, each sample labelled shard="pN", plus mana_ai_proxy_shard_up';

CREATE FUNCTION mana_ai_proxy.tick_runs(max_rows_per_shard int DEFAULT 100,
    OUT shard text, OUT id bigint, OUT source text, OUT status text, OUT started_at timestamptz,
    OUT finished_at timestamptz, OUT backend_pid int, OUT due_missions int,
    OUT plans_produced int, OUT plans_written_back int, OUT parse_failures int,
    OUT errors jsonb, OUT result jsonb)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM mana_ai_proxy.shards LOOP
        BEGIN
            RETURN QUERY SELECT s.shard, t.*
                           FROM mana_ai_proxy.shard_tick_runs(s.partition, max_rows_per_shard) t;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION mana_ai_proxy.tick_runs(int) IS
    'The latest max_rows_per_shard mana_ai.tick_runs rows of every reachable shard, with the shard name';

CREATE VIEW mana_ai_proxy.tick_runs AS
SELECT * FROM mana_ai_proxy.tick_runs(100) ORDER BY started_at DESC, shard;
COMMENT ON VIEW mana_ai_proxy.tick_runs IS
    'The latest 100 tick runs of every reachable shard (tick_runs(n) for more)';

CREATE FUNCTION mana_ai_proxy.cluster_due_missions(
    OUT shard text, OUT user_id text, OUT mission_id text, OUT title text, OUT state text,
    OUT next_run_at timestamptz, OUT agent_id text, OUT iteration_count int)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM mana_ai_proxy.shards LOOP
        BEGIN
            RETURN QUERY SELECT s.shard, d.* FROM mana_ai_proxy.shard_due_missions(s.partition) d;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
END
$$;

CREATE VIEW mana_ai_proxy.due_missions AS
SELECT * FROM mana_ai_proxy.cluster_due_missions() ORDER BY next_run_at, user_id, mission_id;
COMMENT ON VIEW mana_ai_proxy.due_missions IS
    'Every reachable shard''s mana_ai.due_missions (as of its last refresh), oldest nextRunAt first';

-- One tick on every shard, one shard after the other (a tick waits for
-- its LLM calls; PL/Proxy's parallel RUN ON ALL would fail as a whole
-- when one shard is down).
CREATE FUNCTION mana_ai_proxy.tick_all(OUT shard text, OUT up boolean, OUT result jsonb, OUT error text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM mana_ai_proxy.shards LOOP
        shard := s.shard;
        BEGIN
            result := mana_ai_proxy.shard_tick(s.partition);
            up := true; error := NULL;
        EXCEPTION WHEN OTHERS THEN
            result := NULL; up := false; error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION mana_ai_proxy.tick_all() IS
    'SELECT mana_ai_tick() on every shard in turn; a shard that cannot be reached gives up = false and its error';

-- --------------------------------------------------- moving a user (dblink)

-- dblink is called through its schema, wherever CREATE EXTENSION put it.
CREATE FUNCTION mana_ai_proxy.remote_exec(conn text, sql text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp text := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'dblink');
    res text;
BEGIN
    EXECUTE format('SELECT %I.dblink_exec($1, $2, true)', nsp) INTO res USING conn, sql;
    RETURN res;
END
$$;

-- One row, one column, as text.
CREATE FUNCTION mana_ai_proxy.remote_value(conn text, sql text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp text := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'dblink');
    res text;
BEGIN
    EXECUTE format('SELECT v FROM %I.dblink($1, $2, true) AS t(v text)', nsp) INTO STRICT res USING conn, sql;
    RETURN res;
END
$$;

-- A dblink connection to partition n, with the proxy's user mapping for
-- the current user (else PUBLIC's): the same login PL/Proxy uses.
CREATE FUNCTION mana_ai_proxy.remote_connect(conn text, part int) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp text := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'dblink');
    cs text;
    opt record;
BEGIN
    SELECT s.conninfo INTO cs FROM mana_ai_proxy.shards s WHERE s.partition = part;
    IF cs IS NULL THEN
        RAISE EXCEPTION 'mana_ai_proxy: no partition % in server mana_sync', part;
    END IF;
    FOR opt IN
        SELECT o.option_name, o.option_value
          FROM (SELECT um.umoptions FROM pg_user_mappings um
                 WHERE um.srvname = 'mana_sync' AND um.usename IN (current_user, 'public')
                 ORDER BY um.usename = 'public' LIMIT 1) m
         CROSS JOIN LATERAL pg_options_to_table(m.umoptions) o
    LOOP
        cs := cs || format(' %s=%s', opt.option_name,
                           '''' || replace(replace(opt.option_value, '\', '\\'), '''', '\''') || '''');
    END LOOP;
    EXECUTE format('SELECT %I.dblink_connect($1, $2)', nsp)
        USING conn, cs || ' application_name=mana_ai_proxy.move_user';
END
$$;

CREATE FUNCTION mana_ai_proxy.remote_disconnect(conn text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp text := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'dblink');
    open text[];
BEGIN
    EXECUTE format('SELECT %I.dblink_get_connections()', nsp) INTO open;
    IF conn = ANY (coalesce(open, '{}')) THEN
        EXECUTE format('SELECT %I.dblink_disconnect($1)', nsp) USING conn;
    END IF;
END
$$;

-- Move one user from the shard they live on to to_partition, so that each
-- of their due slots is planned exactly once across the move.  Resumable:
-- CALL it again after any failure and it continues where it stopped.  See
-- docs/scale-out.md for the ordering and why it is safe.  Needs a user
-- mapping to a role that may read and write every user's rows and
-- mana_ai's tables on both shards (a superuser).
CREATE PROCEDURE mana_ai_proxy.move_user(user_id text, to_partition int, lock_timeout_ms int DEFAULT 120000)
LANGUAGE plpgsql
AS $proc$
DECLARE
    u text := user_id;
    n int := mana_ai_proxy.partition_count();
    from_p int;
    pending int;
    c_from text := 'mana_ai_proxy_move_from';
    c_to text := 'mana_ai_proxy_move_to';
    -- mana_ai's tick lock (src/tick_run.c): held by a tick from start to end
    tick_lock text := 'SELECT ''locked'' FROM pg_catalog.pg_advisory_lock(1835101793, 100)';
    tick_unlock text := 'SELECT pg_catalog.pg_advisory_unlock(1835101793, 100)::text';
    on_from bigint;
    staged bigint;
    on_to bigint;
    digest text;
BEGIN
    IF u IS NULL OR u = '' THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: empty user id';
    END IF;
    IF to_partition IS NULL OR to_partition < 0 OR to_partition >= n THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: partition % is not one of 0..%', to_partition, n - 1;
    END IF;
    SELECT p.moving_to INTO pending FROM mana_ai_proxy.placement p WHERE p.user_id = u;
    IF pending IS NOT NULL AND pending <> to_partition THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: % is being moved to partition %; finish that move first', u, pending;
    END IF;
    from_p := mana_ai_proxy.partition_of(u);
    IF from_p = to_partition AND pending IS NULL THEN
        RAISE NOTICE 'mana_ai_proxy.move_user: % already lives on partition %', u, from_p;
        RETURN;
    END IF;

    -- 1. Announce: from now on the sync server holds this user's writes.
    INSERT INTO mana_ai_proxy.placement AS p (user_id, partition, moving_to)
    VALUES (u, from_p, to_partition)
    ON CONFLICT ON CONSTRAINT placement_pkey DO UPDATE SET moving_to = EXCLUDED.moving_to, updated_at = now();
    COMMIT;

    -- Steps 2-5 talk to the shards.  Whatever fails, close both
    -- connections, so no tick lock outlives the error in this session.
    BEGIN
    PERFORM mana_ai_proxy.remote_disconnect(c_from);
    PERFORM mana_ai_proxy.remote_disconnect(c_to);
    PERFORM mana_ai_proxy.remote_connect(c_from, from_p);
    PERFORM mana_ai_proxy.remote_connect(c_to, to_partition);
    PERFORM mana_ai_proxy.remote_exec(c_from, format('SET lock_timeout = %s', lock_timeout_ms));
    PERFORM mana_ai_proxy.remote_exec(c_to, format('SET lock_timeout = %s', lock_timeout_ms));
    PERFORM mana_ai_proxy.remote_exec(c_to,
        'CREATE SCHEMA IF NOT EXISTS mana_ai_move; '
        'CREATE TABLE IF NOT EXISTS mana_ai_move.staged ('
        '  user_id text NOT NULL, kind text NOT NULL, row jsonb NOT NULL,'
        '  staged_at timestamptz NOT NULL DEFAULT now()); '
        'REVOKE ALL ON SCHEMA mana_ai_move FROM PUBLIC');

    -- 2. The old shard: take its tick lock.  This waits for a tick in
    -- progress to finish (its write-backs included) and keeps every
    -- later tick out (they end overlap-skipped) until step 4 is done.
    PERFORM mana_ai_proxy.remote_value(c_from, tick_lock);
    on_from := mana_ai_proxy.remote_value(c_from,
        format('SELECT count(*) FROM public.sync_changes WHERE user_id = %L', u))::bigint;

    IF on_from > 0 THEN
        -- 3. Stage a copy of the user's rows on the new shard, outside
        -- anything mana_ai reads, and commit it there.
        on_to := mana_ai_proxy.remote_value(c_to,
            format('SELECT count(*) FROM public.sync_changes WHERE user_id = %L', u))::bigint;
        IF on_to > 0 THEN
            RAISE EXCEPTION 'mana_ai_proxy.move_user: % has rows on both partition % and %', u, from_p, to_partition;
        END IF;
        PERFORM mana_ai_proxy.remote_exec(c_to, format(
            'BEGIN; DELETE FROM mana_ai_move.staged WHERE user_id = %L; COMMIT', u));
        PERFORM mana_ai_proxy.remote_exec(c_to, format(
            'INSERT INTO mana_ai_move.staged (user_id, kind, row) '
            'SELECT %L, k, r FROM pg_catalog.jsonb_to_recordset(%L::jsonb) AS x(k text, r jsonb)', u,
            mana_ai_proxy.remote_value(c_from, format(
                'SELECT coalesce(jsonb_agg(x), ''[]'')::text FROM ('
                '  SELECT ''sync_changes'' AS k, to_jsonb(s) AS r FROM public.sync_changes s WHERE s.user_id = %1$L'
                '  UNION ALL SELECT ''token_usage'', to_jsonb(t) FROM mana_ai.token_usage t WHERE t.user_id = %1$L'
                '  UNION ALL SELECT ''mission_attempts'', to_jsonb(a) FROM mana_ai.mission_attempts a WHERE a.user_id = %1$L'
                '  UNION ALL SELECT ''mission_slots'', to_jsonb(p) FROM mana_ai.mission_slots p WHERE p.user_id = %1$L'
                '  UNION ALL SELECT ''mission_runs'', to_jsonb(m) - ''id'' FROM mana_ai.mission_runs m WHERE m.user_id = %1$L'
                ') x', u))));
        digest := mana_ai_proxy.remote_value(c_to, format(
            'SELECT count(*) || '':'' || coalesce(md5(string_agg(row ->> ''id'', '','' ORDER BY row ->> ''id'')), '''') '
            '  FROM mana_ai_move.staged WHERE user_id = %L AND kind = ''sync_changes''', u));

        -- 4. Remove the user from the old shard, still under its tick
        -- lock, in one transaction that refuses to commit unless it holds
        -- the lock and deletes exactly the rows that were staged.
        PERFORM mana_ai_proxy.remote_exec(c_from, format($do$
DO $$
DECLARE
    got text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.classid = 1835101793 AND l.objid = 100
                      AND l.pid = pg_catalog.pg_backend_pid() AND l.granted) THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: the tick lock is not held';
    END IF;
    WITH gone AS (DELETE FROM public.sync_changes s WHERE s.user_id = %1$L RETURNING s.id::text AS id)
    SELECT count(*) || ':' || coalesce(md5(string_agg(id, ',' ORDER BY id)), '') INTO got FROM gone;
    IF got IS DISTINCT FROM %2$L THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: rows changed during the copy (%% instead of %2$s)', got;
    END IF;
    DELETE FROM mana_ai.mission_snapshots WHERE user_id = %1$L;
    DELETE FROM mana_ai.agent_snapshots WHERE user_id = %1$L;
    DELETE FROM mana_ai.snapshot_tombstones WHERE user_id = %1$L;
    DELETE FROM mana_ai.snapshot_applied WHERE user_id = %1$L;
    DELETE FROM mana_ai.mission_attempts WHERE user_id = %1$L;
    DELETE FROM mana_ai.mission_slots WHERE user_id = %1$L;
    DELETE FROM mana_ai.token_usage WHERE user_id = %1$L;
    DELETE FROM mana_ai.mission_runs WHERE user_id = %1$L;
END
$$
$do$, u, digest));
    END IF;
    PERFORM mana_ai_proxy.remote_value(c_from, tick_unlock);
    PERFORM mana_ai_proxy.remote_disconnect(c_from);

    -- 5. The new shard: under its tick lock (and the refresh's locks, in
    -- their order), put the staged rows in place and build the user's
    -- snapshots from them in one transaction.  The copied log holds every
    -- iteration the old shard wrote, so each planned slot's nextRunAt has
    -- already moved on (seed sync format) or its mission_slots row moves
    -- with it (current format); only unplanned slots are due here.
    staged := mana_ai_proxy.remote_value(c_to,
        format('SELECT count(*) FROM mana_ai_move.staged WHERE user_id = %L', u))::bigint;
    IF staged > 0 THEN
        PERFORM mana_ai_proxy.remote_value(c_to, tick_lock);
        PERFORM mana_ai_proxy.remote_exec(c_to, format($do$
DO $$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(1835101793, 1);
    PERFORM pg_catalog.pg_advisory_xact_lock(1835101793, 2);
    INSERT INTO public.sync_changes
    SELECT (pg_catalog.jsonb_populate_record(NULL::public.sync_changes, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id = %1$L AND st.kind = 'sync_changes';
    INSERT INTO mana_ai.token_usage
    SELECT (pg_catalog.jsonb_populate_record(NULL::mana_ai.token_usage, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id = %1$L AND st.kind = 'token_usage';
    INSERT INTO mana_ai.mission_attempts
    SELECT (pg_catalog.jsonb_populate_record(NULL::mana_ai.mission_attempts, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id = %1$L AND st.kind = 'mission_attempts';
    INSERT INTO mana_ai.mission_slots
    SELECT (pg_catalog.jsonb_populate_record(NULL::mana_ai.mission_slots, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id = %1$L AND st.kind = 'mission_slots';
    INSERT INTO mana_ai.mission_runs (tick_id, user_id, mission_id, agent_id, slot, decision, iteration_id,
                                      model, tokens, planner_ms, error_phase, error_message, ts)
    SELECT r.tick_id, r.user_id, r.mission_id, r.agent_id, r.slot, r.decision, r.iteration_id,
           r.model, r.tokens, r.planner_ms, r.error_phase, r.error_message, r.ts
      FROM mana_ai_move.staged st,
           pg_catalog.jsonb_populate_record(NULL::mana_ai.mission_runs, st.row) r
     WHERE st.user_id = %1$L AND st.kind = 'mission_runs';
    -- The snapshots a full replay gives (the refresh would not see rows
    -- stamped before its horizon), and the tombstones of deleted records.
    INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, last_applied_at)
    SELECT %1$L, g.record_id, mana_ai.replay_record(%1$L, 'ai', 'aiMissions', g.record_id), g.last_at
      FROM (SELECT s.record_id, max(s.created_at) AS last_at, bool_or(s.op = 'delete') AS gone
              FROM public.sync_changes s
             WHERE s.user_id = %1$L AND s.app_id = 'ai' AND s.table_name = 'aiMissions'
             GROUP BY s.record_id) g
     WHERE NOT g.gone AND mana_ai.replay_record(%1$L, 'ai', 'aiMissions', g.record_id) IS NOT NULL;
    INSERT INTO mana_ai.agent_snapshots (user_id, agent_id, record, last_applied_at)
    SELECT %1$L, g.record_id, mana_ai.replay_record(%1$L, 'ai', 'agents', g.record_id), g.last_at
      FROM (SELECT s.record_id, max(s.created_at) AS last_at, bool_or(s.op = 'delete') AS gone
              FROM public.sync_changes s
             WHERE s.user_id = %1$L AND s.app_id = 'ai' AND s.table_name = 'agents'
             GROUP BY s.record_id) g
     WHERE NOT g.gone AND mana_ai.replay_record(%1$L, 'ai', 'agents', g.record_id) IS NOT NULL;
    INSERT INTO mana_ai.snapshot_tombstones (kind, user_id, record_id)
    SELECT DISTINCT CASE s.table_name WHEN 'agents' THEN 'agents' ELSE 'missions' END, %1$L, s.record_id
      FROM public.sync_changes s
     WHERE s.user_id = %1$L AND s.app_id = 'ai' AND s.table_name IN ('aiMissions', 'agents') AND s.op = 'delete'
    ON CONFLICT DO NOTHING;
    DELETE FROM mana_ai_move.staged WHERE user_id = %1$L;
END
$$
$do$, u));
        PERFORM mana_ai_proxy.remote_value(c_to, tick_unlock);
    ELSE
        on_to := mana_ai_proxy.remote_value(c_to,
            format('SELECT count(*) FROM public.sync_changes WHERE user_id = %L', u))::bigint;
        IF on_to = 0 AND on_from = 0 THEN
            RAISE EXCEPTION 'mana_ai_proxy.move_user: % has no rows on partition % or %', u, from_p, to_partition;
        END IF;
    END IF;
    PERFORM mana_ai_proxy.remote_disconnect(c_to);
    EXCEPTION WHEN OTHERS THEN
        PERFORM mana_ai_proxy.remote_disconnect(c_from);
        PERFORM mana_ai_proxy.remote_disconnect(c_to);
        RAISE;
    END;

    -- 6. Cut over: the user lives on to_partition; the sync server sends
    -- their writes there from now on.
    IF to_partition = mana_ai_proxy.home_partition(u) THEN
        DELETE FROM mana_ai_proxy.placement p WHERE p.user_id = u;
    ELSE
        UPDATE mana_ai_proxy.placement p SET partition = to_partition, moving_to = NULL, updated_at = now()
         WHERE p.user_id = u;
    END IF;
    COMMIT;
END
$proc$;
COMMENT ON PROCEDURE mana_ai_proxy.move_user(text, int, int) IS
    'Move a user''s sync_changes rows (and mana_ai state) to another shard so every due slot is planned exactly once; resumable';

-- ---------------------------------------------------------------- privileges

-- Operators read the cluster-wide views (PL/Proxy connects as their user
-- mapping); ticks and moves are for whoever may run them on the shards.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mana_ai_proxy FROM PUBLIC;
REVOKE ALL ON PROCEDURE mana_ai_proxy.move_user(text, int, int) FROM PUBLIC;
-- PUBLIC gets only the pure arithmetic: the shard map holds connection
-- strings and placement names moved users, so both are for the roles the
-- DBA grants them to (docs/scale-out.md).
GRANT USAGE ON SCHEMA mana_ai_proxy TO PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai_proxy.partition_count(), mana_ai_proxy.home_partition(text) TO PUBLIC;
