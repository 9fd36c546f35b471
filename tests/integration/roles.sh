#!/usr/bin/env bash
# roles.sh: the privilege blocks printed in the README do what the README
# says, so a DBA can paste them.
#  - the worker's GRANT block is the one tests/fixtures/runner_role.sql
#    (used by every worker test) applies: they cannot drift apart;
#  - with it, a NOBYPASSRLS role runs a whole tick (SQL path) and writes a
#    plan through sync_changes' row-level security, though it may not
#    INSERT into sync_changes itself (issue 19: only through
#    append_runner_iteration);
#  - the worker's role can EXECUTE exactly the functions the tick's SQL
#    calls, and not audit_decrypt, decrypt_input, llm_test_call,
#    derive_mission_key or read_decrypt_audit;
#  - the operator block lets mana_ops read the ops views and nothing that
#    decrypts or reads snapshots directly; no view or table it may read
#    shows a record, grant, input, plan or system prompt, and it needs no
#    pg_monitor (so no server-only setting) (issue 19);
#  - the application block lets mana_app read one user's decrypt audit;
#  - PUBLIC gets only what 99_privileges.sql lists (no decrypt audit).
# Runs inside with_cluster.sh (no preload), cwd = repo root.
set -euo pipefail
. tests/lib/common.sh
db=mana_sync

# readme_sql HEADING: the ```sql blocks under that "### " heading.
readme_sql() {
    awk -v h="### $1" '
        $0 == h { inside = 1; next }
        inside && /^##/ { exit }
        inside && /^```sql/ { code = 1; next }
        inside && /^```/ { code = 0; next }
        inside && code { print }' README.md
}
# normalise SQL text for comparison: no comments, one statement per line
statements() { sed 's/--.*//' | tr '\n' ' ' | tr -s ' ' | sed 's/; */;\n/g' | sed 's/^ //' | grep -v '^$'; }

worker_block=$(readme_sql "The worker's role")
ops_block=$(readme_sql "An operator role")
app_block=$(readme_sql "The application's role")
[ -n "$worker_block" ] || fail "README has no SQL block under 'The worker's role'"
[ -n "$ops_block" ] || fail "README has no SQL block under 'An operator role'"
[ -n "$app_block" ] || fail "README has no SQL block under 'The application's role'"
diff <(echo "$worker_block" | statements) \
     <(sed 's/:"runner"/mana_runner/g' tests/fixtures/runner_role.sql | statements) \
    || fail "README worker GRANTs differ from tests/fixtures/runner_role.sql"
echo "ok - README worker block = runner_role.sql"

setup_mana_sync "$db"
q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" -c "CREATE ROLE nobody LOGIN" >/dev/null
echo "$worker_block" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
echo "$ops_block" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
echo "$app_block" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
q postgres -c "CREATE ROLE ops_alice LOGIN IN ROLE mana_ops" -c "CREATE ROLE app_server LOGIN IN ROLE mana_app" >/dev/null
# (sessions below connect as the superuser and SET ROLE: the privileges
# checked are the role's, and the cluster has no passwords)
echo "ok - the three README blocks run as written"

# as ROLE: run SQL; expect success (ok) or a permission error (denied)
as() {
    local role=$1 want=$2 sql=$3 out
    if out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE $role" -c "$sql" 2>&1); then
        [ "$want" = ok ] || fail "$role could run: $sql"
    else
        [ "$want" = denied ] || fail "$role could not run: $sql ($out)"
        case $out in *"permission denied"*) ;; *) fail "$role: $sql failed for another reason: $out" ;; esac
    fi
    echo "ok - $role $want: $sql"
}

# the operator reads the ops surface ...
for sql in "SELECT count(*) FROM mana_ai.status" "SELECT count(*) FROM mana_ai.metrics" \
           "SELECT count(*) FROM mana_ai.tick_runs" "SELECT count(*) FROM mana_ai.missions" \
           "SELECT count(*) FROM mana_ai.due_missions" "SELECT count(*) FROM mana_ai.agents" \
           "SELECT length(mana_ai.metrics_prometheus()) >= 0" \
           "SELECT count(*) FROM mana_ai.mission_runs" "SELECT count(*) FROM mana_ai.mission_last_run"; do
    as ops_alice ok "$sql"
done
# ... but nothing that decrypts, reads raw snapshots or writes
for sql in "SELECT count(*) FROM mana_ai.mission_snapshots" "SELECT count(*) FROM mana_ai.decrypt_audit" \
           "SELECT mana_ai.grant_status('{}')" "SELECT mana_ai.resolve_inputs('alice', 'm1')" \
           "SELECT mana_ai.build_prompt('alice', 'm1')" "SELECT * FROM mana_ai.refresh_snapshots()" \
           "DELETE FROM mana_ai.tick_runs" "SELECT count(*) FROM public.sync_changes" \
           "BEGIN; SELECT set_config('app.current_user_id', 'carol', true); SELECT count(*) FROM mana_ai.read_decrypt_audit(); COMMIT"; do
    as ops_alice denied "$sql"
done
# The application's role reads one user's decrypt audit, and nothing else.
as app_server ok "BEGIN; SELECT set_config('app.current_user_id', 'carol', true); SELECT count(*) FROM mana_ai.read_decrypt_audit(); COMMIT"
for sql in "SELECT count(*) FROM mana_ai.decrypt_audit" "SELECT count(*) FROM mana_ai.status" \
           "SELECT mana_ai.decrypt_input('carol', 'm1', 'notes', 'notes', 'n1')"; do
    as app_server denied "$sql"
done
# PUBLIC: the tool catalog, cadence arithmetic; no audit trail, no tick
as nobody ok "SELECT count(*) FROM mana_ai.tools"
as nobody ok "SELECT mana_ai.next_run_at('{\"kind\": \"interval\", \"everyMinutes\": 5}', now()) IS NOT NULL"
for sql in "BEGIN; SELECT set_config('app.current_user_id', 'carol', true); SELECT count(*) FROM mana_ai.read_decrypt_audit(); COMMIT" \
           "SELECT mana_ai_tick()" "SELECT count(*) FROM mana_ai.status" "SELECT count(*) FROM mana_ai.missions" \
           "SELECT count(*) FROM mana_ai.tick_runs" "SELECT mana_ai.metrics_prometheus()" \
           "SELECT count(*) FROM mana_ai.mission_runs" "SELECT mana_ai.purge_mission_runs(0)"; do
    as nobody denied "$sql"
done

# The worker's role has no more than it needs.
for sql in "DELETE FROM mana_ai.tools" "UPDATE mana_ai.decrypt_audit SET reason = 'x'" \
           "DELETE FROM mana_ai.decrypt_audit" "DELETE FROM mana_ai.snapshot_horizon" \
           "UPDATE public.sync_changes SET op = 'delete'" "DELETE FROM public.sync_changes" \
           "INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES ('ai', 'aiMissions', 'm1', 'carol', 'update', '{\"objective\": \"x\"}', 'web')" \
           "SELECT mana_ai.audit_decrypt('carol', 'm1', NULL, 'notes', 'n1', 'ok')" \
           "SELECT mana_ai.llm_test_call('s', 'u', 1)" \
           "SELECT mana_ai.derive_mission_key(decode(repeat('ab', 32), 'hex'), '{}')" \
           "SELECT mana_ai.decrypt_input('carol', 'm1', 'notes', 'notes', 'n1')" \
           "SELECT mana_ai.resolve_inputs('carol', 'm1')" "SELECT mana_ai.build_prompt('carol', 'm1')" \
           "BEGIN; SELECT set_config('app.current_user_id', 'carol', true); SELECT count(*) FROM mana_ai.read_decrypt_audit(); COMMIT" \
           "DELETE FROM mana_ai.mission_runs"; do
    as mana_runner denied "$sql"
done
# retention's purge is granted, but from SQL the append-only guard refuses it
if out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE mana_runner" -c "SELECT mana_ai.purge_decrypt_audit(0)" 2>&1); then
    fail "mana_runner purged the audit trail from SQL"
fi
case $out in *"append-only"*) ;; *) fail "purge_decrypt_audit from SQL failed for another reason: $out" ;; esac
echo "ok - mana_runner cannot purge the audit trail from SQL (append-only guard)"
# ... and EXECUTE on exactly the functions the tick's SQL calls (plus PUBLIC's).
want="mana_ai.append_runner_iteration(user_id text, mission_id text, data jsonb, stamps jsonb, actor jsonb)
mana_ai.build_iteration(iteration_id text, started_at timestamp with time zone, finished_at timestamp with time zone, plan jsonb, error jsonb)
mana_ai.claim_runner_slot(user_id text, mission_id text, slot text)
mana_ai.iso_text(ts timestamp with time zone)
mana_ai.iso_timestamp(stamp text)
mana_ai.next_run_at(cadence jsonb, from_ts timestamp with time zone)
mana_ai.next_run_at_in(cadence jsonb, from_ts timestamp with time zone, zone text)
mana_ai.purge_decrypt_audit(keep_minutes integer)
mana_ai.purge_mission_runs(keep_minutes integer)
mana_ai.record_mission_runs(tick_id bigint, runs jsonb)
mana_ai.refresh_horizon()
mana_ai.snapshot_rows_of(user_ids text[], missions_since timestamp with time zone, agents_since timestamp with time zone)
mana_ai.snapshot_users_since(table_name text, since timestamp with time zone)
mana_ai.sync_format()
mana_ai.tool_parameters_error(parameters jsonb)
public.mana_ai_tick()"
got=$(q "$db" -c "SELECT format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) COLLATE \"C\"
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE (n.nspname = 'mana_ai' OR p.proname LIKE 'mana\\_ai%')
                     AND has_function_privilege('mana_runner', p.oid, 'EXECUTE')
                   ORDER BY 1")
[ "$got" = "$want" ] || fail "the worker's role may execute: $got"
echo "ok - mana_runner may execute exactly the tick's functions"

# The worker's role, without BYPASSRLS, runs a whole tick.
start_mock_llm
psql -X -qAt -d "$db" -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.llm_url = '$MOCK_URL'" \
     -c "SELECT pg_reload_conf()" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-roles', 'carol', 'insert',
        '{"title": "Rollen", "objective": "Rechte pruefen", "conceptMarkdown": "x", "inputs": [],
          "cadence": {"kind": "interval", "everyMinutes": 60}, "state": "active",
          "nextRunAt": "2026-01-01T08:00:00.000Z", "iterations": [],
          "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}', 'web');
SQL
result=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE mana_runner" -c "SELECT mana_ai_tick() ->> 'plansWrittenBack'")
[ "$result" = 1 ] || fail "the worker's role could not plan: plansWrittenBack=$result"
[ "$(q "$db" -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND user_id = 'carol'")" = 1 ] \
    || fail "no write-back row"
echo "ok - mana_runner (NOBYPASSRLS) ran a tick and wrote the plan"
[ "$(q "$db" -c "SET ROLE ops_alice" -c "SELECT string_agg(user_id || ':' || mission_id || ':' || decision, ',') FROM mana_ai.mission_runs" | tail -1)" = "carol:m-roles:ran" ] \
    || fail "the operator does not see carol's run history"
echo "ok - the operator (mission_runs_of_every_user, no pg_monitor) sees every user's run history"
# No pg_monitor (issue 19): the operator reads no server-only setting.
[ "$(q "$db" -c "SELECT pg_has_role('ops_alice', 'pg_monitor', 'MEMBER') OR pg_has_role('ops_alice', 'pg_read_all_settings', 'MEMBER')")" = f ] \
    || fail "the operator is a member of pg_monitor or pg_read_all_settings"
for guc in mana_ai.llm_url mana_ai.private_key_file mana_ai.llm_key_file; do
    out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "LOAD 'mana_ai'" -c "SET ROLE ops_alice" -c "SHOW $guc" 2>&1) && fail "the operator can SHOW $guc"
    case $out in *"pg_read_all_settings"*) ;; *) fail "SHOW $guc failed for another reason: $out" ;; esac
done
[ "$(q "$db" -c "LOAD 'mana_ai'" -c "SET ROLE ops_alice" -c "SELECT count(*) FROM pg_settings WHERE name IN ('mana_ai.llm_url', 'mana_ai.private_key_file', 'mana_ai.llm_key_file')" | tail -1)" = 0 ] \
    || fail "the operator sees a server-only mana_ai setting in pg_settings"
echo "ok - the operator cannot read mana_ai.llm_url or a key file's path"
as ops_alice denied "SELECT mana_ai_tick()"

# The operator reads no raw snapshot through any view or table (issue 19):
# a mission with a grant (its wrapped key), inputs and an objective, and an
# agent with a system prompt, each carrying a marker; every relation the
# operator may read, whole rows, and the Prometheus text hold none of them.
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-secret', 'carol', 'insert',
        '{"title": "Geheimnisse", "objective": "SECRET-OBJECTIVE", "conceptMarkdown": "SECRET-CONCEPT",
          "inputs": [{"module": "notes", "table": "notes", "id": "SECRET-INPUT"}], "agentId": "a-secret",
          "grant": {"wrappedKey": "SECRET-WRAPPED-KEY", "scope": {"recordIds": ["notes:SECRET-INPUT"]}},
          "cadence": {"kind": "manual"}, "state": "paused", "iterations": [{"id": "i1", "summary": "SECRET-PLAN",
          "overallStatus": "awaiting-review", "startedAt": "2026-01-01T08:00:00.000Z", "finishedAt": "2026-01-01T08:00:01.000Z"}],
          "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}', 'web'),
       ('ai', 'agents', 'a-secret', 'carol', 'insert',
        '{"name": "Agentin", "role": "SECRET-ROLE", "systemPrompt": "SECRET-SYSTEM-PROMPT", "policy": {"note": "SECRET-POLICY"},
          "state": "active", "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}', 'web');
SELECT count(*) FROM mana_ai.refresh_snapshots();
SQL
[ "$(q "$db" -c "SELECT count(*) FROM mana_ai.mission_snapshots s, mana_ai.agent_snapshots a
                  WHERE s.record::text LIKE '%SECRET-WRAPPED-KEY%' AND a.record::text LIKE '%SECRET-SYSTEM-PROMPT%'")" = 1 ] \
    || fail "the secrets did not reach the snapshots (test setup)"
readable=$(q "$db" -c "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname IN ('mana_ai', 'public') AND c.relkind IN ('r', 'v', 'm', 'p')
                          AND has_table_privilege('ops_alice', c.oid, 'SELECT') ORDER BY 1")
grep -qx 'mana_ai.missions' <<<"$readable" && grep -qx 'mana_ai.agents' <<<"$readable" || fail "the operator cannot read the ops views: $readable"
for rel in $readable; do
    leaked=$(q "$db" -c "SET ROLE ops_alice" -c "SELECT count(*) FROM $rel r WHERE r::text ~ 'SECRET-'" | tail -1)
    [ "$leaked" = 0 ] || fail "the operator reads a secret through $rel"
done
[ "$(q "$db" -c "SET ROLE ops_alice" -c "SELECT title || '|' || has_grant || '|' || iteration_count || '|' || last_iteration_status
                                          FROM mana_ai.missions WHERE mission_id = 'm-secret'" | tail -1)" = "Geheimnisse|true|1|awaiting-review" ] \
    || fail "the operator does not see the mission's ops columns"
[ "$(q "$db" -c "SET ROLE ops_alice" -c "SELECT name || '|' || state FROM mana_ai.agents WHERE agent_id = 'a-secret'" | tail -1)" = "Agentin|active" ] \
    || fail "the operator does not see the agent's ops columns"
q "$db" -c "SET ROLE ops_alice" -c "SELECT mana_ai.metrics_prometheus()" | grep -q 'SECRET-' && fail "the Prometheus text holds a secret"
for sql in "SELECT record FROM mana_ai.missions" "SELECT record FROM mana_ai.due_missions" "SELECT record FROM mana_ai.agents" \
           "SELECT objective FROM mana_ai.missions" "SELECT role FROM mana_ai.agents" "SELECT policy FROM mana_ai.agents"; do
    out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE ops_alice" -c "$sql" 2>&1) && fail "the operator could run: $sql"
    case $out in *"does not exist"*) ;; *) fail "$sql failed for another reason: $out" ;; esac
done
for sql in "SELECT count(*) FROM mana_ai.agent_snapshots" "SELECT count(*) FROM mana_ai.snapshot_tombstones"; do
    as ops_alice denied "$sql"
done
echo "ok - the operator reads no record, grant, input, plan or system prompt through any of the $(wc -w <<<"$readable") relations it may read"
echo "roles ok"
