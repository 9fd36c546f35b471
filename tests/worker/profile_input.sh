#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# The user's profile as a mission input (SPEC 11.4): app 'profile', table
# 'userContext', one encrypted record per user.  Under a grant that lists
# it, the prompt shows "### profile/userContext: Nutzerprofil" and the
# non-empty values of about, interests, routine, nutrition, goals, social,
# freeform in that order, one per line (an array or object as its JSON
# text), cut to 2,000 characters with an ellipsis on a character boundary
# (umlauts straddle the cut); the decrypt is audited like a note's.  The
# same mission without a grant gets no profile, and no ciphertext reaches
# the prompt.  The key pair is made now with openssl (as make demo does).
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh
tmp=$(mktemp -d)

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$tmp"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
set_guc mana_ai.planner_protocol json

chmod 0755 "$tmp"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/key.pem" 2>/dev/null
openssl pkey -in "$tmp/key.pem" -pubout -out "$tmp/pub.pem"
chmod 0600 "$tmp/key.pem"
chown "$(q postgres -c "SELECT rolname FROM pg_roles WHERE oid = 10")" "$tmp/key.pem" 2>/dev/null || true
set_guc mana_ai.private_key_file "$tmp/key.pem"

mission=mission-profile
master=$(openssl rand -hex 32)
derivation="{\"version\": \"v1\", \"missionId\": \"$mission\", \"tables\": [\"userContext\"], \"recordIds\": [\"userContext:singleton\"]}"
mdk=$(q mana_sync -c "SELECT encode(mana_ai.derive_mission_key(decode('$master', 'hex'), '$derivation'), 'hex')")
wrapped=$(python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$mdk" |
          openssl pkeyutl -encrypt -pubin -inkey "$tmp/pub.pem" -pkeyopt rsa_padding_mode:oaep \
              -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 | base64 -w0)
grant="{\"wrappedKey\": \"$wrapped\", \"derivation\": $derivation,
        \"issuedAt\": \"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\", \"expiresAt\": \"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%S.000Z)\"}"
poll_until 10 mana_sync "SELECT mana_ai.grant_status('$grant')" ok || fail "the grant does not unwrap"
enc() { printf '%s' "$1" | python3 tests/lib/enc1.py "$mdk"; }

# The profile's fields as JSON values; nutrition blank, social absent,
# freeform long enough to be cut (ä is two bytes: a byte cut would split one).
long=$(python3 -c 'print("Über mich: " + "Läufer und Bäcker. " * 150)')
q mana_sync -c "
SELECT set_config('app.current_user_id', 'u1', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('profile', 'userContext', 'singleton', 'u1', 'insert',
   jsonb_build_object('about', '$(enc '"Ich heiße Kira, Krankenpflegerin."')',
                      'interests', '$(enc '["Laufen", "Brot backen"]')',
                      'routine', '$(enc '"Frühdienst bis 14 Uhr"')',
                      'nutrition', '$(enc '"  "')',
                      'goals', '$(enc '{"marathon": "Herbst 2027"}')',
                      'freeform', '$(enc "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1], ensure_ascii=False))' "$long")")',
                      'updatedAt', '2026-01-01T00:00:00.000Z'), 'web')" >/dev/null
inputs='[{"module": "profile", "table": "userContext", "id": "singleton"}]'
q mana_sync -c "
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.id, 'u1', 'insert',
       jsonb_build_object('title', 'Mission ' || m.id, 'objective', m.objective, 'inputs', '$inputs'::jsonb,
                          'state', 'active', 'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                          'nextRunAt', '2020-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z') || m.extra,
       'web'
  FROM (VALUES ('$mission', 'Mit Profil', jsonb_build_object('grant', '$grant'::jsonb)),
               ('mission-noprofile', 'Ohne Grant', '{}'::jsonb)) AS m(id, objective, extra)" >/dev/null

poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'" 2 \
    || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-600; fail "not planned"; }

mock_get /__requests > "$tmp/requests.json"
python3 - "$tmp/requests.json" "$long" <<'PY' || fail "the prompt's profile is not as SPEC 11.4 says"
import json, sys
reqs = [r for r in json.load(open(sys.argv[1])) if r.get("path") == "/v1/chat/completions"]
def user(objective):
    found = [m["content"] for r in reqs for m in r["body"]["messages"]
             if m.get("role") == "user" and objective in m["content"]]
    assert len(found) == 1, "%d prompts for %s" % (len(found), objective)
    return found[0]
text = "\n".join(["Ich heiße Kira, Krankenpflegerin.", '["Laufen", "Brot backen"]',
                  "Frühdienst bis 14 Uhr", '{"marathon": "Herbst 2027"}', sys.argv[2]])
assert len(text) > 2000
want = "### profile/userContext: Nutzerprofil\n" + text[:2000] + "\u2026\n"
got = user("Mit Profil")
assert want in got, "profile block missing:\n" + got[:3000]
assert "enc:1:" not in got
none = user("Ohne Grant")
assert "Nutzerprofil" not in none and "Kira" not in none and "enc:1:" not in none, none
PY
echo "ok - the profile: its fields in order, one per line, cut to 2,000 characters + …, only under the grant"

got=$(q mana_sync -c "SELECT string_agg(concat_ws(' ', mission_id, table_name, record_id, status), ' | ' ORDER BY id) FROM mana_ai.decrypt_audit")
[ "$got" = "$mission userContext singleton ok" ] || fail "decrypt_audit: '$got'"
[ "$(q mana_sync -c "SELECT coalesce(sum(value), 0) FROM mana_ai.metrics WHERE name = 'mana_ai_decrypts_total' AND labels @> '{\"table\": \"userContext\"}'")" = 1 ] \
    || fail "mana_ai_decrypts_total{table=userContext}"
! grep -qF 'Krankenpflegerin' "$MANA_PG_LOG" || fail "profile plaintext in the server log"
echo "ok - the profile's decrypt is audited and counted like a note's"
