#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.llm_max_parallel=1
# The missions' preparation feeds the LLM loop as it goes (issue 20): with
# one call in flight at a time and each answer taking 0.7 s (two
# rounds per mission in the tools protocol), eight
# granted missions are not all prepared (grant unwrapped, inputs
# decrypted) before the first call, but a few ahead of the call in
# flight.  Each mission's decrypt audit row carries the time of its
# preparation's own transaction, so their spread shows it: before the
# change every one was written within a second, before any call; after
# it, the last is written seconds after the first mission's answer
# (8 s here).
# Every mission is still planned once, in one tick, with its plaintext.
set -euo pipefail
source tests/lib/common.sh
fx=tests/fixtures/crypto
kdir=$(mktemp -d)
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }
n=8

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$kdir"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.llm_timeout 30000
use_test_grant_key "$kdir"

# One moment when all fall due; the worker paused until every insert is
# in, so that one tick takes them all however slow the machine.
set_guc mana_ai.enabled off
poll_until 60 mana_sync "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND query LIKE 'paused%'" 1 \
    || fail "the worker did not pause"
due=$(q mana_sync -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC' + interval '1 s', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
# n users, each with the fixture's note and task and its granted
# mission-abc (the grant binds the mission id, not the user).
for u in $(seq 1 $n); do
    q mana_sync -c "
    SELECT set_config('app.current_user_id', 'u$u', false);
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
      ('notes', 'notes', 'n1', 'u$u', 'insert',
       jsonb_build_object('title', '$(vec enc_note_title)', 'content', '$(vec enc_note_content)'), 'web'),
      ('todo', 'tasks', 't1', 'u$u', 'insert',
       jsonb_build_object('title', '$(vec enc_task_title)', 'description', '$(vec enc_task_description)',
                          'status', 'open', 'dueDate', '2026-05-01'), 'web'),
      ('ai', 'aiMissions', 'mission-abc', 'u$u', 'insert',
       jsonb_build_object('title', 'Mission u$u', 'objective', '[mock:latency:700] Ziel u$u',
                          'inputs', '[{\"module\": \"notes\", \"table\": \"notes\", \"id\": \"n1\"},
                                      {\"module\": \"tasks\", \"table\": \"tasks\", \"id\": \"t1\"}]'::jsonb,
                          'state', 'active', 'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                          'grant', '$(vec grant_ok)'::jsonb,
                          'nextRunAt', '$due'), 'web')" >/dev/null
done

sleep 1.2
set_guc mana_ai.enabled on
written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
poll_until 60 mana_sync "$written" $n \
    || { q mana_sync -c "SELECT id, status, due_missions, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-300;
         fail "the worker did not plan the $n missions"; }
[ "$(q mana_sync -c "SELECT count(DISTINCT t.id) FROM mana_ai.tick_runs t WHERE t.plans_written_back > 0")" = 1 ] \
    || fail "the missions were planned in more than one tick"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.decrypt_audit WHERE status = 'ok'")" = $((2 * n)) ] \
    || fail "expected two ok decrypts per mission: $(q mana_sync -c "SELECT count(*) FROM mana_ai.decrypt_audit")"

# The prompts carried the plaintext: the feed lost nothing on the way.
curl -s --max-time 5 "$MOCK_URL/__requests" > "$kdir/requests.json"
[ "$(jq '[.[] | select(.body.messages[1].content | contains("Einkauf"))] | length' "$kdir/requests.json")" -ge $n ] \
    || fail "not every mission's prompt held its decrypted note"

spread=$(q mana_sync -c "SELECT round(extract(epoch FROM max(ts) - min(ts))::numeric, 1) FROM mana_ai.decrypt_audit")
echo "# the decrypts of the $n missions spread over $spread s"
# One call at a time, 0.7 s each: the last mission is prepared while
# the twelfth call or so is answered, seconds after the first.
awk -v s="$spread" 'BEGIN { exit !(s >= 3) }' \
    || fail "every mission was prepared at once ($spread s apart): preparation does not feed the loop as it goes"
echo "ok - the missions were prepared as the loop had room for them, not all before the first call"

# And yet the tick is no longer than its calls, two rounds per mission:
# the preparation hid behind them.
secs=$(q mana_sync -c "SELECT round(extract(epoch FROM finished_at - started_at)::numeric, 1)
                        FROM mana_ai.tick_runs WHERE plans_written_back > 0")
echo "# the tick took $secs s for $((2 * n)) calls of 0.7 s in a row"
awk -v s="$secs" -v n=$n 'BEGIN { exit !(s < 2 * n * 0.7 + 8) }' || fail "the tick took $secs s"
echo "ok - every mission planned once, in one tick"
