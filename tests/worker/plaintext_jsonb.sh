#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# A decrypted field that is valid JSON but cannot be stored as jsonb
# (1e999999 is past numeric's range; issue 19): the input gets one
# decrypt_audit row, failed with the reason plaintext-not-storable-as-jsonb,
# and is dropped; the mission's other input is decrypted (ok) and the
# mission is planned at its first attempt, with nothing left to back off.
# 0.2.0 failed the mission on every attempt with no audit row.
set -euo pipefail
source tests/lib/common.sh
fx=tests/fixtures/crypto
kdir=$(mktemp -d)
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }
enc() { printf '%s' "$1" | python3 tests/lib/enc1.py "$(vec mdk_hex)"; }

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$kdir"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
use_test_grant_key "$kdir"

q mana_sync -c "
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('notes', 'notes', 'n1', 'u1', 'insert',
   jsonb_build_object('title', '$(enc '"Zahlen"')', 'content', '$(enc '1e999999')'), 'web'),
  ('todo', 'tasks', 't1', 'u1', 'insert',
   jsonb_build_object('title', '$(enc '"Brot kaufen"')', 'status', 'open'), 'web');
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'mission-abc', 'u1', 'insert',
       jsonb_build_object('title', 'Zahlen', 'objective', 'Etwas planen', 'state', 'active',
                          'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                          'nextRunAt', '2020-01-01T00:00:00.000Z', 'grant', '$(vec grant_ok)'::jsonb,
                          'inputs', '[{\"module\": \"notes\", \"table\": \"notes\", \"id\": \"n1\"},
                                      {\"module\": \"tasks\", \"table\": \"tasks\", \"id\": \"t1\"}]'::jsonb),
       'web'" >/dev/null

poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'mission-abc'" 1 \
    || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-300
         q mana_sync -c "SELECT attempts, last_error FROM mana_ai.mission_attempts" | cut -c1-300
         fail "mission-abc was not planned"; }
[ "$(q mana_sync -c "SELECT data -> 'iterations' -> -1 ->> 'overallStatus' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'mission-abc'")" = awaiting-review ] \
    || fail "mission-abc has no normal plan"
got=$(q mana_sync -c "SELECT string_agg(table_name || ':' || record_id || ':' || status || ':' || coalesce(reason, ''), ',' ORDER BY table_name)
                       FROM mana_ai.decrypt_audit")
[ "$got" = "notes:n1:failed:plaintext-not-storable-as-jsonb,tasks:t1:ok:" ] || fail "decrypt_audit: $got"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts")" = 0 ] || fail "a backoff row is left"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE jsonb_array_length(errors) > 0")" = 0 ] \
    || fail "a tick listed errors: $(q mana_sync -c "SELECT errors FROM mana_ai.tick_runs WHERE jsonb_array_length(errors) > 0" | cut -c1-300)"
curl -s --max-time 5 "$MOCK_URL/__requests" | grep -q 'Brot kaufen' || fail "the task was not in the prompt"
! curl -s --max-time 5 "$MOCK_URL/__requests" | grep -q '1e999999' || fail "the unstorable plaintext reached the prompt"
echo "PASS plaintext_jsonb"
