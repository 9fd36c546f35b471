-- mission_runs: the per-mission run history (issue 13): its shape, who
-- sees which rows (row-level security like the audit; the operator sees
-- all), the last-run view, and that only the tick's function writes it.
BEGIN;
SELECT plan(18);

SELECT has_table('mana_ai', 'mission_runs', 'mission_runs exists');
SELECT columns_are('mana_ai', 'mission_runs',
    ARRAY['id', 'tick_id', 'user_id', 'mission_id', 'agent_id', 'slot', 'decision', 'iteration_id',
          'model', 'tokens', 'planner_ms', 'error_phase', 'error_message', 'ts']);
SELECT has_view('mana_ai', 'mission_last_run', 'mission_last_run exists');
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'mana_ai.mission_runs'::regclass),
    'row-level security is enabled and forced');

-- one tick's decisions, as the tick writes them
SELECT is(mana_ai.record_mission_runs(41, '[
    {"user_id": "ann", "mission_id": "m1", "agent_id": "legacy:ai-default", "slot": "2026-12-01T08:00:00.000Z",
     "decision": "failed", "error_phase": "planning", "error_message": "LLM timeout", "planner_ms": 30000.5},
    {"user_id": "ann", "mission_id": "m2", "agent_id": "legacy:ai-default", "decision": "skipped-paused"},
    {"user_id": "bob", "mission_id": "m9", "agent_id": "a7", "decision": "skipped-budget"}]'::jsonb), 3::bigint,
    'record_mission_runs inserts every row of a tick');
SELECT is(mana_ai.record_mission_runs(42, '[
    {"user_id": "ann", "mission_id": "m1", "agent_id": "legacy:ai-default", "slot": "2026-12-01T08:00:00.000Z",
     "decision": "ran", "iteration_id": "it-1", "model": "gpt-4o-mini", "tokens": 812, "planner_ms": 640}]'::jsonb), 1::bigint,
    'and the next tick''s');
SELECT throws_ok($$SELECT mana_ai.record_mission_runs(43, '[{"user_id": "ann", "mission_id": "m1", "agent_id": "x", "decision": "maybe"}]')$$,
    '23514', NULL, 'an unknown decision is refused');

CREATE ROLE mana_runs_app NOLOGIN;
CREATE ROLE mana_runs_ops NOLOGIN;
CREATE ROLE mana_runs_monitor NOLOGIN IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA mana_ai TO mana_runs_app, mana_runs_ops, mana_runs_monitor;
GRANT SELECT ON mana_ai.mission_runs TO mana_runs_monitor;
GRANT EXECUTE ON FUNCTION mana_ai.mission_runs_of_every_user() TO mana_runs_ops;
GRANT SELECT ON mana_ai.mission_runs, mana_ai.mission_last_run TO mana_runs_app, mana_runs_ops;

SET LOCAL ROLE mana_runs_app;
SELECT is((SELECT count(*)::int FROM mana_ai.mission_runs), 0, 'no user scope: no row');
SELECT set_config('app.current_user_id', 'ann', true);
SELECT is((SELECT count(*)::int FROM mana_ai.mission_runs), 3, 'ann sees her three rows');
SELECT is((SELECT count(*)::int FROM mana_ai.mission_runs WHERE user_id <> 'ann'), 0, 'and nobody else''s');
SELECT results_eq($$SELECT mission_id, decision, iteration_id, model, tokens FROM mana_ai.mission_last_run ORDER BY mission_id$$,
    $$VALUES ('m1', 'ran', 'it-1', 'gpt-4o-mini', 812::bigint), ('m2', 'skipped-paused', NULL, NULL, NULL)$$,
    'mission_last_run: one row per mission, the latest decision');
SELECT throws_ok($$INSERT INTO mana_ai.mission_runs (tick_id, user_id, mission_id, agent_id, decision)
                   VALUES (1, 'ann', 'm1', 'x', 'ran')$$,
    '42501', NULL, 'a user cannot write the history');
SELECT throws_ok($$SELECT mana_ai.record_mission_runs(1, '[]')$$,
    '42501', NULL, 'nor call the tick''s writer');
RESET ROLE;

SET LOCAL ROLE mana_runs_ops;
SELECT set_config('app.current_user_id', '', true);
SELECT is((SELECT count(*)::int FROM mana_ai.mission_runs), 4, 'the operator (mission_runs_of_every_user) sees every row');
SELECT is((SELECT count(*)::int FROM mana_ai.mission_last_run), 3, 'and every mission''s last run');
RESET ROLE;
SET LOCAL ROLE mana_runs_monitor;
SELECT is((SELECT count(*)::int FROM mana_ai.mission_runs), 0, 'pg_monitor alone shows no user''s rows (0.3.0)');
RESET ROLE;

SELECT ok(NOT has_table_privilege('public', 'mana_ai.mission_runs', 'SELECT'), 'PUBLIC cannot read the history');
SELECT ok(NOT has_function_privilege('public', 'mana_ai.purge_mission_runs(int)', 'EXECUTE'), 'PUBLIC cannot purge it');

SELECT * FROM finish();
ROLLBACK;
