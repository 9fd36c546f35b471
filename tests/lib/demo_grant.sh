#!/usr/bin/env bash
# demo_grant.sh setup DIR | show DIR MOCK_URL: the grant path of make demo.
#
# setup: a fresh RSA-2048 key pair made now with openssl in DIR (never a
#   committed key), given to the server as mana_ai.private_key_file; a
#   user master key, the mission data key derived from it as the web app
#   does (mana_ai.derive_mission_key, SPEC 5.2), wrapped under the public
#   key (RSA-OAEP SHA-256); a note, a task and a journal entry encrypted
#   with it (enc:1:, AES-256-GCM); a due mission whose grant lists the
#   note and the task but not the journal entry, which it also asks for.
# show (after the worker planned it): the user message the LLM received,
#   once (decrypted note and task, no journal entry), the tools offered
#   with it, the audit rows the user sees (two ok, one scope-violation),
#   the mission's run and the metrics; an empty answer fails.
set -euo pipefail
source tests/lib/common.sh
cmd=$1 dir=$2
user=demo-grant-user mission=mission-grant-demo

if [ "$cmd" = setup ]; then
    echo "== grant path: a key pair made for this demo (openssl), a grant, encrypted inputs"
    chmod 0755 "$dir"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/runner-key.pem" 2>/dev/null
    openssl pkey -in "$dir/runner-key.pem" -pubout -out "$dir/runner-pub.pem"
    chmod 0600 "$dir/runner-key.pem"
    chown "$(q postgres -c "SELECT rolname FROM pg_roles WHERE oid = 10")" "$dir/runner-key.pem" 2>/dev/null || true
    set_guc mana_ai.private_key_file "$dir/runner-key.pem"
    master=$(openssl rand -hex 32)
    derivation="{\"version\": \"v1\", \"missionId\": \"$mission\", \"tables\": [\"notes\", \"tasks\"], \"recordIds\": [\"notes:n-demo\", \"tasks:t-demo\"]}"
    mdk=$(q mana_sync -c "SELECT encode(mana_ai.derive_mission_key(decode('$master', 'hex'), '$derivation'), 'hex')")
    wrapped=$(python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$mdk" |
              openssl pkeyutl -encrypt -pubin -inkey "$dir/runner-pub.pem" -pkeyopt rsa_padding_mode:oaep \
                  -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 | base64 -w0)
    grant="{\"wrappedKey\": \"$wrapped\", \"derivation\": $derivation,
            \"issuedAt\": \"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\", \"expiresAt\": \"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%S.000Z)\"}"
    enc() { printf '%s' "$1" | python3 tests/lib/enc1.py "$mdk"; }
    echo "   key pair: $dir/runner-key.pem (0600, server user), grant for $mission: notes:n-demo, tasks:t-demo"
    poll_until 10 mana_sync "SELECT mana_ai.grant_status('$grant')" ok || fail "the demo grant does not unwrap"
    echo "   mana_ai.grant_status(grant) = ok"
    q mana_sync -c "
SELECT set_config('app.current_user_id', '$user', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('notes', 'notes', 'n-demo', '$user', 'insert',
   jsonb_build_object('title', '$(enc '"Wohnungssuche"')', 'content', '$(enc '"Besichtigung Freitag 17 Uhr, Unterlagen: Schufa, drei Gehaltsnachweise"')'), 'web'),
  ('todo', 'tasks', 't-demo', '$user', 'insert',
   jsonb_build_object('title', '$(enc '"Mietvertrag lesen"')', 'description', '$(enc '"Kündigungsfrist prüfen"')',
                      'status', 'open', 'dueDate', '2026-06-01'), 'web'),
  ('journal', 'journal', 'j-demo', '$user', 'insert', jsonb_build_object('content', '$(enc '"Privat: nicht für den Planer"')'), 'web'),
  ('ai', 'aiMissions', '$mission', '$user', 'insert',
   jsonb_build_object('title', 'Umzug planen', 'objective', 'Die Wohnungssuche voranbringen', 'state', 'active',
                      'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                      'nextRunAt', '2020-01-01T00:00:00.000Z', 'grant', '$grant'::jsonb,
                      'inputs', '[{\"module\": \"notes\", \"table\": \"notes\", \"id\": \"n-demo\"},
                                  {\"module\": \"tasks\", \"table\": \"tasks\", \"id\": \"t-demo\"},
                                  {\"module\": \"journal\", \"table\": \"journal\", \"id\": \"j-demo\"}]'::jsonb), 'web')" >/dev/null
    echo "   in sync_changes only ciphertext, e.g. the note title: $(q mana_sync -c "SELECT data ->> 'title' FROM sync_changes WHERE record_id = 'n-demo'")"
    exit 0
fi

[ "$cmd" = show ] || fail "usage: demo_grant.sh setup DIR | show DIR MOCK_URL"
mock=$3
# shown: print psql's answer; an empty one fails the demo.
shown() { printf '%s\n' "$1"; if grep -q '^(0 rows)$' <<< "$1"; then fail "the demo's answer above is empty"; fi; }
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$mission'" 1 \
    || fail "the worker did not plan $mission"
echo "   $mission of $user, \"Umzug planen\": its grant covers notes:n-demo and tasks:t-demo;"
echo "   the mission also lists journal:j-demo as an input, which the grant does not cover"
# Every round of the planner's tool loop sends the same user message; the
# first request of the mission is the one to show.
requests=$(curl -s --max-time 5 "$mock/__requests")
first=$(jq -c --arg o 'Die Wohnungssuche voranbringen' \
        'first(.[] | select(.body.messages[1].content | contains($o)))' <<< "$requests")
[ -n "$first" ] || fail "the mock LLM received no request for $mission"
rounds=$(jq --arg o 'Die Wohnungssuche voranbringen' \
         '[.[] | select(.body.messages[1].content | contains($o))] | length' <<< "$requests")
echo "-- the user message the LLM received (decrypted in the server: no enc:1: in it; no journal entry)"
jq -r '.body.messages[1].content' <<< "$first" | sed 's/^/   | /'
echo "   tools offered with it: $(jq -r '[.body.tools[]?.function.name] | join(", ")' <<< "$first")"
echo "   (those of the core module todo and of its inputs' modules, and more_tools, through which the"
echo "   LLM reaches every other tool the agent's policy allows; no agent: every tool is allowed)"
echo "   requests for this mission: $rounds (the planner's tool loop: the LLM calls tools, then says it is done)"
echo "-- the audit rows the user sees (mana_ai.read_decrypt_audit under app.current_user_id = $user)"
shown "$(psql -X -v ON_ERROR_STOP=1 -d mana_sync <<SQL
SELECT set_config('app.current_user_id', '$user', false) AS uid \\gset
SELECT id, mission_id, iteration_id IS NOT NULL AS with_iteration, table_name, record_id, status, reason
  FROM mana_ai.read_decrypt_audit('$mission') ORDER BY id;
SQL
)"
echo "   another user sees none of them: $(q mana_sync -c "SELECT set_config('app.current_user_id', 'someone-else', false); SELECT count(*) FROM mana_ai.read_decrypt_audit('$mission')" | tail -1) rows"
echo "-- the run of $mission (mana_ai.mission_runs)"
shown "$(psql -X -v ON_ERROR_STOP=1 -d mana_sync -c "SELECT tick_id, agent_id, slot, decision, model, tokens, round(planner_ms) AS planner_ms, error_message
                              FROM mana_ai.mission_runs WHERE mission_id = '$mission' ORDER BY id")"
echo "-- decrypts and the scope violation in the metrics"
shown "$(psql -X -v ON_ERROR_STOP=1 -d mana_sync -c "SELECT name, labels, value FROM mana_ai.metrics
                          WHERE name IN ('mana_ai_decrypts_total', 'mana_ai_grant_scope_violations_total') ORDER BY 1, 2::text")"
