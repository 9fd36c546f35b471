#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# A mission with a key grant, planned by the worker's tick against the mock
# LLM (SPEC 4.5-4.7, 5, 6), with the TEST-ONLY key and the WebCrypto
# vectors of tests/fixtures/crypto:
#  - the prompt the mock received holds the decrypted note and task (note
#    content cut to 500 characters + "…", task line as SPEC 6) and no
#    enc:1: text, also not the agent's encrypted memory;
#  - mana_ai.decrypt_audit: one row per decrypt attempt of that tick, with
#    the user, mission and the iteration id that was written (ok for the
#    note and the task, scope-violation for a journal entry outside the
#    grant's recordIds), none for the missions below;
#  - the same inputs on a mission without a grant and on one with an
#    expired grant are dropped: no plaintext, no ciphertext, no audit row;
#  - no plaintext in the server log (log_statement = all, debug1), in
#    tick_runs, or in anything else the tick wrote.
# The missions fall due a moment after the worker started (a worker whose
# now() never moved would never plan them).
set -euo pipefail
source tests/lib/common.sh
fx=tests/fixtures/crypto
tmp=$(mktemp -d)
kdir=$(mktemp -d)
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$tmp" "$kdir"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
psql -X -qAt -d postgres -c "ALTER SYSTEM SET log_min_messages = 'debug1'" \
     -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null

# The runner's key, owned by the server's user, 0600.
use_test_grant_key "$kdir"

# Encrypted inputs of u1 (only ciphertext goes over SQL, so the statement
# log cannot hold plaintext): note n1, task t1, journal j1; a plaintext goal.
q mana_sync -c "
SELECT set_config('app.current_user_id', 'u1', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('notes', 'notes', 'n1', 'u1', 'insert',
   jsonb_build_object('title', '$(vec enc_note_title)', 'content', '$(vec enc_note_content)'), 'web'),
  ('todo', 'tasks', 't1', 'u1', 'insert',
   jsonb_build_object('title', '$(vec enc_task_title)', 'description', '$(vec enc_task_description)',
                      'status', 'open', 'dueDate', '2026-05-01'), 'web'),
  ('journal', 'journal', 'j1', 'u1', 'insert', jsonb_build_object('content', '$(vec enc_note_title)'), 'web'),
  ('companion', 'companionGoals', 'g1', 'u1', 'insert',
   '{\"title\": \"Zehn Seiten lesen\", \"currentValue\": 3, \"target\": {\"value\": 10, \"period\": \"week\"}}', 'web'),
  ('ai', 'agents', 'ag-crypt', 'u1', 'insert',
   jsonb_build_object('name', 'Geheimnisvoll', 'role', 'Planer', 'state', 'active',
                      'systemPrompt', 'Sei knapp.', 'memory', '$(vec enc_object)'), 'web')" >/dev/null

inputs='[{"module": "notes", "table": "notes", "id": "n1"}, {"module": "tasks", "table": "tasks", "id": "t1"},
         {"module": "journal", "table": "journal", "id": "j1"}, {"module": "goals", "table": "companionGoals", "id": "g1"}]'
q mana_sync -c "
SELECT set_config('app.current_user_id', 'u1', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.id, 'u1', 'insert',
       jsonb_build_object('title', 'Mission ' || m.id, 'objective', m.objective, 'inputs', '$inputs'::jsonb,
                          'state', 'active', 'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                          'nextRunAt', due.at)
       || m.extra,
       'web'
  FROM (SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC' + interval '2 s', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at) due,
       (VALUES ('mission-abc', 'Ziel mit Grant',
                jsonb_build_object('agentId', 'ag-crypt', 'grant', '$(vec grant_ok)'::jsonb)),
               ('mission-nogrant', 'Ziel ohne Grant', '{}'::jsonb),
               ('mission-expired', 'Ziel abgelaufen', jsonb_build_object('grant', '$(vec grant_expired)'::jsonb))
       ) AS m(id, objective, extra)" >/dev/null

written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
poll_until 30 mana_sync "$written" 3 \
    || { q mana_sync -c "SELECT id, status, due_missions, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-300;
         fail "the worker did not plan the three missions"; }
[ "$(q mana_sync -c "SELECT count(DISTINCT t.id) FROM mana_ai.tick_runs t WHERE t.plans_written_back > 0")" = 1 ] \
    || fail "the missions were planned in more than one tick"

# --- what the mock received -------------------------------------------------
# Each conversation's first round carries the prompt (the tools protocol
# sends more rounds after it, with the same prompt and the tool replies).
curl -s --max-time 5 "$MOCK_URL/__requests" \
    | jq '[.[] | select((.body.messages | map(.role) | index("assistant")) == null)]' > "$tmp/requests.json"
[ "$(jq length "$tmp/requests.json")" = 3 ] || fail "expected 3 LLM conversations, got $(jq length "$tmp/requests.json")"
body() { jq -r --arg o "$1" '.[] | select(.body.messages[1].content | contains($o)) | .body.messages[] | "== " + .role + "\n" + .content' "$tmp/requests.json"; }
body "Ziel mit Grant" > "$tmp/grant.txt"
body "Ziel ohne Grant" > "$tmp/nogrant.txt"
body "Ziel abgelaufen" > "$tmp/expired.txt"
for f in grant nogrant expired; do
    [ -s "$tmp/$f.txt" ] || fail "no LLM call for mission $f"
    ! grep -q 'enc:1:' "$tmp/$f.txt" || fail "ciphertext in the prompt of $f"
    grep -qF '### goals/companionGoals: Zehn Seiten lesen' "$tmp/$f.txt" || fail "plaintext goal input missing in $f"
    grep -qF 'Fortschritt: 3 / 10 (week)' "$tmp/$f.txt" || fail "goal content line missing in $f"
done
note=$(vec plain_note_content | python3 -c 'import sys; print(sys.stdin.read().rstrip("\n")[:500] + "\u2026")')
grep -qxF '### notes/notes: Einkauf' "$tmp/grant.txt" || fail "decrypted note title missing from the prompt"
grep -qxF "$note" "$tmp/grant.txt" || fail "decrypted note content (500 characters + …) missing from the prompt"
grep -qxF '### tasks/tasks: Steuererklärung abgeben' "$tmp/grant.txt" || fail "decrypted task title missing from the prompt"
grep -qxF '[open] Steuererklärung abgeben — Belege sammeln (faellig: 2026-05-01)' "$tmp/grant.txt" \
    || fail "decrypted task line missing from the prompt"
! grep -q '^### journal/' "$tmp/grant.txt" || fail "the journal entry outside the grant reached the prompt"
grep -qxF 'Agent: Geheimnisvoll' "$tmp/grant.txt" || fail "agent context missing"
# One system prompt per agent (the tick keeps each distinct one once): the
# legacy missions share theirs, which is not the agent's.
system() { sed -n '/^== system$/,/^== user$/p' "$tmp/$1.txt"; }
! grep -qxF 'Agent: Geheimnisvoll' "$tmp/nogrant.txt" || fail "the agent's system prompt went to a legacy mission"
[ "$(system nogrant)" = "$(system expired)" ] || fail "the two legacy missions got different system prompts"
[ "$(system nogrant)" != "$(system grant)" ] || fail "the agent's mission got the legacy system prompt"
echo "ok - the granted mission's prompt holds the decrypted note and task, no ciphertext"

needles=$tmp/needles
printf '%s\n' 'Einkauf' 'Milch, Brot' 'Steuererkl' 'Belege sammeln' > "$needles"
grep -qF -f "$needles" "$tmp/grant.txt" || fail "the scan cannot see the plaintext"
for f in nogrant expired; do
    ! grep -qF -f "$needles" "$tmp/$f.txt" || fail "plaintext in the prompt of mission $f"
    grep -qF '### goals/' "$tmp/$f.txt" && ! grep -qE '^### (notes|tasks|journal)/' "$tmp/$f.txt" \
        || fail "encrypted inputs of $f were not dropped"
done
echo "ok - without a usable grant (none, expired) the encrypted inputs are dropped"

# --- the decrypt audit (SPEC 5.4) --------------------------------------------
iter=$(q mana_sync -c "SELECT data -> 'iterations' -> -1 ->> 'id' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'mission-abc'")
[ -n "$iter" ] || fail "no iteration written for mission-abc"
got=$(q mana_sync -c "SELECT string_agg(concat_ws(' ', user_id, mission_id, iteration_id = '$iter', table_name, record_id, status, reason), ' | ' ORDER BY id)
                       FROM mana_ai.decrypt_audit")
want="u1 mission-abc t notes n1 ok | u1 mission-abc t tasks t1 ok | u1 mission-abc t journal j1 scope-violation record-not-in-grant-allowlist"
[ "$got" = "$want" ] || fail "decrypt_audit: got '$got', wanted '$want'"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.decrypt_audit a, mana_ai.tick_runs t
                     WHERE t.plans_written_back > 0 AND a.ts BETWEEN t.started_at AND t.finished_at")" = 3 ] \
    || fail "decrypt_audit.ts is not the time of the tick"
# Seen by the user through the RLS-scoped reader (the application's role
# of the README), by nobody else.
q mana_sync -c "CREATE ROLE mana_app NOLOGIN" -c "GRANT USAGE ON SCHEMA mana_ai TO mana_app" \
    -c "GRANT EXECUTE ON FUNCTION mana_ai.read_decrypt_audit(text, int) TO mana_app" >/dev/null
[ "$(q mana_sync -c "SET ROLE mana_app; SELECT set_config('app.current_user_id', 'u1', false); SELECT count(*) FROM mana_ai.read_decrypt_audit('mission-abc')" | tail -1)" = 3 ] \
    || fail "read_decrypt_audit does not show u1 the three rows"
[ "$(q mana_sync -c "SET ROLE mana_app; SELECT set_config('app.current_user_id', 'u2', false); SELECT count(*) FROM mana_ai.read_decrypt_audit()" | tail -1)" = 0 ] \
    || fail "read_decrypt_audit shows u1's rows to u2"
metric() { q mana_sync -c "SELECT coalesce(sum(value), 0) FROM mana_ai.metrics WHERE name = '$1' AND labels @> '$2'"; }
[ "$(metric mana_ai_decrypts_total '{"table": "notes"}')" = 1 ] || fail "mana_ai_decrypts_total{table=notes}"
[ "$(metric mana_ai_decrypts_total '{"table": "tasks"}')" = 1 ] || fail "mana_ai_decrypts_total{table=tasks}"
[ "$(metric mana_ai_grant_scope_violations_total '{"table": "journal"}')" = 1 ] || fail "scope violation not counted"
[ "$(metric mana_ai_grant_skips_total '{"reason": "expired"}')" = 1 ] || fail "expired grant skip not counted"
echo "ok - one audit row per decrypt attempt, with user, mission and the written iteration"

# --- the plaintext stays out of everything else ------------------------------
{
    q mana_sync -c "SELECT t::text FROM mana_ai.tick_runs t"
    q mana_sync -c "SELECT s::text FROM sync_changes s WHERE client_id = 'mana-ai-runner'"
    q mana_sync -c "SELECT s::text FROM mana_ai.mission_snapshots s"
    q mana_sync -c "SELECT a::text FROM mana_ai.mission_attempts a"
    q mana_sync -c "SELECT a::text FROM mana_ai.decrypt_audit a"
    q mana_sync -c "SELECT mana_ai.metrics_prometheus()"
} > "$tmp/state.txt"
grep -q 'mission-abc' "$tmp/state.txt" || fail "the state scan saw nothing"
! grep -F -f "$needles" "$tmp/state.txt" || fail "plaintext in tick_runs, written rows, snapshots, attempts, audit or metrics"
grep -q 'mana_ai worker' "$MANA_PG_LOG" && grep -Eq 'LOG: +statement: ' "$MANA_PG_LOG" || fail "the server log scan has nothing to scan"
! grep -F -f "$needles" "$MANA_PG_LOG" || fail "plaintext in the server log"
echo "ok - no plaintext in the server log, tick_runs or anything the tick wrote"
echo "PASS grant_tick"
