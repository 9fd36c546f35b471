#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# Metric labels a user can choose (issue 19): a mission's inputs name 30
# tables of its user's choosing, one of them 300 two-byte characters (the
# label store cut it inside a character), others with an emoji, quotes,
# a backslash and a newline (invalid UTF-8 itself cannot reach a jsonb
# column).  Debian's prometheus-postgres-exporter (as tests/worker/exporter.sh
# runs it) must still scrape without error; every label in the scrape is
# valid UTF-8; every {table} label is a known input table or "other"; and
# another table's count (tasks) keeps its own label, not "other".
set -euo pipefail
source tests/lib/common.sh
fx=tests/fixtures/crypto
tmp=$(mktemp -d)
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }
command -v prometheus-postgres-exporter >/dev/null || fail "prometheus-postgres-exporter is not installed (tests/deps.sh)"

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
# A login that reads what docs/monitoring/queries.yaml reads, nothing else.
q mana_sync -c "
CREATE ROLE mana_exporter LOGIN PASSWORD 'exporter-test';
GRANT USAGE ON SCHEMA mana_ai TO mana_exporter;
GRANT SELECT ON mana_ai.status, mana_ai.metrics TO mana_exporter;
GRANT EXECUTE ON FUNCTION mana_ai.worker_state(), mana_ai.metric_rows() TO mana_exporter;" >/dev/null

start_mock_llm
exporter_pid=
cleanup() {
    [ -n "$exporter_pid" ] && kill "$exporter_pid" 2>/dev/null
    kill "$MOCK_PID" 2>/dev/null
    rm -rf "$tmp"
    true
}
trap cleanup EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
use_test_grant_key "$tmp"

# mission-abc (the fixture's grant): its own note, 30 tables of the user's
# choosing (the first the long one, so it surely gets a label slot when
# names are stored as given), then a record of tasks the grant does not allow.
q mana_sync -c "
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('notes', 'notes', 'n1', 'u1', 'insert',
   jsonb_build_object('title', '$(vec enc_note_title)', 'content', '$(vec enc_note_content)'), 'web');
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', 'mission-abc', 'u1', 'insert',
       jsonb_build_object('title', 'Etiketten', 'objective', 'Viele Tabellen', 'state', 'active',
                          'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                          'nextRunAt', '2020-01-01T00:00:00.000Z', 'grant', '$(vec grant_ok)'::jsonb,
                          'inputs', jsonb_build_array(jsonb_build_object('module', 'notes', 'table', 'notes', 'id', 'n1'))
                                    || (SELECT jsonb_agg(jsonb_build_object('module', 'notes', 'table', t, 'id', 'x') ORDER BY o)
                                          FROM (VALUES (0, repeat('ä', 300)), (1, 'tab \"quoted\" \\\\ back' || chr(10) || 'line'),
                                                       (2, '🙂' || repeat('é', 140) || '🙂')) v(o, t))
                                    || (SELECT jsonb_agg(jsonb_build_object('module', 'notes', 'table', 'user_table_' || i, 'id', 'x') ORDER BY i)
                                          FROM generate_series(3, 29) i)
                                    || jsonb_build_array(jsonb_build_object('module', 'tasks', 'table', 'tasks', 'id', 't999'))),
       'web'" >/dev/null
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'mission-abc'" 1 \
    || fail "mission-abc was not planned"
set_guc mana_ai.enabled off
poll_until 10 mana_sync "SELECT enabled FROM mana_ai.status" f || fail "the worker did not see enabled = off"
poll_until 30 mana_sync "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running'" 0 || fail "a tick is still running"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.decrypt_audit WHERE status = 'scope-violation'")" = 31 ] \
    || fail "expected 31 scope violations, got $(q mana_sync -c "SELECT count(*) FROM mana_ai.decrypt_audit WHERE status = 'scope-violation'")"

# --- the exporter, as tests/worker/exporter.sh runs it --------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -i PATH="$PATH" \
    DATA_SOURCE_NAME="host=127.0.0.1 port=$PGPORT user=mana_exporter password=exporter-test dbname=mana_sync sslmode=disable" \
    PG_EXPORTER_EXTEND_QUERY_PATH="$PWD/docs/monitoring/queries.yaml" \
    timeout 120 prometheus-postgres-exporter --web.listen-address="127.0.0.1:$port" \
        --disable-default-metrics --disable-settings-metrics \
        --no-collector.database $(exporter_version_flags) > "$tmp/exporter.log" 2>&1 &
exporter_pid=$!
deadline=$((SECONDS + 15))
until curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" > "$tmp/scrape.txt"; do
    kill -0 "$exporter_pid" 2>/dev/null || { tail -20 "$tmp/exporter.log" >&2; fail "the exporter exited"; }
    [ $SECONDS -lt $deadline ] || { tail -20 "$tmp/exporter.log" >&2; fail "the exporter did not answer within 15 s"; }
    sleep 0.2
done
curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" > "$tmp/scrape2.txt" || fail "a second scrape failed"
kill -0 "$exporter_pid" 2>/dev/null || fail "the exporter died after a scrape"
! grep -q 'panic' "$tmp/exporter.log" || { grep -A5 panic "$tmp/exporter.log" >&2; fail "the exporter panicked"; }
grep -q '^pg_exporter_last_scrape_error 0$' "$tmp/scrape2.txt" || { tail -20 "$tmp/exporter.log" >&2; fail "the exporter reports a scrape error"; }
q mana_sync -c "SELECT name || '|' || (labels ->> 'table') || '|' || value FROM mana_ai.metrics
                 WHERE labels ? 'table' ORDER BY 1" > "$tmp/rows.txt"

python3 - "$tmp/scrape2.txt" "$tmp/rows.txt" <<'PY'
import re, sys
scrape, rows = sys.argv[1:]
known = {"calendar", "companionGoals", "events", "journal", "kontext", "kontextDoc",
         "notes", "tasks", "todo", "userContext", "other"}
raw = open(scrape, "rb").read()
try:
    text = raw.decode("utf-8")      # strict: an invalid label fails here
except UnicodeDecodeError as e:
    sys.exit("the scrape is not valid UTF-8: %s" % e)
label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
seen = {}
for line in text.splitlines():
    if not line.startswith(("mana_ai_decrypts_total", "mana_ai_grant_scope_violations_total")):
        continue
    labels = dict(label.findall(line))
    t = labels.get("table")
    if t not in known:
        sys.exit("a {table} label outside the closed set: %r" % line)
    seen[(line.split("{")[0], t)] = float(line.rsplit(" ", 1)[1])
want = {("mana_ai_grant_scope_violations_total", "other"): 30,
        ("mana_ai_grant_scope_violations_total", "tasks"): 1,
        ("mana_ai_decrypts_total", "notes"): 1}
for k, v in want.items():
    if seen.get(k) != v:
        sys.exit("%s{table=%s}: %r, want %r (scrape: %r)" % (k[0], k[1], seen.get(k), v, seen))
for line in open(rows, encoding="utf-8"):
    name, t, value = line.rstrip("\n").split("|")
    if t not in known:
        sys.exit("mana_ai.metrics has a {table} label outside the closed set: %r" % t)
print("ok - %d table samples, all in the closed set, the scrape is valid UTF-8" % len(seen))
PY
echo "PASS exporter_labels"
