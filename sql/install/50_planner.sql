-- 50_planner.sql: the planner's SQL surface (SPEC 7): validation of the
-- tool catalog on write, the strict parser and the prompt renderer.
-- mana_ai.tools itself is created (and seeded) in 00_schema.sql.

-- ---------------------------------------------------------------------
-- Tool catalog validation.  The catalog is data a DBA edits, and the
-- planner shows it to the LLM verbatim, so a row is checked on every
-- INSERT and UPDATE: a name the LLM can repeat exactly, and parameters
-- of one fixed shape.  The trigger words each refusal with a hint; the
-- CHECK constraints stay as a backstop should the trigger be disabled.
-- ---------------------------------------------------------------------

ALTER TABLE mana_ai.tools
    ADD CONSTRAINT tools_name_format
        CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD CONSTRAINT tools_module_not_empty
        CHECK (module ~ '^[a-z][a-zA-Z0-9_-]{0,62}$'),
    ADD CONSTRAINT tools_description_not_empty
        CHECK (btrim(description) <> '');

CREATE FUNCTION mana_ai.tools_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p       jsonb;
    i       int := 0;
    seen    text[] := '{}';
    pname   text;
    bad_key text;
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
    IF NEW.parameters IS NULL OR jsonb_typeof(NEW.parameters) <> 'array' THEN
        RAISE EXCEPTION 'parameters of tool "%" must be a JSON array', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'Use [] for a tool without parameters, or [{"name": ..., "type": ..., "required": ..., "description": ...}].';
    END IF;

    FOR p IN SELECT value FROM jsonb_array_elements(NEW.parameters) AS e(value)
    LOOP
        IF jsonb_typeof(p) <> 'object' THEN
            RAISE EXCEPTION 'parameter % of tool "%" must be a JSON object', i, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'Each parameter is {"name", "type", "required", "description"} and optionally "enum".';
        END IF;

        SELECT k INTO bad_key FROM jsonb_object_keys(p) AS k
         WHERE k NOT IN ('name', 'type', 'required', 'description', 'enum')
         ORDER BY k LIMIT 1;
        IF bad_key IS NOT NULL THEN
            RAISE EXCEPTION 'parameter % of tool "%" has unknown key "%"', i, NEW.name, bad_key
                USING ERRCODE = 'check_violation',
                      HINT = 'Allowed keys: name, type, required, description, enum.';
        END IF;

        IF jsonb_typeof(p->'name') IS DISTINCT FROM 'string'
           OR NOT (p->>'name') ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'parameter % of tool "%" needs a name', i, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'A parameter name is an identifier such as "dueDate".';
        END IF;
        pname := p->>'name';
        IF pname = ANY (seen) THEN
            RAISE EXCEPTION 'tool "%" has parameter "%" twice', NEW.name, pname
                USING ERRCODE = 'check_violation',
                      HINT = 'Parameter names must be unique within a tool.';
        END IF;
        seen := seen || pname;

        IF jsonb_typeof(p->'type') IS DISTINCT FROM 'string'
           OR NOT (p->>'type') IN ('string', 'number', 'integer', 'boolean', 'array', 'object') THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" has an invalid type', pname, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'type is one of string, number, integer, boolean, array, object.';
        END IF;
        IF jsonb_typeof(p->'required') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" needs "required": true or false', pname, NEW.name
                USING ERRCODE = 'check_violation';
        END IF;
        IF jsonb_typeof(p->'description') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" needs a description string', pname, NEW.name
                USING ERRCODE = 'check_violation';
        END IF;
        IF p ? 'enum' AND (
               jsonb_typeof(p->'enum') <> 'array'
            OR jsonb_array_length(p->'enum') = 0
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(p->'enum') AS v(x)
                        WHERE jsonb_typeof(x) <> 'string')
            OR (SELECT count(DISTINCT x) <> count(*) FROM jsonb_array_elements(p->'enum') AS v(x))) THEN
            RAISE EXCEPTION 'parameter "%" of tool "%" has an invalid enum', pname, NEW.name
                USING ERRCODE = 'check_violation',
                      HINT = 'enum is a non-empty array of distinct strings.';
        END IF;
        i := i + 1;
    END LOOP;

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
    'Refuses a mana_ai.tools row whose parameters are not [{name, type, required, description, enum?}]';

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
