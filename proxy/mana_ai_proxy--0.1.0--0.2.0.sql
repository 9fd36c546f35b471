-- mana_ai_proxy 0.1.0 -> 0.2.0 (issues 17 and 19), for shards on mana_ai 0.3.0.
--  - move_user also moves the user's mana_ai.mission_slots, the slot state
--    mana_ai 0.3.0 keeps in the current sync format (without it the new
--    shard would plan the user's last planned slots again);
--  - move_user takes mana_ai 0.3.0's tick lock (mana_ai.hold_tick_lock(),
--    a relation lock no login without mana_ai privileges can take) instead
--    of the advisory key any login could hold, and the refresh's locks as
--    rows of mana_ai.snapshot_horizon;
--  - its shard sessions run with search_path = pg_catalog, pg_temp and
--    every operator in the SQL it sends is qualified, so an object planted
--    in public (an exact-type ||(bigint, text), say) never runs as the
--    superuser;
--  - a mana_ai_move schema (or staged table) that a non-superuser owns is
--    refused, not used;
--  - user ids travel as literals (format %L) inside DO bodies quoted with
--    a dollar tag the id does not contain, so a $$ in an id cannot end one;
--  - mission() returns the shard's ops columns, never the record
--    (mana_ai 0.3.0's missions view has none).
\echo Use "ALTER EXTENSION mana_ai_proxy UPDATE TO '0.2.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION mana_ai_proxy.remote_connect(conn text, part int) RETURNS void
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
    -- The session runs a superuser's SQL: nothing a role planted in a
    -- schema of the shard's search_path (public.||(bigint, text), say) may
    -- stand in for a built-in, whatever ALTER ROLE/DATABASE SET says.
    EXECUTE format('SELECT %I.dblink_exec($1, $2, true)', nsp)
        USING conn, 'SET search_path = pg_catalog, pg_temp';
END
$$;

-- 0.2.0: mana_ai 0.3.0's tick lock; a pinned search_path and qualified
-- operators in every shard session; a user id cannot end a DO body; a
-- foreign mana_ai_move schema is refused.
-- Move one user from the shard they live on to to_partition, so that each
-- of their due slots is planned exactly once across the move.  Resumable:
-- CALL it again after any failure and it continues where it stopped.  See
-- docs/scale-out.md for the ordering and why it is safe.  Needs a user
-- mapping to a role that may read and write every user's rows and
-- mana_ai's tables on both shards (a superuser).
CREATE OR REPLACE PROCEDURE mana_ai_proxy.move_user(user_id text, to_partition int, lock_timeout_ms int DEFAULT 120000)
LANGUAGE plpgsql
AS $proc$
DECLARE
    u text := user_id;
    n int := mana_ai_proxy.partition_count();
    from_p int;
    pending int;
    c_from text := 'mana_ai_proxy_move_from';
    c_to text := 'mana_ai_proxy_move_to';
    -- mana_ai's tick lock (src/tick/tick_lock.c, 0.3.0): held by a tick from
    -- start to end; no role without mana_ai privileges can take it
    tick_lock text := 'SELECT mana_ai.hold_tick_lock()::text';
    tick_unlock text := 'SELECT mana_ai.release_tick_lock()::text';
    -- the DO bodies below are dollar-quoted with a tag the user id does
    -- not contain, so no user id can end a body early
    tag text;
    on_from bigint;
    staged bigint;
    on_to bigint;
    digest text;
BEGIN
    IF u IS NULL OR u = '' THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: empty user id';
    END IF;
    LOOP
        tag := '$mv' || md5(u || clock_timestamp()::text || random()::text) || '$';
        EXIT WHEN strpos(u, tag) = 0;
    END LOOP;
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
    -- The staging schema is this superuser's or none: a mana_ai_move (or a
    -- staged table) another role created could run its owner's triggers
    -- with this session's rights.
    PERFORM mana_ai_proxy.remote_exec(c_to, $stage$
DO $check$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                WHERE n.nspname OPERATOR(pg_catalog.=) 'mana_ai_move' AND NOT r.rolsuper)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) c.relowner
                   WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace('mana_ai_move')
                     AND NOT r.rolsuper) THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: schema mana_ai_move on this shard belongs to a role that is not a superuser'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Someone else created it; inspect it, then DROP SCHEMA mana_ai_move CASCADE as a superuser and call move_user again.';
    END IF;
END
$check$;
CREATE SCHEMA IF NOT EXISTS mana_ai_move;
CREATE TABLE IF NOT EXISTS mana_ai_move.staged (
  user_id text NOT NULL, kind text NOT NULL, row jsonb NOT NULL,
  staged_at timestamptz NOT NULL DEFAULT pg_catalog.now());
REVOKE ALL ON SCHEMA mana_ai_move FROM PUBLIC
$stage$);

    -- 2. The old shard: take its tick lock.  This waits for a tick in
    -- progress to finish (its write-backs included) and keeps every
    -- later tick out (they end overlap-skipped) until step 4 is done.
    PERFORM mana_ai_proxy.remote_value(c_from, tick_lock);
    on_from := mana_ai_proxy.remote_value(c_from,
        format('SELECT count(*) FROM public.sync_changes WHERE user_id OPERATOR(pg_catalog.=) %L', u))::bigint;

    IF on_from > 0 THEN
        -- 3. Stage a copy of the user's rows on the new shard, outside
        -- anything mana_ai reads, and commit it there.
        on_to := mana_ai_proxy.remote_value(c_to,
            format('SELECT count(*) FROM public.sync_changes WHERE user_id OPERATOR(pg_catalog.=) %L', u))::bigint;
        IF on_to > 0 THEN
            RAISE EXCEPTION 'mana_ai_proxy.move_user: % has rows on both partition % and %', u, from_p, to_partition;
        END IF;
        PERFORM mana_ai_proxy.remote_exec(c_to, format(
            'BEGIN; DELETE FROM mana_ai_move.staged WHERE user_id OPERATOR(pg_catalog.=) %L; COMMIT', u));
        PERFORM mana_ai_proxy.remote_exec(c_to, format(
            'INSERT INTO mana_ai_move.staged (user_id, kind, row) '
            'SELECT %L, k, r FROM pg_catalog.jsonb_to_recordset(%L::jsonb) AS x(k text, r jsonb)', u,
            mana_ai_proxy.remote_value(c_from, format(
                'SELECT coalesce(jsonb_agg(x), ''[]'')::text FROM ('
                '  SELECT ''sync_changes'' AS k, to_jsonb(s) AS r FROM public.sync_changes s WHERE s.user_id OPERATOR(pg_catalog.=) %1$L'
                '  UNION ALL SELECT ''token_usage'', to_jsonb(t) FROM mana_ai.token_usage t WHERE t.user_id OPERATOR(pg_catalog.=) %1$L'
                '  UNION ALL SELECT ''mission_attempts'', to_jsonb(a) FROM mana_ai.mission_attempts a WHERE a.user_id OPERATOR(pg_catalog.=) %1$L'
                '  UNION ALL SELECT ''mission_runs'', to_jsonb(m) OPERATOR(pg_catalog.-) ''id'' FROM mana_ai.mission_runs m WHERE m.user_id OPERATOR(pg_catalog.=) %1$L'
                '  UNION ALL SELECT ''mission_slots'', to_jsonb(p) FROM mana_ai.mission_slots p WHERE p.user_id OPERATOR(pg_catalog.=) %1$L'
                ') x', u))));
        digest := mana_ai_proxy.remote_value(c_to, format(
            'SELECT count(*) OPERATOR(pg_catalog.||) '':'' OPERATOR(pg_catalog.||) '
            '       coalesce(md5(string_agg(row OPERATOR(pg_catalog.->>) ''id'', '','' ORDER BY row OPERATOR(pg_catalog.->>) ''id'')), '''') '
            '  FROM mana_ai_move.staged WHERE user_id OPERATOR(pg_catalog.=) %L AND kind OPERATOR(pg_catalog.=) ''sync_changes''', u));

        -- 4. Remove the user from the old shard, still under its tick
        -- lock, in one transaction that refuses to commit unless it holds
        -- the lock and deletes exactly the rows that were staged.
        PERFORM mana_ai_proxy.remote_exec(c_from, format($do$
DO %3$s
DECLARE
    got text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
                      AND l.relation OPERATOR(pg_catalog.=) 'mana_ai.tick_lock'::pg_catalog.regclass
                      AND l.mode OPERATOR(pg_catalog.=) 'ExclusiveLock'
                      AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AND l.granted) THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: the tick lock is not held';
    END IF;
    WITH gone AS (DELETE FROM public.sync_changes s WHERE s.user_id OPERATOR(pg_catalog.=) %1$L RETURNING s.id::text AS id)
    SELECT count(*) OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) coalesce(md5(string_agg(id, ',' ORDER BY id)), '')
      INTO got FROM gone;
    IF got IS DISTINCT FROM %2$L THEN
        RAISE EXCEPTION 'mana_ai_proxy.move_user: rows changed during the copy (%% instead of %%)', got, %2$L;
    END IF;
    DELETE FROM mana_ai.mission_snapshots WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    DELETE FROM mana_ai.agent_snapshots WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    DELETE FROM mana_ai.snapshot_tombstones WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    DELETE FROM mana_ai.snapshot_applied WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    DELETE FROM mana_ai.mission_attempts WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    DELETE FROM mana_ai.token_usage WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    DELETE FROM mana_ai.mission_slots WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    -- the run history is append-only (mana_ai 0.3.0): a superuser moves it
    -- with the guard trigger off for this one statement
    PERFORM pg_catalog.set_config('session_replication_role', 'replica', true);
    DELETE FROM mana_ai.mission_runs WHERE user_id OPERATOR(pg_catalog.=) %1$L;
    PERFORM pg_catalog.set_config('session_replication_role', 'origin', true);
END
%3$s
$do$, u, digest, tag));
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
        format('SELECT count(*) FROM mana_ai_move.staged WHERE user_id OPERATOR(pg_catalog.=) %L', u))::bigint;
    IF staged > 0 THEN
        PERFORM mana_ai_proxy.remote_value(c_to, tick_lock);
        PERFORM mana_ai_proxy.remote_exec(c_to, format($do$
DO %2$s
BEGIN
    -- the refresh's locks, in its order (mana_ai 0.3.0: rows of snapshot_horizon)
    PERFORM 1 FROM mana_ai.snapshot_horizon ORDER BY kind DESC FOR UPDATE;
    INSERT INTO public.sync_changes
    SELECT (pg_catalog.jsonb_populate_record(NULL::public.sync_changes, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id OPERATOR(pg_catalog.=) %1$L AND st.kind OPERATOR(pg_catalog.=) 'sync_changes';
    INSERT INTO mana_ai.token_usage
    SELECT (pg_catalog.jsonb_populate_record(NULL::mana_ai.token_usage, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id OPERATOR(pg_catalog.=) %1$L AND st.kind OPERATOR(pg_catalog.=) 'token_usage';
    INSERT INTO mana_ai.mission_attempts
    SELECT (pg_catalog.jsonb_populate_record(NULL::mana_ai.mission_attempts, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id OPERATOR(pg_catalog.=) %1$L AND st.kind OPERATOR(pg_catalog.=) 'mission_attempts';
    INSERT INTO mana_ai.mission_slots
    SELECT (pg_catalog.jsonb_populate_record(NULL::mana_ai.mission_slots, st.row)).*
      FROM mana_ai_move.staged st WHERE st.user_id OPERATOR(pg_catalog.=) %1$L AND st.kind OPERATOR(pg_catalog.=) 'mission_slots';
    INSERT INTO mana_ai.mission_runs (tick_id, user_id, mission_id, agent_id, slot, decision, iteration_id,
                                      model, tokens, planner_ms, error_phase, error_message, ts)
    SELECT r.tick_id, r.user_id, r.mission_id, r.agent_id, r.slot, r.decision, r.iteration_id,
           r.model, r.tokens, r.planner_ms, r.error_phase, r.error_message, r.ts
      FROM mana_ai_move.staged st,
           pg_catalog.jsonb_populate_record(NULL::mana_ai.mission_runs, st.row) r
     WHERE st.user_id OPERATOR(pg_catalog.=) %1$L AND st.kind OPERATOR(pg_catalog.=) 'mission_runs';
    -- The snapshots a full replay gives (the refresh would not see rows
    -- stamped before its horizon), and the tombstones of deleted records.
    INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, last_applied_at)
    SELECT %1$L, g.record_id, mana_ai.replay_record(%1$L, 'ai', 'aiMissions', g.record_id), g.last_at
      FROM (SELECT s.record_id, max(s.created_at) AS last_at, bool_or(s.op OPERATOR(pg_catalog.=) 'delete') AS gone
              FROM public.sync_changes s
             WHERE s.user_id OPERATOR(pg_catalog.=) %1$L AND s.app_id OPERATOR(pg_catalog.=) 'ai' AND s.table_name OPERATOR(pg_catalog.=) 'aiMissions'
             GROUP BY s.record_id) g
     WHERE NOT g.gone AND mana_ai.replay_record(%1$L, 'ai', 'aiMissions', g.record_id) IS NOT NULL;
    INSERT INTO mana_ai.agent_snapshots (user_id, agent_id, record, last_applied_at)
    SELECT %1$L, g.record_id, mana_ai.replay_record(%1$L, 'ai', 'agents', g.record_id), g.last_at
      FROM (SELECT s.record_id, max(s.created_at) AS last_at, bool_or(s.op OPERATOR(pg_catalog.=) 'delete') AS gone
              FROM public.sync_changes s
             WHERE s.user_id OPERATOR(pg_catalog.=) %1$L AND s.app_id OPERATOR(pg_catalog.=) 'ai' AND s.table_name OPERATOR(pg_catalog.=) 'agents'
             GROUP BY s.record_id) g
     WHERE NOT g.gone AND mana_ai.replay_record(%1$L, 'ai', 'agents', g.record_id) IS NOT NULL;
    INSERT INTO mana_ai.snapshot_tombstones (kind, user_id, record_id)
    SELECT DISTINCT CASE s.table_name WHEN 'agents' THEN 'agents' ELSE 'missions' END, %1$L, s.record_id
      FROM public.sync_changes s
     WHERE s.user_id OPERATOR(pg_catalog.=) %1$L AND s.app_id OPERATOR(pg_catalog.=) 'ai' AND s.table_name IN ('aiMissions', 'agents') AND s.op OPERATOR(pg_catalog.=) 'delete'
    ON CONFLICT DO NOTHING;
    DELETE FROM mana_ai_move.staged WHERE user_id OPERATOR(pg_catalog.=) %1$L;
END
%2$s
$do$, u, tag));
        PERFORM mana_ai_proxy.remote_value(c_to, tick_unlock);
    ELSE
        on_to := mana_ai_proxy.remote_value(c_to,
            format('SELECT count(*) FROM public.sync_changes WHERE user_id OPERATOR(pg_catalog.=) %L', u))::bigint;
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

DROP FUNCTION mana_ai_proxy.mission(text, text);
CREATE FUNCTION mana_ai_proxy.mission(i_user_id text, i_mission_id text,
    OUT user_id text, OUT mission_id text, OUT title text, OUT state text,
    OUT cadence jsonb, OUT next_run_at timestamptz, OUT agent_id text, OUT has_grant boolean,
    OUT iteration_count int, OUT last_iteration_status text, OUT last_iteration_at timestamptz,
    OUT deleted boolean, OUT due boolean, OUT last_applied_at timestamptz)
RETURNS SETOF record
LANGUAGE plproxy AS $$
    CLUSTER 'mana_sync';
    RUN ON mana_ai_proxy.partition_of(i_user_id);
    SELECT ms.user_id, ms.mission_id, ms.title, ms.state, ms.cadence,
           ms.next_run_at, ms.agent_id, ms.has_grant, ms.iteration_count,
           ms.last_iteration_status, ms.last_iteration_at, ms.deleted, ms.due,
           ms.last_applied_at
      FROM mana_ai.missions ms
     WHERE ms.user_id = i_user_id AND ms.mission_id = i_mission_id;
$$;
COMMENT ON FUNCTION mana_ai_proxy.mission(text, text) IS
    'One mission''s ops columns (mana_ai 0.3.0: never the record), from the shard partition_of(user_id) names';
REVOKE ALL ON FUNCTION mana_ai_proxy.mission(text, text) FROM PUBLIC;
