-- mana_ai_proxy 0.1.0 -> 0.2.0 (issue 17): move_user also moves the
-- user's mana_ai.mission_slots, the slot state mana_ai 0.3.0 keeps for a
-- shard in the current sync format (without it the new shard would plan
-- the user's last planned slots again).  Needs mana_ai 0.3.0 on every
-- shard.
\echo Use "ALTER EXTENSION mana_ai_proxy UPDATE TO '0.2.0'" to load this file. \quit

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
