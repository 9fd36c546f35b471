-- 10_projections.sql: the event log folded into live records (SPEC 2, 3).
-- lww_merge / replay_record / refresh_snapshots, the refresh's own state,
-- the one cross-user discovery path, and the missions/agents views.

-- ---- LWW merge (SPEC 2) ----

CREATE FUNCTION mana_ai.lww_merge_trans(internal, text, text, jsonb, jsonb, timestamptz)
    RETURNS internal
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_lww_merge_trans';
CREATE FUNCTION mana_ai.lww_merge_final(internal)
    RETURNS jsonb
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_lww_merge_final';
CREATE FUNCTION mana_ai.lww_merge_report_final(internal)
    RETURNS jsonb
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'mana_ai_lww_merge_report_final';

-- Feed rows in order: lww_merge(record_id, op, data, field_timestamps,
-- created_at ORDER BY created_at, id).  The result depends on that order.
CREATE AGGREGATE mana_ai.lww_merge(record_id text, op text, data jsonb,
                                   field_timestamps jsonb, created_at timestamptz) (
    SFUNC = mana_ai.lww_merge_trans,
    STYPE = internal,
    FINALFUNC = mana_ai.lww_merge_final,
    FINALFUNC_MODIFY = READ_ONLY
);
COMMENT ON AGGREGATE mana_ai.lww_merge(text, text, jsonb, jsonb, timestamptz) IS
    'Field-level last-writer-wins merge of one record''s sync_changes rows; call with ORDER BY created_at, id';

-- Same fold, with the counts: {record, rowsApplied, skippedRows, badStamps, tombstoned}.
CREATE AGGREGATE mana_ai.lww_merge_report(record_id text, op text, data jsonb,
                                          field_timestamps jsonb, created_at timestamptz) (
    SFUNC = mana_ai.lww_merge_trans,
    STYPE = internal,
    FINALFUNC = mana_ai.lww_merge_report_final,
    FINALFUNC_MODIFY = READ_ONLY
);
COMMENT ON AGGREGATE mana_ai.lww_merge_report(text, text, jsonb, jsonb, timestamptz) IS
    'lww_merge plus the number of rows applied, rows skipped as malformed and stamps that did not parse';

CREATE FUNCTION mana_ai.replay_record(user_id text, app_id text, table_name text, record_id text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'mana_ai_replay_record_sql';
COMMENT ON FUNCTION mana_ai.replay_record(text, text, text, text) IS
    'One record replayed by LWW from its whole history, read with app.current_user_id = user_id; NULL if never written or deleted';
