-- 20_llm.sql: the LLM client's diagnostic entry point (SPEC 8).

-- Sends the same prompt `copies` times at once through the planner's LLM
-- client, with the server's mana_ai.llm_* settings, and returns one object
-- per call: {ok, http_status, attempts, seconds, total_tokens, content,
-- error}.  Never returns the bearer key.  Honours query cancel: every call
-- still in flight is aborted within a second.  Operators only: it makes
-- the server open connections to mana_ai.llm_url.
CREATE FUNCTION mana_ai.llm_test_call(system text, user_message text, copies int DEFAULT 1)
RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'mana_ai_llm_test_call';
COMMENT ON FUNCTION mana_ai.llm_test_call(text, text, int) IS
    'Send a prompt to the configured LLM endpoint copies times concurrently; per-call results, never the key';
REVOKE ALL ON FUNCTION mana_ai.llm_test_call(text, text, int) FROM PUBLIC;
