-- planner: strict parse (SPEC 7.4), prompt (SPEC 7.3), catalog checks (7.1)
CREATE EXTENSION mana_ai;

-- Accepted shapes: the normalized plan is returned.
SELECT mana_ai.parse_plan(E'Gern! Hier ist mein Plan:\n```json\n{"summary": "Einkauf", "steps": [{"summary": "Milch", "toolName": "create_task", "params": {"title": "Milch"}, "rationale": "Kuehlschrank leer"}]}\n```\nViel Erfolg.');
SELECT mana_ai.parse_plan(E'```\n{"steps": [{"toolName": "complete_task", "rationale": "erledigt"}]}\n```');
SELECT mana_ai.parse_plan('  {"summary": "nichts", "steps": []}  ');
-- two blocks: the first one wins
SELECT mana_ai.parse_plan(E'```json\n{"summary": "eins", "steps": []}\n```\n```json\n{"summary": "zwei", "steps": []}\n```') -> 'plan' ->> 'summary' AS first_block;

-- Rejections, each with its reason.
SELECT mana_ai.parse_plan(E'```json\n{"steps": [ {"toolName": }\n```') ->> 'reason' AS invalid_json;
SELECT mana_ai.parse_plan(E'```json\n[{"toolName": "create_task", "rationale": "r"}]\n```') ->> 'reason' AS top_level_array;
SELECT mana_ai.parse_plan('{"steps": {"toolName": "create_task"}}') ->> 'reason' AS steps_not_array;
SELECT mana_ai.parse_plan('{"steps": [{"toolName": "launch_rocket", "rationale": "r"}]}');
SELECT mana_ai.parse_plan('{"steps": [{"toolName": "create_task"}]}') ->> 'reason' AS missing_rationale;
SELECT mana_ai.parse_plan('{"steps": [{"toolName": "create_task", "rationale": ""}]}') ->> 'reason' AS empty_rationale;
SELECT mana_ai.parse_plan('{"steps": [{"toolName": "create_task", "rationale": "r", "params": [1]}]}') ->> 'reason' AS params_not_object;
SELECT mana_ai.parse_plan('Leider habe ich keinen Plan.') ->> 'reason' AS prose_only;
-- caps: 10 MB is refused by size, 10,000 levels by depth
SELECT mana_ai.parse_plan(repeat('x', 10 * 1024 * 1024)) ->> 'reason' AS ten_megabytes;
SELECT mana_ai.parse_plan('{"steps":' || repeat('[', 10000) || repeat(']', 10000) || '}') ->> 'reason' AS deep;

-- The agent's policy filters the catalog (SPEC 7.2).
SELECT mana_ai.parse_plan_for('{"steps": [{"toolName": "create_task", "rationale": "r"}]}',
    '{"name": "Kira", "policy": {"tools": {}, "defaultsByModule": {"todo": "deny"}, "defaultForAi": "auto"}}') ->> 'reason' AS module_denied;
SELECT mana_ai.parse_plan_for('{"steps": [{"toolName": "create_place", "rationale": "r", "params": {"name": "Cafe"}}]}',
    '{"name": "Kira", "policy": {"defaultsByModule": {"todo": "deny"}}}') ->> 'ok' AS other_module_ok;
SELECT mana_ai.parse_plan_for('{"steps": [{"toolName": "create_task", "rationale": "r"}]}', NULL) ->> 'ok' AS no_agent_ok;

-- A DBA-added tool is known to the parser at once.
INSERT INTO mana_ai.tools (name, module, description, parameters)
VALUES ('water_plants', 'garden', 'Erinnert ans Giessen.',
        '[{"name": "plant", "type": "string", "required": true, "description": "Pflanze"}]');
SELECT mana_ai.parse_plan('{"steps": [{"toolName": "water_plants", "rationale": "trocken"}]}') ->> 'ok' AS new_tool_ok;

-- The catalog refuses malformed rows, each with a hint.
INSERT INTO mana_ai.tools (name, module, description) VALUES ('create_task', 'todo', 'noch einmal');
INSERT INTO mana_ai.tools (name, module, description) VALUES ('', 'todo', 'leer');
INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t1', 'todo', 'd', '{"name": "x"}');
INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t2', 'todo', 'd', '[{"name": "a", "type": "string", "required": true, "description": ""}, {"name": "a", "type": "string", "required": false, "description": ""}]');
INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t3', 'todo', 'd', '[{"name": "a", "type": "date", "required": true, "description": ""}]');
INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t4', 'todo', 'd', '[{"name": "a", "type": "string", "required": "yes", "description": ""}]');
INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t5', 'todo', 'd', '[{"name": "a", "type": "string", "required": true, "description": "", "enum": [1, 2]}]');
INSERT INTO mana_ai.tools (name, module, description, parameters) VALUES ('t6', 'todo', 'd', '[{"name": "a", "type": "string", "required": true, "description": "", "default": "x"}]');
UPDATE mana_ai.tools SET parameters = '[{"type": "string"}]' WHERE name = 'undo_drink';
SELECT count(*) AS tools FROM mana_ai.tools;

-- The prompt, in full, for a mission with inputs, history and an agent.
SELECT p ->> 'system' AS system, p ->> 'user' AS "user"
FROM mana_ai.render_prompt(
  '{"title": "Wocheneinkauf", "conceptMarkdown": "Jeden Samstag einkaufen.", "objective": "Nichts vergessen",
    "iterations": [
      {"startedAt": "2026-04-01T08:00:00Z", "overallStatus": "approved", "summary": "alt", "plan": []},
      {"startedAt": "2026-04-02T08:00:00Z", "overallStatus": "approved", "summary": "zweite", "plan": []},
      {"startedAt": "2026-04-03T08:00:00Z", "overallStatus": "awaiting-review", "summary": "dritte",
       "plan": [{"summary": "Milch kaufen", "status": "approved"}, {"summary": "Eier kaufen", "status": "rejected"}],
       "userFeedback": "Keine Eier."},
      {"startedAt": "2026-04-04T08:00:00Z", "overallStatus": "failed", "summary": "vierte"}]}',
  '{"name": "Kira", "role": "Haushalt", "systemPrompt": "Sei knapp.", "memory": "enc:1:AAAAAAAAAAAAAAAA.BBBB",
    "policy": {"defaultsByModule": {"places": "deny", "drink": "deny", "news": "deny", "garden": "deny", "calendar": "deny"}}}',
  '[{"module": "goals", "table": "companionGoals", "title": "Sparen", "content": "Fortschritt: 3 / 10 (month)"},
    {"module": "notes", "table": "notes", "title": "Liste", "content": "Milch, Brot"}]') AS p;

-- Minimal mission: the markers for empty concept, no inputs, first iteration.
SELECT mana_ai.render_prompt('{"title": "Leer"}') ->> 'user' AS "user";
SELECT mana_ai.render_prompt(NULL) IS NULL AS null_mission;
SELECT mana_ai.render_prompt('{"title": "x"}', NULL, '{"module": "notes"}');

DELETE FROM mana_ai.tools WHERE name = 'water_plants';
DROP EXTENSION mana_ai CASCADE;
