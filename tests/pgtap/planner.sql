-- planner.sql (pgTAP): tool catalog (SPEC 7.1), policy (7.2), prompt (7.3),
-- parser (7.4) through the SQL surface.
BEGIN;
SELECT plan(41);

-- ---- the shipped catalog ----
SELECT has_table('mana_ai', 'tools', 'mana_ai.tools exists');
SELECT columns_are('mana_ai', 'tools',
    ARRAY['name', 'module', 'description', 'parameters', 'shipped'],
    'tools has the contract columns (+ shipped)');
-- the product's catalog (catalog/tool-catalog.json), fact for fact: the web
-- app executes an approved proposal by these parameter names
\set catalog `cat catalog/tool-catalog.json`
SELECT set_eq(
    $$SELECT name, module FROM mana_ai.tools WHERE shipped$$,
    format($$SELECT t->>'name' AS name, t->>'module' AS module FROM jsonb_array_elements(%L::jsonb->'tools') t$$, :'catalog'),
    'the shipped tools are the product catalog''s, with their modules');
SELECT is((SELECT count(*)::int FROM mana_ai.tools WHERE shipped), 62, '62 shipped tools');
SELECT is((SELECT count(DISTINCT module)::int FROM mana_ai.tools WHERE shipped), 25, 'over 25 modules');
SELECT set_eq(
    $$SELECT t.name AS tool, p->>'name' AS param, p->>'type' AS type, p->'required' AS req,
             coalesce(p->'enum', 'null') AS enum
        FROM mana_ai.tools t, jsonb_array_elements(t.parameters) p WHERE t.shipped$$,
    format($$SELECT t->>'name' AS tool, p->>'name' AS param, p->>'type' AS type, p->'required' AS req,
                    coalesce(p->'enum', 'null') AS enum
               FROM jsonb_array_elements(%L::jsonb->'tools') t, jsonb_array_elements(t->'parameters') p$$, :'catalog'),
    'every shipped parameter has the catalog''s name, type, required flag and enum');
SELECT is((SELECT parameters->0->>'name' FROM mana_ai.tools WHERE name = 'complete_tasks_by_title'),
    'titleMatch', 'complete_tasks_by_title takes titleMatch, as the web app executes it');
SELECT is((SELECT array_agg(p->>'name' ORDER BY p->>'name') FROM mana_ai.tools t, jsonb_array_elements(t.parameters) p
            WHERE t.name = 'create_event' AND (p->>'required')::boolean),
    ARRAY['endTime', 'startTime', 'title'], 'create_event requires title, startTime and endTime');
SELECT is_empty(
    $$SELECT name FROM mana_ai.tools WHERE shipped AND (description !~ '^[A-ZÄÖÜ].*\.$' OR description ~ '\n')$$,
    'every shipped tool has a one-line German description');
SELECT is_empty(
    $$SELECT name FROM mana_ai.tools t, jsonb_array_elements(t.parameters) p
       WHERE NOT (p ? 'name' AND p ? 'type' AND p ? 'required' AND p ? 'description')$$,
    'every shipped parameter has name, type, required, description');
SELECT has_trigger('mana_ai', 'tools', 'tools_validate', 'the catalog is validated on write');

-- ---- validation on write ----
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description) VALUES ('create_task', 'todo', 'x')$$,
    '23505', 'tool "create_task" already exists', 'duplicate name refused');
SELECT throws_ok(
    $$UPDATE mana_ai.tools SET name = 'create_task' WHERE name = 'complete_task'$$,
    '23505', NULL, 'renaming onto an existing name refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description) VALUES (' ', 'todo', 'x')$$,
    '23514', NULL, 'blank name refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_obj', 'todo', 'x', '{}')$$,
    '23514', 'invalid parameters for tool "t_obj": parameters must be a JSON array ([] for none)',
    'parameters not an array refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_str', 'todo', 'x', '["title"]')$$,
    '23514', 'invalid parameters for tool "t_str": parameter 0 is not a JSON object {name, type, required, description, enum?}',
    'parameter not an object refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_dup', 'todo', 'x',
      '[{"name":"a","type":"string","required":true,"description":""},{"name":"a","type":"number","required":false,"description":""}]')$$,
    '23514', 'invalid parameters for tool "t_dup": parameter name "a" is used twice', 'duplicate parameter name refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_type', 'todo', 'x',
      '[{"name":"a","type":"uuid","required":true,"description":""}]')$$,
    '23514', NULL, 'unknown parameter type refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_req', 'todo', 'x',
      '[{"name":"a","type":"string","required":"yes","description":""}]')$$,
    '23514', 'invalid parameters for tool "t_req": parameter 0 ("a"): required must be true or false',
    'a required flag that is not a boolean refused');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_rat', 'todo', 'x',
      '[{"name":"rationale","type":"string"}]')$$,
    '23514', NULL, 'a parameter named rationale refused (every function has it already)');
SELECT lives_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_opt', 'todo', 'x',
      '[{"name":"a","type":"string"},{"name":"n","type":"integer","enum":[1,2]}]')$$,
    'required and description may be left out, and an integer enum is fine (the tools protocol''s rules)');
SELECT throws_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t_enum', 'todo', 'x',
      '[{"name":"a","type":"string","required":true,"description":"","enum":[]}]')$$,
    '23514', NULL, 'empty enum refused');
SELECT throws_ok(
    $$UPDATE mana_ai.tools SET parameters = '[{"name": 5}]' WHERE name = 'create_task'$$,
    '23514', NULL, 'malformed parameters refused on UPDATE too');
SELECT lives_ok(
    $$INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('water_plants', 'garden', 'Giessen',
      '[{"name":"plant","type":"string","required":true,"description":"Pflanze","enum":["Ficus","Kaktus"]}]')$$,
    'a well-formed tool is accepted');

-- ---- parser ----
SELECT is(mana_ai.parse_plan(E'```json\n{"steps":[{"toolName":"water_plants","rationale":"trocken"}]}\n```') ->> 'ok',
          'true', 'the new tool is usable at once');
SELECT is(mana_ai.parse_plan('{"summary":"x","steps":[]}') -> 'plan',
          '{"summary":"x","steps":[]}'::jsonb, 'an empty plan is valid');
SELECT is(mana_ai.parse_plan('{"steps":[{"toolName":"nope","rationale":"r"}]}') ->> 'reason',
          'unknown-tool@steps[0]', 'unknown tool names its step');
SELECT is(mana_ai.parse_plan_for('{"steps":[{"toolName":"water_plants","rationale":"r"}]}',
          '{"policy":{"defaultsByModule":{"garden":"deny"}}}') ->> 'reason',
          'tool-denied@steps[0]', 'a tool denied by policy is refused');

-- ---- prompt ----
CREATE TEMP TABLE m AS SELECT '{"title":"Wocheneinkauf","conceptMarkdown":"","objective":"Ziel",
  "iterations":[{"startedAt":"2026-04-01T00:00:00Z","overallStatus":"approved","summary":"I1"},
                {"startedAt":"2026-04-02T00:00:00Z","overallStatus":"approved","summary":"I2"},
                {"startedAt":"2026-04-03T00:00:00Z","overallStatus":"approved","summary":"I3"},
                {"startedAt":"2026-04-04T00:00:00Z","overallStatus":"failed","summary":"I4"}]}'::jsonb AS rec;

SELECT matches(mana_ai.render_prompt('{"title":"A"}') ->> 'user',
    '## Inputs\n_\(keine verlinkten Inputs\)_\n', 'no inputs: marker');
SELECT matches(mana_ai.render_prompt('{"title":"A"}') ->> 'user',
    '## Bisherige Iterationen\n_\(erste Iteration\)_\n', 'first iteration: marker');
SELECT matches(mana_ai.render_prompt((SELECT rec FROM m)) ->> 'user',
    '## Konzept\n_\(leer\)_\n', 'empty concept: _(leer)_');
SELECT is(mana_ai.render_prompt('{"title":"A"}', NULL,
      '[{"module":"goals","table":"companionGoals","title":"G","content":"Fortschritt: 1 / 2 (week)"},
        {"module":"notes","table":"notes","title":"N","content":"Text"}]') ->> 'user'
    ~ '### goals/companionGoals: G\nFortschritt: 1 / 2 \(week\)\n\n### notes/notes: N\nText\n', true,
    'several inputs: heading and content line each, in order');
SELECT ok((SELECT p !~ 'I1' AND p ~ 'I2.*I3.*I4'
             FROM (SELECT mana_ai.render_prompt(rec) ->> 'user' AS p FROM m) s),
    'more than three iterations: the last three, oldest first');
SELECT ok((SELECT position('<agent_context>' IN p) = 1 AND p ~ 'Agent: Kira\nRolle: Coach\n'
                  AND p ~ 'Sei knapp\.' AND p ~ 'Kontext, keine Anweisungen\)\n.*Trinkt gern Tee\.'
             FROM (SELECT mana_ai.render_prompt(rec,
                     '{"name":"Kira","role":"Coach","systemPrompt":"Sei knapp.","memory":"Trinkt gern Tee."}') ->> 'system' AS p
                   FROM m) s),
    'agent with plaintext systemPrompt and memory: in <agent_context>, memory as context');
SELECT ok((SELECT r::text !~ 'enc:1:' AND r ->> 'system' ~ '^<agent_context>\nAgent: Kira\n</agent_context>\n'
             FROM (SELECT mana_ai.render_prompt(rec,
                     '{"name":"Kira","systemPrompt":"enc:1:aXY=.Y3Q=","memory":"enc:1:aXY=.Y3Q="}') AS r
                   FROM m) s),
    'agent with ciphertext systemPrompt and memory: never injected');
SELECT ok((SELECT p !~ '`(create_task|complete_task|complete_tasks_by_title)`' AND p ~ '`create_event`'
             FROM (SELECT mana_ai.render_prompt(rec, '{"name":"K","policy":{"defaultsByModule":{"todo":"deny"}}}') ->> 'system' AS p
                   FROM m) s),
    'policy denying module todo hides all todo tools, keeps others');
SELECT ok((SELECT p ~ '`create_task`' FROM (SELECT mana_ai.render_prompt(rec,
             '{"name":"K","policy":{"tools":{"create_task":"propose"},"defaultsByModule":{"todo":"deny"}}}') ->> 'system' AS p FROM m) s),
    'policy.tools[name] overrides the module default');
SELECT is(mana_ai.render_prompt((SELECT rec FROM m), '{"name":"K"}'),
          mana_ai.render_prompt((SELECT rec FROM m), '{"name":"K"}'),
          'deterministic');
SELECT ok(mana_ai.render_prompt('{"title":"A"}') ->> 'system' ~ '```json\n\{\n  "summary"',
    'system message carries the answer format');
SELECT ok(mana_ai.render_prompt('{"title":"A"}') ->> 'system' !~ '<agent_context>',
    'no agent: no <agent_context>');
SELECT throws_ok($$SELECT mana_ai.render_prompt('{}', NULL, '{"x":1}')$$, '22023', 'inputs must be a JSON array',
    'inputs must be an array');

SELECT * FROM finish();
ROLLBACK;
