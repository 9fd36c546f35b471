#!/usr/bin/env bash
# crypto_keys.sh: the key file and every keyed decrypt outcome (issue 4).
#  - a group/world-readable key file is refused with a clear WARNING and
#    grants report not-configured; at 0600 (owned by the server's user)
#    the WebCrypto-made grant unwraps;
#  - every grant outcome and every decrypt outcome, one audit row each;
#  - neither the private key nor the MDK (hex or base64) appears in the
#    server log or in any function result.
# Runs inside with_cluster.sh (no preload), cwd = repo root.
set -euo pipefail
. tests/lib/common.sh
db=mana_sync
fx=tests/fixtures/crypto
out=$(mktemp -d)
kdir=$(mktemp -d)
trap 'rm -rf "$out" "$kdir"' EXIT
results=$out/results.txt

setup_mana_sync "$db"
psql -X -qAt -d postgres -c "ALTER SYSTEM SET log_min_messages = 'debug1'" \
     -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null

cp "$fx/TEST-ONLY-private-key.pem" "$kdir/key.pem"
chmod 0755 "$kdir"
server_user=$(q "$db" -c "SELECT usename FROM pg_user WHERE usesysid = (SELECT datdba FROM pg_database WHERE datname = 'template0')")
chown "$server_user" "$kdir/key.pem" 2>/dev/null || true
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }
# set_key_file PATH: ALTER SYSTEM needs the library loaded to know the name.
set_key_file() {
    psql -X -qAt -d "$db" -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.private_key_file = '$1'" \
         -c "SELECT pg_reload_conf()" >/dev/null
}
# run SQL with the vectors loaded; every result is kept for the secret scan
sqlv() { psql -X -v ON_ERROR_STOP=1 -qAt -d "$db" -c '\i tests/fixtures/crypto/vectors.sql' -c "$1" | tee -a "$results"; }
expect() {
    local got
    got=$(sqlv "$2")
    [ "$got" = "$3" ] || fail "$1: got '$got', wanted '$3'"
    echo "ok - $1"
}

# --- the key file ---------------------------------------------------------
chmod 0644 "$kdir/key.pem"
set_key_file "$kdir/key.pem"
expect "world-readable key file: grants not-configured" \
    "SELECT mana_ai.grant_status((SELECT value::jsonb FROM crypto_vectors WHERE name = 'grant_ok'))" "not-configured"
wait_for_log 10 'WARNING: +mana_ai.private_key_file has group or world access' || fail "no clear refusal in the log"
grep -A3 'has group or world access' "$MANA_PG_LOG" | grep -Eq 'HINT: +Run chmod 0600' || fail "refusal without hint"
echo "ok - refusal logged with detail and hint"
warn=$(psql -X -qAt -d "$db" -c "SELECT mana_ai.grant_status('{}')" 2>&1 >/dev/null || true)
case $warn in *"has group or world access"*) echo "ok - refusal shown to the client" ;; *) fail "client saw no warning: $warn" ;; esac
chmod 0640 "$kdir/key.pem"
expect "group-readable key file: not-configured" "SELECT mana_ai.grant_status('{}')" "not-configured"
chmod 0600 "$kdir/key.pem"
expect "0600 key file: the WebCrypto grant unwraps" \
    "SELECT mana_ai.grant_status((SELECT value::jsonb FROM crypto_vectors WHERE name = 'grant_ok'))" "ok"
set_key_file ""
expect "key file unset on reload: not-configured" \
    "SELECT mana_ai.grant_status((SELECT value::jsonb FROM crypto_vectors WHERE name = 'grant_ok'))" "not-configured"
set_key_file "$kdir/key.pem"

# --- every grant outcome --------------------------------------------------
expect "grant outcomes (SPEC 5.1)" \
    "SELECT string_agg(name || '=' || mana_ai.grant_status(value::jsonb), ' ' ORDER BY name) FROM crypto_vectors WHERE name LIKE 'grant\_%'" \
    "grant_bad_b64=malformed grant_bad_expiry=expired grant_expired=expired grant_missing_field=malformed grant_ok=ok grant_wrong_key=wrap-rejected grant_wrong_length=malformed"

# --- decrypt outcomes -----------------------------------------------------
q "$db" -c '\i tests/fixtures/crypto/vectors.sql' -c "
INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record)
SELECT 'u1', 'mission-abc', jsonb_build_object('title', 'M', 'grant', value::jsonb, 'inputs',
   '[{\"module\":\"notes\",\"table\":\"notes\",\"id\":\"n1\"},{\"module\":\"tasks\",\"table\":\"tasks\",\"id\":\"t1\"},
     {\"module\":\"journal\",\"table\":\"journal\",\"id\":\"j1\"}]'::jsonb)
  FROM crypto_vectors WHERE name = 'grant_ok';
INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record)
SELECT 'u1', 'mission-expired', jsonb_build_object('grant', value::jsonb) FROM crypto_vectors WHERE name = 'grant_expired';
INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record)
SELECT 'u1', 'mission-wrongkey', jsonb_build_object('grant', value::jsonb) FROM crypto_vectors WHERE name = 'grant_wrong_key';
INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record)
SELECT 'u1', 'mission-copied', jsonb_build_object('title', 'C', 'grant', value::jsonb, 'inputs',
   '[{\"module\":\"notes\",\"table\":\"notes\",\"id\":\"n1\"}]'::jsonb)
  FROM crypto_vectors WHERE name = 'grant_ok';" >/dev/null

# write NAME: append an update of notes/n1 whose title is vector NAME
write_note() {
    q "$db" -c '\i tests/fixtures/crypto/vectors.sql' -c "
      SELECT set_config('app.current_user_id', 'u1', false);
      INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
      SELECT 'notes', 'notes', 'n1', 'u1', '$2', jsonb_build_object('title', value), 't'
        FROM crypto_vectors WHERE name = '$1';" >/dev/null
}
decrypt() { echo "SELECT mana_ai.decrypt_input('u1', '${2:-mission-abc}', 'notes', 'notes', '${1:-n1}')"; }
last_audit() { echo "SELECT status || ':' || coalesce(reason, '') FROM mana_ai.decrypt_audit ORDER BY id DESC LIMIT 1"; }
audit_count() { q "$db" -c "SELECT count(*) FROM mana_ai.decrypt_audit"; }
outcome() {			# outcome LABEL DECRYPT_SQL WANT_RESULT WANT_AUDIT
    local before after
    before=$(audit_count)
    expect "$1: result" "$2" "$3"
    after=$(audit_count)
    [ $((after - before)) -eq 1 ] || fail "$1: $((after - before)) audit rows, wanted exactly 1"
    expect "$1: audit" "$(last_audit)" "$4"
}

outcome "record never written" "$(decrypt) IS NULL" t "failed:record-not-found"
write_note enc_note_title insert
q "$db" -c '\i tests/fixtures/crypto/vectors.sql' -c "
  SELECT set_config('app.current_user_id', 'u1', false);
  INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
  SELECT 'notes', 'notes', 'n1', 'u1', 'update', jsonb_build_object('content', value, 'plain', 'kept', 'obj', (SELECT value FROM crypto_vectors WHERE name = 'enc_object')), 't'
    FROM crypto_vectors WHERE name = 'enc_note_content';" >/dev/null
outcome "ok: every enc:1: field decrypted" \
    "SELECT (r->>'title') || '|' || (r->>'content' = (SELECT value FROM crypto_vectors WHERE name = 'plain_note_content')) || '|' || (r->>'plain') || '|' || (r->'obj')::text FROM ($(decrypt)) s(r)" \
    'Einkauf|true|kept|{"a": 1, "b": [true, null, "x"]}' "ok:"
outcome "scope violation: nothing decrypted" "$(decrypt n2) IS NULL" t "scope-violation:record-not-in-grant-allowlist"
outcome "expired grant" "$(decrypt n1 mission-expired) IS NULL" t "failed:grant-expired"
outcome "grant under another key" "$(decrypt n1 mission-wrongkey) IS NULL" t "failed:grant-wrap-rejected"
outcome "grant copied from mission-abc onto another mission" "$(decrypt n1 mission-copied) IS NULL" t "failed:grant-malformed"
expect "a copied grant decrypts no input" "SELECT mana_ai.resolve_inputs('u1', 'mission-copied')" "[]"
for case in "enc_tampered_iv ciphertext-tampered-or-wrong-key" "enc_tampered_ct ciphertext-tampered-or-wrong-key" \
            "enc_tampered_tag ciphertext-tampered-or-wrong-key" "enc_wrong_key ciphertext-tampered-or-wrong-key" \
            "enc_truncated ciphertext-malformed" "enc_truncated_block ciphertext-malformed" \
            "enc_bad_b64 ciphertext-malformed" "enc_short_iv ciphertext-malformed" "enc_not_json plaintext-not-json"; do
    set -- $case
    write_note "$1" update
    outcome "$1" "$(decrypt) IS NULL" t "failed:$2"
done
write_note enc_note_title update
q "$db" -c "SELECT set_config('app.current_user_id', 'u1', false);
  INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
  VALUES ('notes', 'notes', 'n1', 'u1', 'update', '{\"deletedAt\": \"2026-01-01T00:00:00Z\"}', 't')" >/dev/null
outcome "deletedAt record" "$(decrypt) IS NULL" t "failed:record-deleted"
q "$db" -c "SELECT set_config('app.current_user_id', 'u1', false);
  INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
  VALUES ('notes', 'notes', 'n1', 'u1', 'delete', NULL, 't')" >/dev/null
outcome "tombstoned record" "$(decrypt) IS NULL" t "failed:record-not-found"

# --- resolvers through the grant -----------------------------------------
q "$db" -c '\i tests/fixtures/crypto/vectors.sql' -c "
  SELECT set_config('app.current_user_id', 'u1', false);
  INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
  SELECT 'todo', 'tasks', 't1', 'u1', 'insert', jsonb_build_object('title', value, 'status', 'open',
         'description', (SELECT value FROM crypto_vectors WHERE name = 'enc_task_description'), 'dueDate', '2026-05-01'), 't'
    FROM crypto_vectors WHERE name = 'enc_task_title';" >/dev/null
expect "resolve_inputs: task line decrypted, tombstoned note and out-of-scope journal dropped" \
    "SELECT mana_ai.resolve_inputs('u1', 'mission-abc')::text" \
    '[{"table": "tasks", "title": "Steuererklärung abgeben", "module": "tasks", "content": "[open] Steuererklärung abgeben — Belege sammeln (faellig: 2026-05-01)"}]'
expect "resolve_inputs audited in input order: tombstoned note failed, task ok, journal scope-violation" \
    "SELECT string_agg(record_id || '=' || status, ' ' ORDER BY id) FROM (SELECT * FROM mana_ai.decrypt_audit ORDER BY id DESC LIMIT 3) a" \
    "n1=failed t1=ok j1=scope-violation"

# Every other function result a DBA can see, for the secret scan.
sqlv "SELECT * FROM mana_ai.status" >/dev/null
sqlv "SET app.current_user_id = 'u1'; SELECT * FROM mana_ai.read_decrypt_audit(NULL, 1000)" >/dev/null

# --- secrets never leak ----------------------------------------------------
# derive_mission_key is left out: returning a derived key is its contract.
mdk_hex=$(vec mdk_hex)
mdk_b64=$(vec mdk_b64)
needles=$out/needles
{ echo "$mdk_hex"; echo "${mdk_hex^^}"; echo "$mdk_b64";
  echo "$mdk_hex" | sed 's/../\\\\x&/g' | tr -d '\n'; echo;
  grep -v -- '-----' "$fx/TEST-ONLY-private-key.pem";
  openssl pkey -in "$fx/TEST-ONLY-private-key.pem" -outform DER 2>/dev/null | od -An -tx1 -v | tr -d ' \n' | fold -w 64; echo;
} | grep -v '^$' > "$needles"
[ "$(wc -l < "$needles")" -gt 20 ] || fail "too few secret patterns to scan for"
# The scan must be able to fail: it finds the key in the key file itself.
grep -F -f "$needles" "$fx/TEST-ONLY-private-key.pem" >/dev/null || fail "the scan cannot see the key"
echo "x${mdk_b64}x" | grep -F -f "$needles" >/dev/null || fail "the scan cannot see the MDK"
for f in "$MANA_PG_LOG" "$results"; do
    if grep -F -f "$needles" "$f" >/dev/null; then
        fail "secret material found in $f"
    fi
done
grep -q 'Einkauf' "$results" || fail "the scan did not see the decrypted results"
echo "ok - no private key or MDK bytes (hex, base64) in the server log or any result"
echo "PASS crypto_keys"
