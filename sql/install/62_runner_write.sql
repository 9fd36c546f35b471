-- 62_runner_write.sql: the tick's one way to write into sync_changes
-- (issue 19).  The worker's role has no INSERT on public.sync_changes: a
-- role that could append rows could give a granted mission an objective
-- of its own and have the tick send the user's decrypted records to the
-- LLM.  claim_runner_slot() takes a due mission's slot for the current
-- transaction; append_runner_iteration() appends the runner's row (SPEC
-- 1.3 / 11.2) once per claim and refuses any other shape.  Both are
-- SECURITY DEFINER (owner: the extension's owner), EXECUTE granted to the
-- worker's role only (README "The worker's role").  Never write a field
-- other than iterations (seed format: and nextRunAt/updatedAt), never for
-- a mission not taken in this transaction.

-- The slots taken by a tick, valid in the transaction (xact) that took
-- them; append_runner_iteration consumes the row.  No role but the owner
-- reaches it.
CREATE TABLE mana_ai.runner_claims (
    user_id    text NOT NULL,
    mission_id text NOT NULL,
    slot       text NOT NULL,
    xact       xid8 NOT NULL,
    PRIMARY KEY (user_id, mission_id)
);
COMMENT ON TABLE mana_ai.runner_claims IS
    'Slots a tick has taken in transaction xact, each good for one runner row (append_runner_iteration); not dumped';

-- Take the mission's slot for this transaction: only when mana_ai's own
-- state (the mission's snapshot and slot state, as mana_ai.missions reads
-- them) says the mission is active, not deleted, due, and slot is the
-- slot it plans next.
CREATE FUNCTION mana_ai.claim_runner_slot(user_id text, mission_id text, slot text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM mana_ai.missions m
         WHERE m.user_id = claim_runner_slot.user_id AND m.mission_id = claim_runner_slot.mission_id
           AND m.due AND m.slot = claim_runner_slot.slot) THEN
        RAISE EXCEPTION 'mission % is not due at slot %', mission_id, slot
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the tick takes a mission, at the slot it plans next.';
    END IF;
    INSERT INTO mana_ai.runner_claims AS c (user_id, mission_id, slot, xact)
    VALUES (claim_runner_slot.user_id, claim_runner_slot.mission_id, claim_runner_slot.slot,
            pg_catalog.pg_current_xact_id())
    ON CONFLICT ON CONSTRAINT runner_claims_pkey
    DO UPDATE SET slot = EXCLUDED.slot, xact = EXCLUDED.xact;
END
$$;
COMMENT ON FUNCTION mana_ai.claim_runner_slot(text, text, text) IS
    'The tick takes a due mission''s slot for the current transaction (append_runner_iteration needs it); worker''s role only';

-- Append the runner's row for a mission this transaction has claimed:
-- op update of ai/aiMissions, client_id mana-ai-runner, schema_version 1;
-- data {iterations} in the current format (SPEC 11.2: field_meta, origin
-- agent, the mission's space_id), data {iterations[, updatedAt, nextRunAt]}
-- in the seed one (SPEC 1.3: field_timestamps), nextRunAt later than now.
-- stamps must stamp only fields of data; actor is the owning agent (SPEC
-- 1.4) for this mission.  Written under the user's app.current_user_id,
-- which the caller has set to user_id.
CREATE FUNCTION mana_ai.append_runner_iteration(user_id text, mission_id text, data jsonb,
                                                stamps jsonb, actor jsonb)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    seed  boolean := mana_ai.sync_format() = 'seed';
    its   jsonb := data -> 'iterations';
    extra text[];
BEGIN
    IF user_id IS NULL OR mission_id IS NULL
       OR current_setting('app.current_user_id', true) IS DISTINCT FROM user_id THEN
        RAISE EXCEPTION 'append_runner_iteration runs in the scope of the mission''s user'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Set app.current_user_id to the user first.';
    END IF;
    DELETE FROM mana_ai.runner_claims c
     WHERE c.user_id = append_runner_iteration.user_id
       AND c.mission_id = append_runner_iteration.mission_id
       AND c.xact = pg_catalog.pg_current_xact_id();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mission % was not taken by a tick in this transaction', mission_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the tick appends iterations, after claim_runner_slot().';
    END IF;
    IF jsonb_typeof(data) IS DISTINCT FROM 'object' OR jsonb_typeof(its) IS DISTINCT FROM 'array'
       OR jsonb_array_length(its) = 0
       OR jsonb_typeof(its -> -1) IS DISTINCT FROM 'object'
       OR jsonb_typeof(its -> -1 -> 'id') IS DISTINCT FROM 'string'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(its) e WHERE jsonb_typeof(e) <> 'object') THEN
        RAISE EXCEPTION 'the runner''s row must carry data.iterations, an array of iteration objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(k ORDER BY k) INTO extra FROM jsonb_object_keys(data) k
     WHERE k <> 'iterations' AND (NOT seed OR k NOT IN ('updatedAt', 'nextRunAt'));
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'the runner''s row may not write %', array_to_string(extra, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE WHEN seed THEN 'It writes iterations, updatedAt and nextRunAt (SPEC 1.3).'
                              ELSE 'It writes iterations only (SPEC 11.2).' END;
    END IF;
    IF seed AND jsonb_typeof(data -> 'nextRunAt') = 'string'
       AND coalesce(mana_ai.iso_timestamp(data ->> 'nextRunAt') <= now(), true) THEN
        RAISE EXCEPTION 'the runner''s nextRunAt must be a later instant than now'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed AND jsonb_typeof(data -> 'nextRunAt') NOT IN ('string', 'null') THEN
        RAISE EXCEPTION 'the runner''s nextRunAt must be an instant or null'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(stamps) IS DISTINCT FROM 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(stamps) k WHERE NOT data ? k) THEN
        RAISE EXCEPTION 'the runner''s stamps must stamp fields of its data'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(actor) IS DISTINCT FROM 'object' OR actor ->> 'kind' IS DISTINCT FROM 'ai'
       OR actor ->> 'missionId' IS DISTINCT FROM mission_id THEN
        RAISE EXCEPTION 'the runner''s actor must be the mission''s agent (SPEC 1.4)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One static INSERT per format: PL/pgSQL plans a statement when it
    -- first runs, so the other format's columns are never looked up.
    IF seed THEN
        INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,
                                         data, field_timestamps, client_id, schema_version, actor)
        VALUES ('ai', 'aiMissions', mission_id, user_id, 'update',
                data, stamps, 'mana-ai-runner', 1, actor);
    ELSE
        INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op,
                                         data, field_meta, client_id, schema_version, actor, origin, space_id)
        VALUES ('ai', 'aiMissions', mission_id, user_id, 'update',
                data, stamps, 'mana-ai-runner', 1, actor, 'agent',
                (SELECT s.space_id FROM public.sync_changes s
                  WHERE s.table_name = 'aiMissions' AND s.record_id = append_runner_iteration.mission_id
                    AND s.user_id = append_runner_iteration.user_id
                    AND s.app_id = 'ai' AND s.space_id IS NOT NULL
                  ORDER BY s.created_at DESC, s.id DESC LIMIT 1));
    END IF;
END
$$;
COMMENT ON FUNCTION mana_ai.append_runner_iteration(text, text, jsonb, jsonb, jsonb) IS
    'The tick''s one write into sync_changes: the runner''s iteration row (SPEC 1.3/11.2) for a mission claimed in this transaction; worker''s role only';
