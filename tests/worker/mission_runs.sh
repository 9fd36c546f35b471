#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.max_attempts=3 -o mana_ai.enabled=off -o mana_ai.llm_model=mock-model-7 -o mana_ai.planner_protocol=json
# The run history (issue 13), with the worker and the mock LLM:
#  - every mission a tick considered (the due ones) has exactly one
#    mana_ai.mission_runs row for that tick, with the gate's decision
#    (tick_world.sql: one agent per gate) or its outcome; missions that are
#    not due have none;
#  - ran rows carry the iteration id written into sync_changes, the
#    configured model, the tokens and the planner time; a mission whose LLM
#    answer is not JSON is failed (phase, message), then backing-off in
#    every tick until its next attempt, and its last failed row names the
#    failed iteration;
#  - mission_last_run has one row per mission; row-level security: an app
#    role (NOBYPASSRLS) sees its user's rows only, the operator (EXECUTE on
#    mission_runs_of_every_user(), no pg_monitor) all;
#  - no key, no ciphertext and no decrypted text in any row, though a
#    granted mission's decrypted inputs reached the prompt;
#  - a worker tick that an error ends keeps its gate decisions, and the
#    missions it had taken get failed rows with phase 'tick' and its error;
#  - SELECT mana_ai_tick() writes its rows in the caller's transaction
#    (a rollback takes them along), backing-off included;
#  - the worker's retention deletes rows older than
#    mana_ai.mission_runs_retention and keeps younger ones.
# The worker starts paused (mana_ai.enabled = off) so its first tick sees
# the whole world at once.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh
fx=tests/fixtures/crypto
tmp=$(mktemp -d)
kdir=$(mktemp -d)
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
log_attempts
start_mock_llm --total-tokens 777
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$tmp" "$kdir"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
use_llm_key
use_test_grant_key "$kdir"

# --- the world, loaded while the worker is paused --------------------------
psql -X -q -1 -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/tick_world.sql >/dev/null
add_missions <<'EOF'
m-bad|bob|Antwort ist kein JSON [mock:garbage]
EOF
# u1's granted mission reads an encrypted note and task (SPEC 5).
q mana_sync -c "
SELECT set_config('app.current_user_id', 'u1', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('notes', 'notes', 'n1', 'u1', 'insert',
   jsonb_build_object('title', '$(vec enc_note_title)', 'content', '$(vec enc_note_content)'), 'web'),
  ('todo', 'tasks', 't1', 'u1', 'insert',
   jsonb_build_object('title', '$(vec enc_task_title)', 'description', '$(vec enc_task_description)',
                      'status', 'open', 'dueDate', '2026-05-01'), 'web'),
  ('ai', 'agents', 'ag-crypt', 'u1', 'insert', '{\"name\": \"Geheimnisvoll\", \"state\": \"active\"}', 'web'),
  ('ai', 'aiMissions', 'mission-abc', 'u1', 'insert',
   jsonb_build_object('title', 'Mission mit Grant', 'objective', 'Ziel mit Grant', 'state', 'active',
                      'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                      'nextRunAt', '2026-01-01T08:00:00.000Z', 'agentId', 'ag-crypt',
                      'grant', '$(vec grant_ok)'::jsonb,
                      'inputs', '[{\"module\": \"notes\", \"table\": \"notes\", \"id\": \"n1\"},
                                  {\"module\": \"tasks\", \"table\": \"tasks\", \"id\": \"t1\"}]'::jsonb), 'web')" >/dev/null
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs")" = 0 ] || fail "the worker ticked while paused"
set_guc mana_ai.enabled on

# 100 default-agent users, m-busy-1, m-ghost, mission-abc in the first tick,
# m-busy-2 in the next; m-bad's failed iteration after three attempts.
written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
poll_until 90 mana_sync "$written" 105 || {
    q mana_sync -c "SELECT id, status, due_missions, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-600
    fail "expected 105 write-backs"; }
first=$(q mana_sync -c "SELECT min(id) FROM mana_ai.tick_runs WHERE source = 'worker' AND due_missions > 0")
[ "$(q mana_sync -c "SELECT due_missions FROM mana_ai.tick_runs WHERE id = $first")" = 109 ] \
    || fail "the first tick did not see the whole world at once"

# --- one row per considered mission and tick, with its decision ---------------
rows() { q mana_sync -c "SELECT string_agg(concat_ws(' ', user_id, mission_id, agent_id, decision, error_phase, error_message), E'\n' ORDER BY user_id, mission_id)
                         FROM mana_ai.mission_runs WHERE tick_id = $1 AND user_id NOT LIKE 'u0%' AND user_id <> 'u100'"; }
want="alice m-archived ag-archived skipped-archived
alice m-broke ag-broke skipped-budget
alice m-busy-1 ag-busy ran
alice m-busy-2 ag-busy skipped-concurrency
alice m-deleted-agent ag-deleted skipped-deleted
alice m-ghost legacy:ai-default ran
alice m-paused ag-paused skipped-paused
bob m-bad legacy:ai-default failed calling-llm answer is not JSON
u1 mission-abc ag-crypt ran"
[ "$(rows "$first")" = "$want" ] || fail "first tick's rows:
$(rows "$first")
wanted:
$want"
[ "$(q mana_sync -c "SELECT count(*) FILTER (WHERE decision = 'ran' AND agent_id = 'legacy:ai-default' AND mission_id = 'm-' || user_id)
                      || '|' || count(*) FROM mana_ai.mission_runs WHERE tick_id = $first AND (user_id LIKE 'u0%' OR user_id = 'u100')")" = "100|100" ] \
    || fail "the 100 default-agent users did not each get one ran row"
echo "ok - the first tick: one row per due mission, each gate's decision, the failure's phase and message"

finished="FROM mana_ai.tick_runs r WHERE r.status = 'ok' AND r.source = 'worker'"
[ "$(q mana_sync -c "SELECT count(*) $finished AND r.due_missions <> (SELECT count(*) FROM mana_ai.mission_runs m WHERE m.tick_id = r.id)")" = 0 ] \
    || fail "a tick's rows do not match its due missions: $(q mana_sync -c "SELECT r.id, r.due_missions, (SELECT count(*) FROM mana_ai.mission_runs m WHERE m.tick_id = r.id) $finished")"
[ "$(q mana_sync -c "SELECT count(*) FROM (SELECT 1 FROM mana_ai.mission_runs GROUP BY tick_id, user_id, mission_id HAVING count(*) > 1) d")" = 0 ] \
    || fail "a mission has two rows for one tick"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE mission_id IN ('m-future', 'm-off', 'm-gone', 'm-manual')")" = 0 ] \
    || fail "a mission that was not due has rows"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id NOT IN (SELECT id FROM mana_ai.tick_runs)")" = 0 ] \
    || fail "rows name a tick that does not exist"
echo "ok - every finished tick: exactly one row per mission it considered, none for missions not due"

# --- ran rows: the written iteration, model, tokens, planner time -------------
ran="FROM mana_ai.mission_runs m WHERE m.decision = 'ran'"
[ "$(q mana_sync -c "SELECT count(*) $ran")" = 104 ] || fail "ran rows: $(q mana_sync -c "SELECT count(*) $ran"), wanted 104"
[ "$(q mana_sync -c "SELECT count(*) $ran AND m.iteration_id = (SELECT s.data -> 'iterations' -> -1 ->> 'id' FROM sync_changes s
                       WHERE s.client_id = 'mana-ai-runner' AND s.user_id = m.user_id AND s.record_id = m.mission_id
                         AND s.actor ->> 'iterationId' = m.iteration_id)
                       AND m.model = 'mock-model-7' AND m.tokens = 777 AND m.planner_ms > 0
                       AND m.error_phase IS NULL AND m.error_message IS NULL
                       AND m.slot IS NOT NULL")" = 104 ] \
    || fail "ran rows without the written iteration, model, tokens or planner time: $(q mana_sync -c "SELECT m.* $ran LIMIT 3")"
[ "$(q mana_sync -c "SELECT string_agg(decision, ',' ORDER BY tick_id) FROM mana_ai.mission_runs WHERE mission_id = 'm-busy-2'" | cut -d, -f1-2)" = "skipped-concurrency,ran" ] \
    || fail "m-busy-2 was not deferred, then ran"
echo "ok - ran rows carry the iteration written to sync_changes, mock-model-7, 777 tokens, the planner time"

# --- the failing mission: failed, backing-off every tick, failed ... ----------
bad="FROM mana_ai.mission_runs WHERE mission_id = 'm-bad'"
seq=$(q mana_sync -c "SELECT string_agg(decision, ',' ORDER BY tick_id) $bad")
[[ $seq =~ ^failed(,backing-off)*,failed(,backing-off)*,failed$ ]] || fail "m-bad decisions: $seq"
[ "$(q mana_sync -c "SELECT count(*) $bad")" = "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE id BETWEEN (SELECT min(tick_id) $bad) AND (SELECT max(tick_id) $bad)")" ] \
    || fail "m-bad has no row in some tick while it was due"
[ "$(q mana_sync -c "SELECT count(*) $bad AND decision = 'failed' AND error_phase = 'calling-llm' AND error_message = 'answer is not JSON'
                       AND model IS NULL AND tokens IS NULL AND planner_ms > 0")" = 3 ] \
    || fail "m-bad failed rows: $(q mana_sync -c "SELECT * $bad AND decision = 'failed'")"
[ "$(q mana_sync -c "SELECT count(*) $bad AND decision = 'backing-off' AND iteration_id IS NULL AND model IS NULL
                       AND error_phase IS NULL AND agent_id = 'legacy:ai-default'")" = "$(q mana_sync -c "SELECT count(*) $bad AND decision = 'backing-off'")" ] \
    || fail "m-bad backing-off rows carry more than the decision"
[ "$(q mana_sync -c "SELECT string_agg((iteration_id IS NOT NULL)::text, ',' ORDER BY tick_id) $bad AND decision = 'failed'")" = "false,false,true" ] \
    || fail "only the third failure wrote the failed iteration"
[ "$(q mana_sync -c "SELECT iteration_id = (SELECT data -> 'iterations' -> 0 ->> 'id' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-bad')
                       $bad AND iteration_id IS NOT NULL")" = t ] || fail "m-bad's last row does not name its failed iteration"
echo "ok - m-bad: failed (calling-llm, answer is not JSON), backing-off in every tick between, the failed iteration named: $seq"

# --- mission_last_run ----------------------------------------------------------
[ "$(q mana_sync -c "SELECT count(*) = (SELECT count(DISTINCT (user_id, mission_id)) FROM mana_ai.mission_runs)
                       AND count(*) = count(DISTINCT (user_id, mission_id)) FROM mana_ai.mission_last_run")" = t ] \
    || fail "mission_last_run is not one row per mission"
[ "$(q mana_sync -c "SELECT string_agg(mission_id || ':' || decision || ':' || (iteration_id IS NOT NULL), ',' ORDER BY mission_id)
                       FROM mana_ai.mission_last_run WHERE mission_id IN ('m-bad', 'm-busy-2', 'm-paused')")" = "m-bad:failed:true,m-busy-2:ran:true,m-paused:skipped-paused:false" ] \
    || fail "mission_last_run: $(q mana_sync -c "SELECT mission_id, decision, tick_id FROM mana_ai.mission_last_run WHERE mission_id IN ('m-bad', 'm-busy-2', 'm-paused')")"
echo "ok - mission_last_run: one row per mission, its latest decision"

# --- who sees which rows -------------------------------------------------------
q postgres -c "CREATE ROLE mana_app LOGIN NOBYPASSRLS" -c "CREATE ROLE mana_ops_test LOGIN NOBYPASSRLS" >/dev/null
q mana_sync -c "GRANT USAGE ON SCHEMA mana_ai TO mana_app, mana_ops_test" \
            -c "GRANT SELECT ON mana_ai.mission_runs, mana_ai.mission_last_run TO mana_app, mana_ops_test" \
            -c "GRANT EXECUTE ON FUNCTION mana_ai.mission_runs_of_every_user() TO mana_ops_test" >/dev/null
as_role() { q mana_sync -c "SET ROLE $1" -c "SELECT set_config('app.current_user_id', '$2', false)" -c "$3" | tail -1; }
# (the worker goes on ticking: compare the ticks up to now)
upto=$(q mana_sync -c "SELECT max(tick_id) FROM mana_ai.mission_runs")
alice=$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE user_id = 'alice' AND tick_id <= $upto")
all=$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id <= $upto")
[ "$(as_role mana_app alice "SELECT count(*) || '|' || count(*) FILTER (WHERE user_id <> 'alice') FROM mana_ai.mission_runs WHERE tick_id <= $upto")" = "$alice|0" ] \
    || fail "the app role as alice does not see exactly alice's rows"
[ "$(as_role mana_app alice "SELECT count(*) || '|' || count(*) FILTER (WHERE user_id <> 'alice') FROM mana_ai.mission_last_run")" = "7|0" ] \
    || fail "the app role as alice: mission_last_run is not her seven missions"
[ "$(as_role mana_app '' "SELECT count(*) FROM mana_ai.mission_runs")" = 0 ] || fail "the app role without a user sees rows"
[ "$(as_role mana_app bob "SELECT string_agg(DISTINCT mission_id, ',') FROM mana_ai.mission_runs")" = m-bad ] || fail "bob does not see only his mission"
[ "$(as_role mana_ops_test '' "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id <= $upto")" = "$all" ] || fail "the operator (mission_runs_of_every_user) does not see every row"
if q mana_sync -c "SET ROLE mana_app" -c "SELECT mana_ai.record_mission_runs(1, '[]')" >/dev/null 2>&1; then
    fail "the app role may write the history"
fi
echo "ok - row-level security: alice sees her $alice rows, nobody else's; the operator sees all"

# --- no key, ciphertext or decrypted text in any row ---------------------------
curl -s --max-time 5 "$MOCK_URL/__requests" | jq -r '.[] | .body.messages[]?.content' > "$tmp/prompts.txt"
grep -qF 'Einkauf' "$tmp/prompts.txt" || fail "the granted mission's decrypted note did not reach the prompt (the scan proves nothing)"
q mana_sync -c "SELECT r::text FROM mana_ai.mission_runs r" > "$tmp/rows.txt"
grep -q 'mission-abc' "$tmp/rows.txt" || fail "the row scan saw nothing"
printf '%s\n' 'Einkauf' 'Milch, Brot' 'Steuererkl' 'Belege sammeln' 'enc:1:' 'PRIVATE KEY' "$LLM_KEY" \
    "$(vec mdk_b64)" "$(vec mdk_hex)" > "$tmp/needles"
! grep -F -f "$tmp/needles" "$tmp/rows.txt" || fail "a key, ciphertext or decrypted text in mission_runs"
echo "ok - no key, ciphertext or decrypted text in any row"

# --- a tick that an error ends still records what it decided ---------------------
# An LLM key file others can read stops the tick in its LLM phase, after the gates.
add_missions <<'EOF'
m-tickfail|dave|Ein Tick, der scheitert
EOF
chmod 0644 "$LLM_KEY_FILE"
failed_tick="SELECT min(r.id) FROM mana_ai.tick_runs r WHERE r.status = 'failed' AND r.errors::text LIKE '%group or world access%'
               AND EXISTS (SELECT FROM mana_ai.mission_runs m WHERE m.tick_id = r.id AND m.mission_id = 'm-tickfail')"
poll_until 30 mana_sync "SELECT ($failed_tick) IS NOT NULL" t || fail "no failed tick recorded m-tickfail"
tf=$(q mana_sync -c "$failed_tick")
chmod 0600 "$LLM_KEY_FILE"
[ "$(q mana_sync -c "SELECT decision || '|' || error_phase || '|' || (error_message = (SELECT errors ->> -1 FROM mana_ai.tick_runs WHERE id = $tf))
                       || '|' || (model IS NULL AND iteration_id IS NULL)
                       FROM mana_ai.mission_runs WHERE tick_id = $tf AND mission_id = 'm-tickfail'")" = "failed|tick|true|true" ] \
    || fail "the failed tick's row for m-tickfail: $(q mana_sync -c "SELECT * FROM mana_ai.mission_runs WHERE tick_id = $tf")"
[ "$(q mana_sync -c "SELECT string_agg(mission_id || ':' || decision, ',' ORDER BY mission_id) FROM mana_ai.mission_runs WHERE tick_id = $tf AND user_id = 'alice'")" \
    = "m-archived:skipped-archived,m-broke:skipped-budget,m-deleted-agent:skipped-deleted,m-paused:skipped-paused" ] \
    || fail "the failed tick lost its gate decisions"
poll_until 30 mana_sync "SELECT decision FROM mana_ai.mission_last_run WHERE mission_id = 'm-tickfail'" ran \
    || fail "m-tickfail did not run once the key file was fixed"
echo "ok - a tick ended by an error (LLM key file readable by others) kept its gate decisions and named the error for the mission it had taken"

# --- SELECT mana_ai_tick(): the caller's transaction ---------------------------
set_guc mana_ai.enabled off
poll_until 30 postgres "SELECT query FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'" 'paused (mana_ai.enabled = off)' \
    || fail "the worker did not pause"
set_guc mana_ai.tick_interval 300       # the SQL tick's backoff: 300 s, surely not over before the next
add_missions <<'EOF'
m-sql-ok|carol|Eine ruhige Woche
m-sql-bad|carol|Kein JSON [mock:garbage]
EOF
sql_tick() { q mana_sync -c "SET ROLE mana_runner" -c "SELECT mana_ai_tick() ->> 'tickRunId'" | tail -1; }
t1=$(sql_tick)
[ "$(q mana_sync -c "SELECT source FROM mana_ai.tick_runs WHERE id = $t1")" = sql ] || fail "no SQL tick run $t1"
[ "$(q mana_sync -c "SELECT string_agg(mission_id || ' ' || decision || ' ' || coalesce(error_phase, '-') || ' ' || (iteration_id IS NOT NULL), ',' ORDER BY mission_id)
                       FROM mana_ai.mission_runs WHERE tick_id = $t1 AND user_id = 'carol'")" = "m-sql-bad failed calling-llm false,m-sql-ok ran - true" ] \
    || fail "SQL tick rows: $(q mana_sync -c "SELECT * FROM mana_ai.mission_runs WHERE tick_id = $t1 AND user_id = 'carol'")"
[ "$(q mana_sync -c "SELECT r.due_missions = (SELECT count(*) FROM mana_ai.mission_runs m WHERE m.tick_id = r.id) FROM mana_ai.tick_runs r WHERE id = $t1")" = t ] \
    || fail "the SQL tick's rows do not match its due missions"
[ "$(q mana_sync -c "SELECT m.iteration_id = s.actor ->> 'iterationId' FROM mana_ai.mission_runs m, sync_changes s
                       WHERE m.tick_id = $t1 AND m.mission_id = 'm-sql-ok' AND s.client_id = 'mana-ai-runner' AND s.record_id = 'm-sql-ok'")" = t ] \
    || fail "the SQL tick's ran row does not name the written iteration"
t2=$(sql_tick)
[ "$(q mana_sync -c "SELECT string_agg(mission_id || ' ' || decision, ',' ORDER BY mission_id) FROM mana_ai.mission_runs WHERE tick_id = $t2 AND user_id = 'carol'")" = "m-sql-bad backing-off" ] \
    || fail "the next SQL tick: $(q mana_sync -c "SELECT mission_id, decision FROM mana_ai.mission_runs WHERE tick_id = $t2")"
inside=$(psql -X -qAt -v ON_ERROR_STOP=1 -d mana_sync <<'SQL'
BEGIN;
SET LOCAL ROLE mana_runner;
SELECT mana_ai_tick() ->> 'tickRunId' AS t3 \gset
RESET ROLE;
SELECT :t3 || '|' || count(*) FROM mana_ai.mission_runs WHERE tick_id = :t3;
ROLLBACK;
SQL
)
t3=${inside%%|*}
[ "${inside#*|}" -gt 0 ] || fail "inside its transaction the SQL tick's rows are not visible: $inside"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id = $t3")" = 0 ] || fail "a rolled back SQL tick left rows"
echo "ok - SELECT mana_ai_tick(): its rows (ran, failed, then backing-off) in the caller's transaction, gone with its rollback"

# --- retention -------------------------------------------------------------------
set_guc mana_ai.mission_runs_retention 60
second=$(q mana_sync -c "SELECT min(id) FROM mana_ai.tick_runs WHERE id > $first")
# Append-only (issue 19): even a superuser's UPDATE, DELETE or TRUNCATE is refused ...
for sql in "UPDATE mana_ai.mission_runs SET decision = 'ran'" "DELETE FROM mana_ai.mission_runs" "TRUNCATE mana_ai.mission_runs"; do
    err=$(psql -X -qAt -d mana_sync -c "$sql" 2>&1) && fail "$sql was allowed on the run history"
    grep -q 'mana_ai.mission_runs is append-only' <<<"$err" || fail "$sql: unexpected error: $err"
done
echo "ok - mission_runs is append-only: UPDATE, DELETE and TRUNCATE refused, even to a superuser"
# ... so the test ages rows with the triggers off (replica role: superuser only).
q mana_sync -c "SET session_replication_role = replica" \
            -c "UPDATE mana_ai.mission_runs SET ts = now() - interval '2 hours' WHERE tick_id = $first" \
            -c "UPDATE mana_ai.mission_runs SET ts = now() - interval '50 minutes' WHERE tick_id = $second" >/dev/null
young=$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id IN ($second, $t1, $t2)")
[ "$(q mana_sync -c "SELECT count(*) > 0 FROM mana_ai.mission_runs WHERE tick_id = $first")" = t ] || fail "nothing to purge"
set_guc mana_ai.enabled on
# Retention runs when a worker starts ticking: a new worker process does it at once.
pid=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")
q postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
poll_until 30 mana_sync "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id = $first" 0 \
    || fail "rows older than mana_ai.mission_runs_retention were not deleted"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE tick_id IN ($second, $t1, $t2)")" = "$young" ] \
    || fail "retention deleted rows younger than mana_ai.mission_runs_retention"
echo "ok - retention deleted the rows older than an hour, kept the younger ones"
assert_no_key
echo "mission_runs ok"
