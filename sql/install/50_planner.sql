-- 50_planner.sql: the planner's SQL surface (SPEC 7): validation of the
-- tool catalog on write, the strict parser and the prompt renderer.
-- mana_ai.tools itself is created (and seeded) in 00_schema.sql.

-- ---------------------------------------------------------------------
-- Tool catalog validation.  The catalog is data a DBA edits, and the
-- planner shows it to the LLM verbatim, so a row is checked on every
-- INSERT and UPDATE: a name the LLM can repeat exactly, and parameters
-- the tools protocol can turn into a JSON Schema (the same C check).  The trigger words each refusal with a hint; the
-- CHECK constraints stay as a backstop should the trigger be disabled.
-- ---------------------------------------------------------------------

ALTER TABLE mana_ai.tools
    ADD CONSTRAINT tools_name_format
        CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD CONSTRAINT tools_module_not_empty
        CHECK (module ~ '^[a-z][a-zA-Z0-9_-]{0,62}$'),
    ADD CONSTRAINT tools_description_not_empty
        CHECK (btrim(description) <> '');

CREATE FUNCTION mana_ai.tool_parameters_error(parameters jsonb) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'mana_ai_tool_parameters_error';
COMMENT ON FUNCTION mana_ai.tool_parameters_error(jsonb) IS
    'Why a parameter list cannot become the JSON Schema of a tools-protocol function (NULL: it can)';

CREATE FUNCTION mana_ai.tools_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    problem text;
BEGIN
    IF NEW.name IS NULL OR NEW.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tool name "%"', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'A tool name is lower-case snake_case of 1 to 63 characters, such as create_task.';
    END IF;
    IF NEW.module IS NULL OR NEW.module !~ '^[a-z][a-zA-Z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid module "%" for tool "%"', NEW.module, NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'A module is the app name the tool writes to, such as todo or calendar.';
    END IF;
    IF NEW.description IS NULL OR btrim(NEW.description) = '' THEN
        RAISE EXCEPTION 'tool "%" needs a description', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'The planner shows the description to the LLM; say what the tool does.';
    END IF;
    IF NEW.parameters IS NULL THEN
        RAISE EXCEPTION 'parameters of tool "%" must be a JSON array', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'Use [] for a tool without parameters, or [{"name": ..., "type": ..., "required": ..., "description": ...}].';
    END IF;

    -- The one rule set of the tools protocol (src/core/tool_schema.c): a
    -- list it cannot turn into a JSON Schema is refused here, not when a
    -- tick offers the tool.
    problem := mana_ai.tool_parameters_error(NEW.parameters);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid parameters for tool "%": %', NEW.name, problem
            USING ERRCODE = 'check_violation',
                  HINT = 'parameters is [] or [{"name": "dueDate", "type": "string", "required": false, "description": "...", "enum": [...]}]: name an identifier other than rationale, type one of string, number, integer, boolean, array, object; required, description and enum optional.';
    END IF;

    -- The primary key is the real guard (also between concurrent
    -- writers); this check only words the common case with a hint.
    IF EXISTS (SELECT 1 FROM mana_ai.tools t
                WHERE t.name = NEW.name
                  AND (TG_OP = 'INSERT' OR t.name IS DISTINCT FROM OLD.name)) THEN
        RAISE EXCEPTION 'tool "%" already exists', NEW.name
            USING ERRCODE = 'unique_violation',
                  HINT = 'Tool names are unique; UPDATE the existing row instead.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION mana_ai.tools_validate() IS
    'Refuses a mana_ai.tools row whose name, module or description is unusable or whose parameters cannot become a JSON Schema';

CREATE TRIGGER tools_validate
    BEFORE INSERT OR UPDATE ON mana_ai.tools
    FOR EACH ROW EXECUTE FUNCTION mana_ai.tools_validate();

-- ---------------------------------------------------------------------
-- Parser and prompt (SPEC 7.3, 7.4, 9).  No LLM call in any of them.
-- ---------------------------------------------------------------------

CREATE FUNCTION mana_ai.parse_plan(answer text) RETURNS jsonb
LANGUAGE c STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mana_ai_parse_plan';
COMMENT ON FUNCTION mana_ai.parse_plan(text) IS
    'Strict parse of an LLM answer against the full tool catalog: {ok:true, plan:{summary, steps}} or {ok:false, reason, step?, detail}';

CREATE FUNCTION mana_ai.parse_plan_for(answer text, agent jsonb) RETURNS jsonb
LANGUAGE c STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mana_ai_parse_plan_for_agent';
COMMENT ON FUNCTION mana_ai.parse_plan_for(text, jsonb) IS
    'parse_plan against the catalog filtered by the agent record''s policy (NULL agent: all tools)';

CREATE FUNCTION mana_ai.render_prompt(mission jsonb, agent jsonb DEFAULT NULL, inputs jsonb DEFAULT '[]')
RETURNS jsonb
LANGUAGE c STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mana_ai_render_prompt_sql';
COMMENT ON FUNCTION mana_ai.render_prompt(jsonb, jsonb, jsonb) IS
    'The planner prompt {system, user} for a mission record, an optional agent record and resolved inputs [{module, table, title, content}]';
