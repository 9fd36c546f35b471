#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# Debian's prometheus-postgres-exporter with docs/monitoring/queries.yaml,
# run as a login role that has only the operator grants of the README (no
# pg_monitor since 0.3.0):
# after the worker has planned (a grant with a decrypt, a scope violation
# and an expired grant, an answer that is not a plan), the worker is paused and
# the exporter is scraped on loopback.  Every sample of mana_ai.metrics
# (name, labels, value; histogram buckets, _sum and _count) is in the
# scrape with the same value, the scrape has no mana_ai_ sample that
# mana_ai.metrics lacks (other than the four status gauges, which must
# equal mana_ai.status), and the exporter reports no query error.
set -euo pipefail
source tests/lib/common.sh
fx=tests/fixtures/crypto
tmp=$(mktemp -d)
vec() { grep "^$1 " "$fx/vectors.txt" | cut -d' ' -f2-; }
command -v prometheus-postgres-exporter >/dev/null || fail "prometheus-postgres-exporter is not installed (tests/deps.sh)"

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
# The operator role exactly as the README grants it, and a login for the exporter.
q mana_sync -c "
CREATE ROLE mana_ops NOLOGIN;
GRANT USAGE ON SCHEMA mana_ai TO mana_ops;
GRANT SELECT ON mana_ai.status, mana_ai.metrics, mana_ai.tick_runs,
                mana_ai.missions, mana_ai.due_missions, mana_ai.agents TO mana_ops;
GRANT EXECUTE ON FUNCTION mana_ai.worker_state(), mana_ai.metric_rows(),
                          mana_ai.metrics_prometheus(), mana_ai.iso_timestamp(text) TO mana_ops;
GRANT SELECT ON mana_ai.mission_runs, mana_ai.mission_last_run TO mana_ops;
GRANT EXECUTE ON FUNCTION mana_ai.mission_runs_of_every_user() TO mana_ops;
CREATE ROLE mana_exporter LOGIN PASSWORD 'exporter-test' IN ROLE mana_ops;" >/dev/null
# No pg_monitor (issue 19): the exporter's login reads no server-only setting.
[ "$(q mana_sync -c "SELECT pg_has_role('mana_exporter', 'pg_monitor', 'MEMBER') OR pg_has_role('mana_exporter', 'pg_read_all_settings', 'MEMBER')")" = f ] \
    || fail "the exporter's login is a member of pg_monitor or pg_read_all_settings"
grep -qF "$(sed -n '/^GRANT EXECUTE ON FUNCTION mana_ai.mission_runs_of_every_user/p' README.md)" <<<"GRANT EXECUTE ON FUNCTION mana_ai.mission_runs_of_every_user() TO mana_ops;  -- every user's run history" \
    || fail "the operator block here differs from the README's"

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
# A chain whose first model fails: the LLM error and fallback families
# get samples too.
set_guc mana_ai.llm_model "mock-fail500,gpt-4o-mini"
cp "$fx/TEST-ONLY-private-key.pem" "$tmp/key.pem"
chmod 0755 "$tmp"; chmod 0600 "$tmp/key.pem"
chown "$(q postgres -c "SELECT rolname FROM pg_roles WHERE oid = 10")" "$tmp/key.pem" 2>/dev/null || true
set_guc mana_ai.private_key_file "$tmp/key.pem"
poll_until 10 mana_sync "SELECT mana_ai.grant_status('$(vec grant_ok)')" ok || fail "the TEST-ONLY key is not loaded"

psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/tick_world.sql >/dev/null
inputs='[{"module": "notes", "table": "notes", "id": "n1"}, {"module": "journal", "table": "journal", "id": "j1"}]'
q mana_sync -c "
SELECT set_config('app.current_user_id', 'u1', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
  ('notes', 'notes', 'n1', 'u1', 'insert',
   jsonb_build_object('title', '$(vec enc_note_title)', 'content', '$(vec enc_note_content)'), 'web'),
  ('journal', 'journal', 'j1', 'u1', 'insert', jsonb_build_object('content', '$(vec enc_note_title)'), 'web');
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.id, 'u1', 'insert',
       jsonb_build_object('title', m.id, 'objective', m.objective, 'inputs', '$inputs'::jsonb, 'state', 'active',
                          'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                          'nextRunAt', '2020-01-01T00:00:00.000Z') || m.extra, 'web'
  FROM (VALUES ('mission-abc', 'Mit Grant', jsonb_build_object('grant', '$(vec grant_ok)'::jsonb)),
               ('mission-old', 'Abgelaufen', jsonb_build_object('grant', '$(vec grant_expired)'::jsonb)),
               ('mission-bad', 'Kaputt [mock:tools-never-stop-invalid]', '{}'::jsonb)) AS m(id, objective, extra)" >/dev/null

# A few ticks: the world is planned, the grant decrypts and is refused
# once, the model that never makes a valid call fails to parse.
poll_until 60 mana_sync "SELECT count(*) >= 104 FROM sync_changes WHERE client_id = 'mana-ai-runner'" t \
    || fail "the worker did not plan the world and mission-abc"
poll_until 30 mana_sync "SELECT (SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'ok') >= 3
                           AND (SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_parse_failures_total') >= 1" t \
    || fail "no parse failure counted"

# Pause the worker so nothing changes between the scrape and the read.
set_guc mana_ai.enabled off
poll_until 10 mana_sync "SELECT enabled FROM mana_ai.status" f || fail "the worker did not see enabled = off"
poll_until 30 mana_sync "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running'" 0 || fail "a tick is still running"
q mana_sync -c "SELECT name, labels::text, value FROM mana_ai.metrics ORDER BY 1, 2" > "$tmp/before.txt"
for n in mana_ai_decrypts_total mana_ai_grant_scope_violations_total mana_ai_grant_skips_total \
         mana_ai_agent_decisions_total mana_ai_parse_failures_total mana_ai_mission_errors_total; do
    grep -q "^$n|.*|[1-9]" "$tmp/before.txt" || fail "$n was never counted: the comparison would prove little"
done

# --- the exporter, on a free loopback port ------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The bgwriter collector's switch, where this exporter version has one.
bgwriter_off=$(exporter_version_flags)
# lib/pq refuses some libpq variables pg_virtualenv sets (PGSYSCONFDIR): start from a clean environment.
env -i PATH="$PATH" \
    DATA_SOURCE_NAME="host=127.0.0.1 port=$PGPORT user=mana_exporter password=exporter-test dbname=mana_sync sslmode=disable" \
    PG_EXPORTER_EXTEND_QUERY_PATH="$PWD/docs/monitoring/queries.yaml" \
    timeout 120 prometheus-postgres-exporter --web.listen-address="127.0.0.1:$port" \
        --disable-default-metrics --disable-settings-metrics \
        --no-collector.database $bgwriter_off > "$tmp/exporter.log" 2>&1 &
exporter_pid=$!
deadline=$((SECONDS + 15))
until curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" > "$tmp/scrape.txt"; do
    kill -0 "$exporter_pid" 2>/dev/null || { cat "$tmp/exporter.log" >&2; fail "the exporter exited"; }
    [ $SECONDS -lt $deadline ] || { cat "$tmp/exporter.log" >&2; fail "the exporter did not answer within 15 s"; }
    sleep 0.2
done
q mana_sync -c "SELECT name, labels::text, value FROM mana_ai.metrics ORDER BY 1, 2" > "$tmp/after.txt"
cmp -s "$tmp/before.txt" "$tmp/after.txt" || fail "the metrics moved while the worker was paused"
q mana_sync -c "SELECT (worker_pid IS NOT NULL)::int, enabled::int, extract(epoch FROM tick_interval),
                       extract(epoch FROM last_tick_finished_at) FROM mana_ai.status" > "$tmp/status.txt"

grep -q '^pg_up 1$' "$tmp/scrape.txt" || fail "pg_up is not 1"
grep -q '^pg_exporter_last_scrape_error 0$' "$tmp/scrape.txt" \
    || { grep -i error "$tmp/exporter.log" >&2; fail "the exporter reports a scrape error"; }
grep -q '^pg_exporter_user_queries_load_error{.*} 0$' "$tmp/scrape.txt" || fail "the queries file did not load"

python3 - "$tmp/scrape.txt" "$tmp/after.txt" "$tmp/status.txt" "127.0.0.1:$PGPORT" <<'PY'
import json, math, re, sys
scrape, rows, status, server = sys.argv[1:]
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
gauges = {"mana_ai_worker_up", "mana_ai_enabled", "mana_ai_tick_interval_seconds",
          "mana_ai_last_tick_finished_timestamp_seconds"}
got, extra = {}, {}
for line in open(scrape):
    if line.startswith("#") or not line.startswith("mana_ai_"):
        continue
    m = sample.match(line.strip())
    if not m:
        sys.exit("unparsed exporter line: " + line)
    labels = dict(label.findall(m.group(2) or ""))
    if labels.pop("server", None) != server:
        sys.exit("sample without server=%s: %s" % (server, line))
    key = (m.group(1), json.dumps(labels, sort_keys=True))
    (extra if m.group(1) in gauges else got)[key] = float(m.group(3))
want = {}
for line in open(rows):
    name, labels, value = line.rstrip("\n").split("|")
    want[(name, json.dumps(json.loads(labels), sort_keys=True))] = float(value)
problems = []
for k, v in sorted(want.items()):
    if k not in got:
        problems.append("missing from the scrape: %s %s = %s" % (k[0], k[1], v))
    elif not math.isclose(got[k], v, rel_tol=1e-12, abs_tol=1e-12):
        problems.append("%s %s: exporter %r, mana_ai.metrics %r" % (k[0], k[1], got[k], v))
for k in sorted(set(got) - set(want)):
    problems.append("in the scrape, not in mana_ai.metrics: %s %s" % k)
# The families of SPEC 10 must all be there (a view that lost one would also lose it here).
spec = ["ticks_total", "plans_produced_total", "plans_written_back_total", "parse_failures_total",
        "mission_errors_total", "snapshots_new_total", "snapshots_updated_total",
        "snapshot_rows_applied_total", "decrypts_total", "grant_scope_violations_total",
        "grant_skips_total", "agent_decisions_total",
        "tool_calls_total", "llm_errors_total", "llm_fallbacks_total"]
spec = ["mana_ai_" + s for s in spec]
for h in ("mana_ai_tick_duration_seconds", "mana_ai_planner_request_duration_seconds",
          "mana_ai_planner_rounds"):
    spec += [h + "_bucket", h + "_sum", h + "_count"]
names = {k[0] for k in got}
problems += ["SPEC 10 metric not exported: " + s for s in spec if s not in names]
for h in ("mana_ai_tick_duration_seconds", "mana_ai_planner_request_duration_seconds",
          "mana_ai_planner_rounds"):
    les = sorted(json.loads(k[1])["le"] for k in got if k[0] == h + "_bucket")
    if "+Inf" not in les or len(les) < 2:
        problems.append(h + ": buckets " + repr(les))
st = [float(x) for x in open(status).read().strip().split("|")]
for name, v in zip(["mana_ai_worker_up", "mana_ai_enabled", "mana_ai_tick_interval_seconds",
                    "mana_ai_last_tick_finished_timestamp_seconds"], st):
    g = extra.get((name, "{}"))
    if g is None or not math.isclose(g, v, rel_tol=1e-12):
        problems.append("%s: exporter %r, mana_ai.status %r" % (name, g, v))
if problems:
    sys.exit("\n".join(problems))
print("ok - %d samples of mana_ai.metrics equal in the scrape, plus 4 status gauges" % len(want))
PY
[ "$(sed -n 1p "$tmp/status.txt" | cut -d'|' -f1-2)" = "1|0" ] || fail "status gauges: worker_up must be 1, enabled 0"

kill "$exporter_pid"
deadline=$((SECONDS + 10))
while kill -0 "$exporter_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
! kill -0 "$exporter_pid" 2>/dev/null || fail "the exporter did not stop"
exporter_pid=
echo "PASS exporter"
