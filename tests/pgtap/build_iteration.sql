-- build_iteration.sql (pgTAP): mana_ai.build_iteration and mana_ai.iso_text,
-- now in C, give exactly what their former SQL definitions (kept here as
-- the reference, pg_temp.ref_*) gave, errors included.
BEGIN;
SELECT plan(7);

CREATE FUNCTION pg_temp.ref_iso_text(ts timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

CREATE FUNCTION pg_temp.ref_build_iteration(iteration_id text, started_at timestamptz,
                                        finished_at timestamptz, plan jsonb, error jsonb)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT CASE WHEN error IS NOT NULL THEN
        jsonb_build_object(
            'id', iteration_id,
            'startedAt', pg_temp.ref_iso_text(started_at),
            'finishedAt', pg_temp.ref_iso_text(finished_at),
            'plan', '[]'::jsonb,
            'summary', coalesce(error ->> 'message', ''),
            'overallStatus', 'failed',
            'errorDetails', error,
            'source', 'server')
    ELSE
        jsonb_build_object(
            'id', iteration_id,
            'startedAt', pg_temp.ref_iso_text(started_at),
            'finishedAt', pg_temp.ref_iso_text(finished_at),
            'plan', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                           'id', iteration_id || '-' || (s.idx - 1),
                           'summary', coalesce(s.step ->> 'summary', ''),
                           'intent', jsonb_build_object(
                               'kind', 'toolCall',
                               'toolName', s.step ->> 'toolName',
                               'params', coalesce(s.step -> 'params', '{}'::jsonb)),
                           'status', 'planned',
                           'rationale', s.step ->> 'rationale') ORDER BY s.idx)
                  FROM jsonb_array_elements(plan -> 'steps') WITH ORDINALITY AS s(step, idx)),
                '[]'::jsonb),
            'summary', coalesce(plan ->> 'summary', ''),
            'overallStatus', CASE WHEN jsonb_array_length(coalesce(plan -> 'steps', '[]')) > 0
                                  THEN 'awaiting-review' ELSE 'approved' END,
            'source', 'server')
    END;
END;

CREATE TEMP TABLE cases (n int, id text, started timestamptz, finished timestamptz, plan jsonb, error jsonb);
INSERT INTO cases VALUES
 (1, 'it-1', '2026-04-15 12:00:00.123456+00', '2026-04-15 12:00:01.9999+02', '{"summary": "Woche planen", "steps": [
      {"summary": "Aufgabe", "toolName": "create_task", "params": {"title": "Einkaufen", "n": [1, 2.50, null]}, "rationale": "weil"},
      {"summary": "Termin", "toolName": "create_event", "params": {}}]}', NULL),
 (2, 'it-2', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', '{"summary": "nichts", "steps": []}', NULL),
 (3, 'it-3', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', '{"summary": "ohne Schritte"}', NULL),
 (4, 'it-4', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', NULL, NULL),
 (5, 'it-5', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', NULL, '{"name": "LlmError", "message": "timeout", "phase": "calling-llm"}'),
 (6, 'it-6', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', '{"summary": "x", "steps": [{}]}', '{"name": "ParseError", "phase": "parsing-response"}'),
 (7, 'it-7', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', NULL, '"nur Text"'),
 (8, NULL, NULL, 'infinity', '{"summary": 42, "steps": [{"summary": {"a": [1]}, "toolName": 7, "params": null, "rationale": true}, 3, "s", null, [1]]}', NULL),
 (9, 'it-9', '10000-01-01 00:00:00+00', '-infinity', '[{"summary": "array plan"}]', NULL),
 (10, 'it-10', '2026-04-15 23:59:59.9995+00', '2026-04-16 00:00:00.0004+14', '"scalar plan"', NULL),
 (11, '', '2026-04-15 12:00:00+00', '2026-04-15 12:00:00+00', '{"steps": [{"summary": "ä \" \\ \n", "toolName": "create_task"}], "summary": null}', 'null');

SELECT is_empty(
    $$SELECT n FROM cases
       WHERE mana_ai.build_iteration(id, started, finished, plan, error)
             IS DISTINCT FROM pg_temp.ref_build_iteration(id, started, finished, plan, error)$$,
    'C and SQL definitions agree on every case');
SELECT is((SELECT count(*) FROM cases WHERE mana_ai.build_iteration(id, started, finished, plan, error) IS NOT NULL),
          11::bigint, 'every case gives an iteration');
SELECT is_empty(
    $$SELECT ts FROM unnest(ARRAY['2026-04-15 12:00:00+00', '2026-04-15 23:59:59.9995+00', '2026-04-16 00:00:00.0004+14',
                                  '1999-12-31 23:59:59.999999-11', '10000-01-01 00:00:00+00', '0044-03-15 12:00:00+00 BC',
                                  'infinity', '-infinity', NULL]::timestamptz[]) ts
       WHERE mana_ai.iso_text(ts) IS DISTINCT FROM pg_temp.ref_iso_text(ts)$$,
    'iso_text: C and SQL definitions agree');
SELECT throws_ok($$SELECT mana_ai.build_iteration('x', now(), now(), '{"steps": {"a": 1}}', NULL)$$,
                 '22023', 'cannot extract elements from an object', 'steps as an object: the same error');
SELECT throws_ok($$SELECT pg_temp.ref_build_iteration('x', now(), now(), '{"steps": {"a": 1}}', NULL)$$,
                 '22023', 'cannot extract elements from an object', '(reference)');
SELECT throws_ok($$SELECT mana_ai.build_iteration('x', now(), now(), '{"steps": null}', NULL)$$,
                 '22023', 'cannot extract elements from a scalar', 'steps null: the same error');
SELECT throws_ok($$SELECT pg_temp.ref_build_iteration('x', now(), now(), '{"steps": "s"}', NULL)$$,
                 '22023', 'cannot extract elements from a scalar', '(reference)');

SELECT * FROM finish();
ROLLBACK;
