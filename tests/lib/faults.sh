# faults.sh: helpers for the worker fault tests (sourced after common.sh).
# Every wait is bounded.

# mock_get PATH: GET from the mock LLM (JSON on stdout).
mock_get() {
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "$MOCK_URL$1"
}

# mock_calls MARKER: the chat requests whose user message contains MARKER,
# one line each: "<arrival epoch seconds> <status the mock chose>".
mock_calls() {
    mock_get /__requests | python3 -c '
import json, sys
marker = sys.argv[1]
for r in json.load(sys.stdin):
    body = r.get("body")
    msgs = body.get("messages", []) if isinstance(body, dict) else []
    user = "".join(m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user")
    if r.get("path") == "/v1/chat/completions" and marker in user:
        print("%.6f %s" % (r["at"], r["status"]))' "$1"
}

# mock_conversations MARKER: how many planner conversations the mock
# started for the missions whose user message holds MARKER (a request with
# no assistant message yet is a conversation's first round), whatever the
# protocol: the tools protocol sends a round per tool call, json one.
mock_conversations() {
    mock_get /__requests | python3 -c '
import json, sys
marker, n = sys.argv[1], 0
for r in json.load(sys.stdin):
    body = r.get("body")
    msgs = body.get("messages", []) if isinstance(body, dict) else []
    user = "".join(m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user")
    first = not any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs)
    if r.get("path") == "/v1/chat/completions" and marker in user and first:
        n += 1
print(n)' "$1"
}

# use_llm_key: a fresh bearer key in a 0600 file owned by the server's
# user, configured as mana_ai.llm_key_file; sets LLM_KEY.
use_llm_key() {
    local dir owner
    dir=$(mktemp -d)
    chmod 0755 "$dir"
    LLM_KEY="sk-faults-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    LLM_KEY_FILE=$dir/llm.key
    printf '%s\n' "$LLM_KEY" >"$LLM_KEY_FILE"
    owner=$(stat -c %u "$(q postgres -c 'SHOW data_directory')")
    chown "$owner" "$LLM_KEY_FILE" 2>/dev/null || true
    chmod 0600 "$LLM_KEY_FILE"
    set_guc mana_ai.llm_key_file "$LLM_KEY_FILE"
}

# wait_worker_ticks N [DB]: wait until N worker ticks have started (and
# finished) after now, so a reload sent before is surely in effect.
wait_worker_ticks() {
    local n=$1 db=${2:-mana_sync} t0
    t0=$(q "$db" -c "SELECT clock_timestamp()")
    poll_until 30 "$db" "SELECT count(*) >= $n FROM mana_ai.tick_runs WHERE source = 'worker'
                           AND started_at > '$t0' AND finished_at IS NOT NULL" t \
        || fail "the worker did not tick $n times"
}

# add_missions [DB] < lines "mission_id|user_id|objective": one due mission
# each (legacy, interval 60 min, nextRunAt in the past), all in one
# transaction with the default created_at as the sync server writes them.
add_missions() {
    local db=${1:-mana_sync} values="" id user objective
    while IFS='|' read -r id user objective; do
        [ -n "$id" ] || continue
        values+="${values:+,}('$id', '$user', '$objective')"
    done
    q "$db" <<SQL >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.id, m.usr, 'insert',
       jsonb_build_object('title', 'Mission ' || m.id, 'conceptMarkdown', 'Fehlerfall',
                          'objective', m.objective, 'inputs', '[]'::jsonb,
                          'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb,
                          'state', 'active', 'nextRunAt', '2026-01-01T08:00:00.000Z',
                          'iterations', '[]'::jsonb,
                          'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
       'web'
  FROM (VALUES $values) AS m(id, usr, objective);
SQL
}

# log_attempts [DB]: keep every write to mana_ai.mission_attempts in
# public.attempt_log (the table keeps only the latest), so a test can see
# each attempt's backoff after the fact.
log_attempts() {
    local db=${1:-mana_sync}
    q "$db" <<'SQL' >/dev/null
CREATE TABLE public.attempt_log (
    mission_id text, attempts int, next_attempt_at timestamptz,
    updated_at timestamptz, last_error text,
    logged_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION public.log_attempt() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO public.attempt_log (mission_id, attempts, next_attempt_at, updated_at, last_error)
    VALUES (NEW.mission_id, NEW.attempts, NEW.next_attempt_at, NEW.updated_at, NEW.last_error);
    RETURN NEW;
END $$;
CREATE TRIGGER log_attempt AFTER INSERT OR UPDATE ON mana_ai.mission_attempts
    FOR EACH ROW EXECUTE FUNCTION public.log_attempt();
SQL
}

# assert_no_key [DB]: the bearer key is nowhere but in the mock's request
# headers: not in the server log, tick_runs, attempts, the written rows or
# the status view.
assert_no_key() {
    local db=${1:-mana_sync} hits
    [ -n "${LLM_KEY:-}" ] || fail "assert_no_key without use_llm_key"
    if grep -qF -- "$LLM_KEY" "$MANA_PG_LOG"; then fail "the LLM key is in the server log"; fi
    hits=$(q "$db" -v key="$LLM_KEY" <<'SQL'
SELECT (SELECT count(*) FROM mana_ai.tick_runs WHERE strpos(errors::text || coalesce(result::text, ''), :'key') > 0)
     + (SELECT count(*) FROM mana_ai.mission_attempts WHERE strpos(coalesce(last_error, ''), :'key') > 0)
     + (SELECT count(*) FROM public.attempt_log WHERE strpos(coalesce(last_error, ''), :'key') > 0)
     + (SELECT count(*) FROM public.sync_changes WHERE strpos(data::text || coalesce(actor::text, ''), :'key') > 0)
     + (SELECT count(*) FROM mana_ai.status WHERE strpos(status::text, :'key') > 0)
SQL
)
    [ "$hits" = 0 ] || fail "the LLM key is in $hits row(s) of tick_runs/mission_attempts/sync_changes/status"
    mock_get /__requests | python3 -c '
import json, sys
want = "Bearer " + sys.argv[1]
reqs = [r for r in json.load(sys.stdin) if r.get("path") == "/v1/chat/completions"]
sys.exit(0 if reqs and all(r["headers"].get("Authorization") == want for r in reqs) else 1)' "$LLM_KEY" \
        || fail "the key was not sent as the bearer header on every call (so the scan proves nothing)"
}
