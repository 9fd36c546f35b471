#!/usr/bin/env bash
# Sharded mana_sync on loopback: with_cluster.sh's cluster (no preload) is
# the proxy with PL/Proxy and mana_ai_proxy; this script starts two shards
# (mana_ai preloaded, a worker each, ticking every second as a role
# without BYPASSRLS) against one mock LLM.  200 users placed by the
# routing function; every due mission planned exactly once on its user's
# shard; the proxy's views agree with the shards'; one user moved while
# the old shard's tick holds one of their missions in its LLM call, and
# planned exactly once; move_user not hijacked by a planted operator, a
# foreign mana_ai_move schema or a $$ in a user id; one shard stopped
# (reported down, the other keeps planning) and started again.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

proxy_port=$PGPORT
libdir=$(pg_config --pkglibdir)
bindir=$(pg_config --bindir)
work=$(mktemp -d /tmp/mana_shards.XXXXXX)
chmod 0755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"

start_mock_llm          # sets its own EXIT trap; ours below replaces it
ports=()
cleanup() {
    local rc=$?
    for n in 0 1; do
        [ -f "$work/shard$n/data/postmaster.pid" ] &&
            as_pg "$bindir/pg_ctl" -D "$work/shard$n/data" stop -m immediate -w -t 20 >/dev/null 2>&1 || true
    done
    kill "$MOCK_PID" 2>/dev/null || true
    if [ "$rc" != 0 ]; then
        for n in 0 1; do echo "----- shard $n log (tail)"; tail -n 40 "$work/shard$n/log" 2>/dev/null || true; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A shard: a fresh cluster with mana_ai preloaded, its worker paused until
# the test has loaded and checked the data.
init_shard() {
    local n=$1 dir=$work/shard$n port
    port=$(free_port)
    ports[$n]=$port
    as_pg mkdir -p "$dir"
    printf '%s\n' "$PGPASSWORD" | as_pg tee "$dir/pw" >/dev/null
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pw" \
        -E UTF8 --no-sync >/dev/null
    as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = 'localhost'
port = $port
unix_socket_directories = '$dir'
cluster_name = 'mana-shard-$n'
shared_preload_libraries = 'mana_ai'
$MANA_EXT_CONF
max_worker_processes = 16
fsync = off
log_line_prefix = '%m [%p] %q%u@%d '
mana_ai.tick_interval = 1
mana_ai.role = 'mana_runner'
mana_ai.llm_url = '$MOCK_URL'
mana_ai.enabled = off
EOF
}
start_shard() { as_pg "$bindir/pg_ctl" -D "$work/shard$1/data" -l "$work/shard$1/log" -w -t 60 start >/dev/null; }
stop_shard() { as_pg "$bindir/pg_ctl" -D "$work/shard$1/data" -m fast -w -t 60 stop >/dev/null; }

# sq N SQL: one value from shard N's mana_sync.  pq SQL: from the proxy.
sq() { local n=$1; shift; PGPORT=${ports[$n]} q mana_sync -c "$*"; }
pq() { PGPORT=$proxy_port q mana_proxy -c "$*"; }
# until_shard N SECONDS SQL WANT
until_shard() { PGPORT=${ports[$1]} poll_until "$2" mana_sync "$3" "$4"; }
eq() { [ "$1" = "$2" ] || fail "$3: got '$1', wanted '$2'"; }

for n in 0 1; do init_shard $n; start_shard $n; done
# The extension and its role's grants in one transaction: the worker,
# waiting for CREATE EXTENSION, never sees one without the other.
for n in 0 1; do
    PGPORT=${ports[$n]} q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" -c "CREATE DATABASE mana_sync" >/dev/null
    PGPORT=${ports[$n]} psql -X -q -1 -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner \
        -f tests/fixtures/sync_changes.sql -c "CREATE EXTENSION mana_ai" -f tests/fixtures/runner_role.sql >/dev/null 2>&1
done

# ---- the proxy: PL/Proxy's SQL/MED cluster is the shard map
q postgres -c "CREATE DATABASE mana_proxy" >/dev/null
pq "CREATE EXTENSION mana_ai_proxy CASCADE" >/dev/null 2>&1
pq "CREATE SERVER mana_sync FOREIGN DATA WRAPPER plproxy OPTIONS (
        p0 'host=localhost port=${ports[0]} dbname=mana_sync connect_timeout=3',
        p1 'host=localhost port=${ports[1]} dbname=mana_sync connect_timeout=3')"
pq "CREATE USER MAPPING FOR PUBLIC SERVER mana_sync OPTIONS (user 'postgres', password '$PGPASSWORD')"
eq "$(pq "SELECT string_agg(shard || '=' || partition, ',' ORDER BY partition) FROM mana_ai_proxy.shards")" "p0=0,p1=1" "shard map"
# PUBLIC may place a user by the hash, but reads neither the map's
# connection strings nor who was moved
pq "CREATE ROLE proxy_nobody" >/dev/null
eq "$(pq "SET ROLE proxy_nobody; SELECT mana_ai_proxy.partition_count() || ':' || mana_ai_proxy.home_partition('u001')")" \
   "2:$(pq "SELECT hashtext('u001') & 1")" "PUBLIC's routing arithmetic"
for obj in "SELECT count(*) FROM mana_ai_proxy.shards" "SELECT count(*) FROM mana_ai_proxy.placement" \
           "SELECT mana_ai_proxy.partition_of('u001')"; do
    if pq "SET ROLE proxy_nobody; $obj" >/dev/null 2>&1; then fail "PUBLIC could run: $obj"; fi
done

# ---- 200 users placed by the routing function, two due missions each
users_sql="SELECT 'u' || lpad(i::text, 3, '0') AS u FROM generate_series(1, 200) i"
for n in 0 1; do
    users[$n]=$(pq "SELECT string_agg(u, ',' ORDER BY u) FROM ($users_sql) s WHERE mana_ai_proxy.partition_of(u) = $n")
done
eq "$(pq "SELECT count(*) FROM ($users_sql) s WHERE mana_ai_proxy.partition_of(u) <> hashtext(u) & 1")" 0 \
    "partition_of is hashtext(user_id) & (n - 1) for users never moved"
count0=$(tr ',' '\n' <<<"${users[0]}" | wc -l); count1=$(tr ',' '\n' <<<"${users[1]}" | wc -l)
eq "$((count0 + count1))" 200 "users placed"
[ "$count0" -ge 60 ] && [ "$count1" -ge 60 ] || fail "hash placement is lopsided: $count0 / $count1"
echo "placed: $count0 users on p0, $count1 on p1"

load_users() {   # N: the users the routing function put on shard N
    PGPORT=${ports[$1]} q mana_sync -v users="${users[$1]}" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
SELECT 'ai', 'aiMissions', 'm-' || u || '-' || k, u, 'insert',
       jsonb_build_object('title', 'Mission ' || k, 'conceptMarkdown', 'Skalierung',
                          'objective', 'Ziel ' || u || '-' || k, 'inputs', '[]'::jsonb,
                          'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb,
                          'state', 'active', 'nextRunAt', '2026-01-01T08:00:00.000Z',
                          'iterations', '[]'::jsonb,
                          'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
       'web', now() - interval '1 hour'
  FROM unnest(string_to_array(:'users', ',')) u, generate_series(1, 2) k;
SQL
}
load_users 0; load_users 1

# The user who will move (from p0 to p1) has a longer history: an agent,
# an edited mission (stamps) and a deleted one.
mover=$(cut -d, -f1 <<<"${users[0]}")
PGPORT=${ports[0]} q mana_sync -v u="$mover" -v stamps="$STAMPS" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, :"stamps", client_id, created_at) VALUES
('ai', 'agents', 'ag-mover', :'u', 'insert',
 '{"name": "Umzug", "role": "Plant", "state": "active", "maxConcurrentMissions": 5,
   "policy": {"tools": {}, "defaultForAi": "propose"}}', '{}', 'web', now() - interval '50 minutes'),
('ai', 'aiMissions', 'm-' || :'u' || '-1', :'u', 'update', '{"title": "Umbenannt", "agentId": "ag-mover"}',
 '{"title": "2026-01-02T10:00:00+02:00", "agentId": "2026-01-02T08:00:00.000Z"}', 'web', now() - interval '40 minutes'),
('ai', 'aiMissions', 'm-' || :'u' || '-gone', :'u', 'insert',
 '{"title": "Weg", "state": "active", "nextRunAt": "2026-01-01T08:00:00.000Z", "cadence": {"kind": "manual"}}',
 '{}', 'web', now() - interval '30 minutes'),
('ai', 'aiMissions', 'm-' || :'u' || '-gone', :'u', 'delete', NULL, '{}', 'web', now() - interval '20 minutes');
SQL
total=$(( (count0 + count1) * 2 ))

# ---- before the workers run: the proxy's due_missions is the shards'
for n in 0 1; do sq $n "SELECT count(*) FROM mana_ai.refresh_snapshots()" >/dev/null; done
eq "$(pq "SELECT count(*) FROM mana_ai_proxy.due_missions")" "$total" "due missions through the proxy"
for n in 0 1; do
    eq "$(pq "SELECT md5(string_agg(user_id || '/' || mission_id || '/' || next_run_at, ',' ORDER BY user_id, mission_id))
                FROM mana_ai_proxy.due_missions WHERE shard = 'p$n'")" \
       "$(sq $n "SELECT md5(string_agg(user_id || '/' || mission_id || '/' || next_run_at, ',' ORDER BY user_id, mission_id))
                FROM mana_ai.due_missions")" "proxy due_missions of p$n"
done

# ---- both workers tick against the one mock
for n in 0 1; do
    PGPORT=${ports[$n]} set_guc mana_ai.enabled on
done
written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
until_shard 0 90 "$written" "$((count0 * 2))" || fail "p0 did not plan its $((count0 * 2)) missions"
until_shard 1 90 "$written" "$((count1 * 2))" || fail "p1 did not plan its $((count1 * 2)) missions"

# exactly once, on the right shard
once="SELECT count(*) FROM (SELECT m.user_id, m.mission_id FROM mana_ai.mission_snapshots m
        LEFT JOIN sync_changes s ON s.client_id = 'mana-ai-runner' AND s.user_id = m.user_id AND s.record_id = m.mission_id
        GROUP BY 1, 2 HAVING count(s.id) <> 1) bad"
for n in 0 1; do
    eq "$(sq $n "$once")" 0 "p$n: missions not planned exactly once"
    eq "$(sq $n "SELECT count(*) FROM (SELECT DISTINCT user_id FROM sync_changes) u
                  WHERE NOT (user_id = ANY (string_to_array('${users[$n]}', ',')))")" 0 "p$n holds another shard's user"
    eq "$(sq $n "SELECT count(*) FROM sync_changes WHERE hashtext(user_id) & 1 <> $n")" 0 "p$n: a row not placed by hashtext & 1"
done
sleep 2   # a few more ticks: nothing planned again
for n in 0 1; do eq "$(sq $n "$once")" 0 "p$n: a mission planned again"; done
# planner conversations (first rounds): the tools protocol sends more rounds per mission
eq "$(mock_conversations '')" "$total" "LLM conversations for $total missions"

# ---- the proxy agrees with the shards
eq "$(pq "SELECT string_agg(shard || ':' || up || ':' || (worker_pid IS NOT NULL), ',' ORDER BY shard) FROM mana_ai_proxy.status")" \
   "p0:true:true,p1:true:true" "proxy status"
for n in 0 1; do
    eq "$(pq "SELECT worker_pid || '/' || database || '/' || tick_interval FROM mana_ai_proxy.status WHERE shard = 'p$n'")" \
       "$(sq $n "SELECT worker_pid || '/' || database || '/' || tick_interval FROM mana_ai.status")" "proxy status of p$n"
done
m="WHERE name = 'mana_ai_plans_written_back_total'"
eq "$(pq "SELECT value FROM mana_ai_proxy.metrics $m")" "$total" "summed plans_written_back"
eq "$(pq "SELECT value FROM mana_ai_proxy.metrics WHERE name = 'mana_ai_proxy_shards_up'")" 2 "shards up"
prom=$(pq "SELECT mana_ai_proxy.metrics_prometheus()")
for n in 0 1; do
    eq "$(grep -E "^mana_ai_plans_written_back_total\{shard=\"p$n\"\} " <<<"$prom" | awk '{print $2}')" \
       "$(sq $n "SELECT value FROM mana_ai.metrics $m")" "prometheus plans_written_back of p$n"
    grep -qE "^mana_ai_tick_duration_seconds_bucket\{shard=\"p$n\",le=" <<<"$prom" || fail "prometheus: no shard label on p$n's histogram"
done
eq "$(grep -c '^# TYPE mana_ai_plans_written_back_total counter$' <<<"$prom")" 1 "prometheus: one TYPE line per family"
grep -q '^mana_ai_proxy_shard_up{shard="p1"} 1$' <<<"$prom" || fail "prometheus: shard_up"
for n in 0 1; do
    last=$(sq $n "SELECT max(id) FROM mana_ai.tick_runs WHERE finished_at IS NOT NULL")
    eq "$(pq "SELECT md5(string_agg(id || status || coalesce(plans_written_back, -1), ',' ORDER BY id))
                FROM mana_ai_proxy.tick_runs(100000) WHERE shard = 'p$n' AND id <= $last")" \
       "$(sq $n "SELECT md5(string_agg(id || status || coalesce(plans_written_back, -1), ',' ORDER BY id))
                FROM mana_ai.tick_runs WHERE id <= $last")" "proxy tick_runs of p$n"
done
for u in $(tr ',' '\n' <<<"${users[0]}" | sed -n '2p;9p'; tr ',' '\n' <<<"${users[1]}" | sed -n '3p;7p'); do
    n=$(pq "SELECT mana_ai_proxy.partition_of('$u')")
    eq "$(pq "SELECT md5(row(title, state, cadence, next_run_at, agent_id, iteration_count, last_iteration_status, last_iteration_at)::text) FROM mana_ai_proxy.mission('$u', 'm-$u-2')")" \
       "$(sq $n "SELECT md5(row(title, state, cadence, next_run_at, agent_id, iteration_count, last_iteration_status, last_iteration_at)::text) FROM mana_ai.missions WHERE user_id = '$u' AND mission_id = 'm-$u-2'")" \
       "proxy mission($u) from p$n"
    # The run history: the tick's own writer (record_mission_runs) adds
    # this mission's 'ran' row, so the history is never empty here.
    sq $n "SELECT mana_ai.record_mission_runs(t.id, jsonb_build_array(jsonb_build_object(
               'user_id', s.user_id, 'mission_id', s.record_id, 'agent_id', 'legacy:ai-default',
               'slot', '2026-01-01T08:00:00.000Z', 'decision', 'ran', 'iteration_id', s.actor ->> 'iterationId')))
             FROM sync_changes s, (SELECT min(id) AS id FROM mana_ai.tick_runs WHERE plans_written_back > 0) t
            WHERE s.client_id = 'mana-ai-runner' AND s.record_id = 'm-$u-2'" >/dev/null
    runs="md5(string_agg(tick_id || '/' || decision || '/' || coalesce(iteration_id, '') || '/' || ts, ',' ORDER BY ts, tick_id))"
    eq "$(pq "SELECT $runs FROM mana_ai_proxy.mission_runs('$u', 'm-$u-2')")" \
       "$(sq $n "SELECT $runs FROM mana_ai.mission_runs WHERE user_id = '$u' AND mission_id = 'm-$u-2'")" \
       "proxy mission_runs($u) from p$n"
    [ "$(pq "SELECT count(*) FROM mana_ai_proxy.mission_runs('$u', 'm-$u-2') WHERE decision = 'ran'")" -ge 1 ] \
        || fail "proxy mission_runs($u): no 'ran' row"
done
ticks=$(pq "SELECT string_agg(shard || ':' || up || ':' || (result IS NOT NULL), ',' ORDER BY shard) FROM mana_ai_proxy.tick_all()")
eq "$ticks" "p0:true:true,p1:true:true" "tick_all"
for n in 0 1; do
    [ "$(sq $n "SELECT count(*) >= 1 FROM mana_ai.tick_runs WHERE source = 'sql'")" = t ] || fail "tick_all left no sql tick on p$n"
done
echo "round 1: $total missions planned once each; the proxy agrees"

# ---- move a user while the old shard's tick holds one of their missions
snap="SELECT md5(string_agg(k || '=' || r || '@' || t, ',' ORDER BY k)) FROM (
        SELECT 'm:' || mission_id AS k, record::text AS r, last_applied_at::text AS t FROM mana_ai.mission_snapshots
         WHERE user_id = '$mover' AND mission_id NOT LIKE '%-slow'
        UNION ALL SELECT 'a:' || agent_id, record::text, last_applied_at::text FROM mana_ai.agent_snapshots WHERE user_id = '$mover'
        UNION ALL SELECT 't:' || kind || ':' || record_id, '', '' FROM mana_ai.snapshot_tombstones WHERE user_id = '$mover') x"
before=$(sq 0 "$snap")
sq 0 "SELECT mana_ai.record_mission_runs(0, jsonb_build_array(jsonb_build_object(
          'user_id', '$mover', 'mission_id', 'm-$mover-1', 'agent_id', 'ag-mover', 'decision', 'ran',
          'iteration_id', 'before-the-move')))" >/dev/null
runs_before=$(sq 0 "SELECT count(*) FROM mana_ai.mission_runs WHERE user_id = '$mover'")
eq "$(sq 0 "SELECT count(*) FROM mana_ai.mission_snapshots WHERE user_id = '$mover'")" 2 "mover's snapshots on p0"
slow="m-$mover-slow"
PGPORT=${ports[0]} q mana_sync -v u="$mover" -v m="$slow" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', :'m', :'u', 'insert',
        jsonb_build_object('title', 'Langsam', 'objective', 'Ziel langsam [mock:latency:4000]', 'inputs', '[]'::jsonb,
                           'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb, 'state', 'active',
                           'agentId', 'ag-mover', 'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb),
        'web');
SQL
deadline=$((SECONDS + 30))
until [ -n "$(mock_calls "Ziel langsam")" ]; do
    [ $SECONDS -lt $deadline ] || fail "p0 never called the LLM for $slow"
    sleep 0.1
done
t0=$SECONDS
pq "CALL mana_ai_proxy.move_user('$mover', 1)"
echo "move of $mover took $((SECONDS - t0)) s (it waited for p0's tick in its LLM call)"
[ $((SECONDS - t0)) -ge 1 ] || fail "the move did not wait for the tick that held $slow"
eq "$(pq "SELECT mana_ai_proxy.partition_of('$mover') || ':' || (SELECT count(*) FROM mana_ai_proxy.placement WHERE moving_to IS NOT NULL)")" \
   "1:0" "placement after the move"
eq "$(sq 0 "SELECT (SELECT count(*) FROM sync_changes WHERE user_id = '$mover')
                 + (SELECT count(*) FROM mana_ai.mission_snapshots WHERE user_id = '$mover')
                 + (SELECT count(*) FROM mana_ai.agent_snapshots WHERE user_id = '$mover')")" 0 "the mover is still on p0"
# the slot p0 planned during the move was copied, not planned again
eq "$(sq 1 "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$slow'")" 1 \
    "$slow's write-back on p1"
eq "$(sq 1 "SELECT iteration_count || ':' || due FROM mana_ai.missions WHERE user_id = '$mover' AND mission_id = '$slow'")" \
   "1:false" "$slow on p1"
# everything else of the mover is what p0 had
eq "$(sq 1 "$snap")" "$before" "the mover's snapshots, agent and tombstone on p1 against p0's"
# the new shard's worker plans the mover's new work, once
PGPORT=${ports[1]} q mana_sync -v u="$mover" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-' || :'u' || '-after', :'u', 'insert',
        jsonb_build_object('title', 'Danach', 'objective', 'Ziel danach', 'inputs', '[]'::jsonb,
                           'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb, 'state', 'active',
                           'agentId', 'ag-mover', 'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb),
        'web');
SQL
until_shard 1 30 "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-$mover-after'" 1 \
    || fail "p1 did not plan the mover's new mission"
wait_ticks() {   # N SHARD: N more finished worker ticks on that shard
    local t
    t=$(sq "$2" "SELECT clock_timestamp()")
    until_shard "$2" 30 "SELECT count(*) >= $1 FROM mana_ai.tick_runs WHERE source = 'worker' AND started_at > '$t' AND finished_at IS NOT NULL" t \
        || fail "p$2 stopped ticking"
}
wait_ticks 3 1
eq "$(sq 1 "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND user_id = '$mover'")" 4 \
    "the mover's write-backs on p1 (2 copied from round 1, $slow, and the new one)"
eq "$(sq 1 "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND user_id = '$mover' GROUP BY record_id ORDER BY 1 DESC LIMIT 1")" 1 \
    "a mission of the mover planned twice"
eq "$(mock_conversations "Ziel langsam")" 1 "LLM conversations for $slow across the move"
eq "$(pq "SELECT iteration_count FROM mana_ai_proxy.mission('$mover', '$slow')")" 1 "proxy routes the mover to p1"
eq "$(pq "SELECT count(*) FROM mana_ai_proxy.mission_runs('$mover', 'm-$mover-1') WHERE iteration_id = 'before-the-move'")" 1 \
    "the mover's run history came along"
[ "$(sq 1 "SELECT count(*) FROM mana_ai.mission_runs WHERE user_id = '$mover'")" -ge "$runs_before" ] \
    || fail "the mover's run history is shorter on p1"
echo "move: $mover planned exactly once across the move"

# ---- move_user runs no planted code and takes no planted schema (issue 19)
# A role that may create in public plants an exact-type ||(bigint, text)
# on both shards (0.1.0's digest, count(*) || ':' || ..., ran it as the
# superuser) and, on the target, a mana_ai_move schema of its own; the user
# to move has $$ in its id (0.1.0 put it inside a $$-quoted DO body).
for n in 0 1; do
    PGPORT=${ports[$n]} q mana_sync >/dev/null <<'SQL'
CREATE ROLE planter LOGIN;
GRANT CREATE ON SCHEMA public TO planter;
GRANT CREATE ON DATABASE mana_sync TO planter;
CREATE TABLE public.hijacked (who text, app text);
GRANT INSERT ON public.hijacked TO PUBLIC;
SET SESSION AUTHORIZATION planter;
CREATE FUNCTION public.hijack(bigint, text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.hijacked VALUES (current_user, current_setting('application_name'));
    RETURN $1::text OPERATOR(pg_catalog.||) $2;
END $f$;
CREATE OPERATOR public.|| (LEFTARG = bigint, RIGHTARG = text, FUNCTION = public.hijack);
SQL
done
evil='ev$$il'"'"'; DROP TABLE public.sync_changes; --'
home=$(PGPORT=$proxy_port q mana_proxy -v u="$evil" <<<"SELECT mana_ai_proxy.home_partition(:'u')")
other=$((1 - home))
PGPORT=${ports[$home]} q mana_sync -v u="$evil" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-evil', :'u', 'insert',
        jsonb_build_object('title', 'Evil', 'objective', 'x', 'inputs', '[]'::jsonb, 'cadence', '{"kind": "manual"}'::jsonb,
                           'state', 'paused', 'iterations', '[]'::jsonb), 'web');
SQL
PGPORT=${ports[$other]} q mana_sync -c "DROP SCHEMA IF EXISTS mana_ai_move CASCADE" \
    -c "SET SESSION AUTHORIZATION planter" -c "CREATE SCHEMA mana_ai_move" >/dev/null
out=$(PGPORT=$proxy_port psql -X -qAt -v ON_ERROR_STOP=1 -d mana_proxy -v u="$evil" -v p="$other" \
      <<<"CALL mana_ai_proxy.move_user(:'u', :'p')" 2>&1) && fail "move_user used a mana_ai_move schema a non-superuser owns"
grep -q 'schema mana_ai_move on this shard belongs to a role that is not a superuser' <<<"$out" || fail "move_user: unexpected refusal: $out"
echo "ok - move_user refuses a mana_ai_move schema a non-superuser created"
PGPORT=${ports[$other]} q mana_sync -c "DROP SCHEMA mana_ai_move CASCADE" >/dev/null
PGPORT=$proxy_port q mana_proxy -v u="$evil" -v p="$other" <<<"CALL mana_ai_proxy.move_user(:'u', :'p')" >/dev/null \
    || fail "move_user of a user id with \$\$ failed"
eq "$(PGPORT=$proxy_port q mana_proxy -v u="$evil" <<<"SELECT mana_ai_proxy.partition_of(:'u')")" "$other" "placement of the \$\$ user"
eq "$(PGPORT=${ports[$other]} q mana_sync -v u="$evil" <<<"SELECT count(*) FROM sync_changes WHERE user_id = :'u'")" 1 "the \$\$ user's row on the target"
eq "$(PGPORT=${ports[$home]} q mana_sync -v u="$evil" <<<"SELECT count(*) FROM sync_changes WHERE user_id = :'u'")" 0 "the \$\$ user's row on the source"
for n in 0 1; do
    eq "$(sq $n "SELECT count(*) FROM public.hijacked WHERE app = 'mana_ai_proxy.move_user'")" 0 "planted ||(bigint, text) ran in move_user on p$n"
    eq "$(sq $n "SELECT to_regclass('public.sync_changes') IS NOT NULL")" t "sync_changes on p$n"
    PGPORT=${ports[$n]} q mana_sync -c "DROP OPERATOR public.|| (bigint, text)" -c "DROP FUNCTION public.hijack(bigint, text)" >/dev/null
done
echo "ok - move_user of a user id with \$\$ and a quote: moved, and the planted ||(bigint, text) never ran"
PGPORT=${ports[$other]} q mana_sync -v u="$evil" >/dev/null <<'SQL'
DELETE FROM sync_changes WHERE user_id = :'u';
DELETE FROM mana_ai.mission_snapshots WHERE user_id = :'u';
SQL

# ---- one shard down: reported down, the other keeps planning
stop_shard 1
eq "$(pq "SELECT string_agg(shard || ':' || up, ',' ORDER BY shard) FROM mana_ai_proxy.status")" "p0:true,p1:false" "status with p1 down"
[ -n "$(pq "SELECT error FROM mana_ai_proxy.status WHERE shard = 'p1'")" ] || fail "no error reported for p1"
eq "$(pq "SELECT value FROM mana_ai_proxy.metrics WHERE name = 'mana_ai_proxy_shards_up'")" 1 "shards up with p1 down"
pq "SELECT mana_ai_proxy.metrics_prometheus()" | grep -q '^mana_ai_proxy_shard_up{shard="p1"} 0$' || fail "prometheus: p1 not down"
eq "$(pq "SELECT string_agg(shard || ':' || up, ',' ORDER BY shard) FROM mana_ai_proxy.tick_all()")" "p0:true,p1:false" "tick_all with p1 down"
pq "SELECT count(*) FROM mana_ai_proxy.due_missions" >/dev/null || fail "due_missions failed with p1 down"
u0=$(cut -d, -f5 <<<"${users[0]}")
PGPORT=${ports[0]} q mana_sync -v u="$u0" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-' || :'u' || '-outage', :'u', 'insert',
        jsonb_build_object('title', 'Ausfall', 'objective', 'Ziel Ausfall', 'inputs', '[]'::jsonb,
                           'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb, 'state', 'active',
                           'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb), 'web');
SQL
until_shard 0 30 "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-$u0-outage'" 1 \
    || fail "p0 stopped planning while p1 was down"
start_shard 1
PGPORT=${ports[1]} poll_until 30 mana_sync "SELECT worker_pid IS NOT NULL FROM mana_ai.status" t || fail "p1's worker did not come back"
poll_until 30 mana_proxy "SELECT string_agg(shard || ':' || up, ',' ORDER BY shard) FROM mana_ai_proxy.status" "p0:true,p1:true" \
    || fail "the proxy does not see p1 again"
u1=$(cut -d, -f5 <<<"${users[1]}")
PGPORT=${ports[1]} q mana_sync -v u="$u1" <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-' || :'u' || '-back', :'u', 'insert',
        jsonb_build_object('title', 'Zurück', 'objective', 'Ziel zurück', 'inputs', '[]'::jsonb,
                           'cadence', '{"kind": "interval", "everyMinutes": 60}'::jsonb, 'state', 'active',
                           'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb), 'web');
SQL
until_shard 1 30 "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-$u1-back'" 1 \
    || fail "p1 did not plan after its restart"

# ---- in the end: every mission on its shard, planned exactly once
wait_ticks 2 0; wait_ticks 2 1
for n in 0 1; do eq "$(sq $n "$once")" 0 "p$n at the end: missions not planned exactly once"; done
eq "$(( $(sq 0 "$written") + $(sq 1 "$written") ))" "$((total + 4))" "write-backs in all"
eq "$(mock_conversations '')" "$((total + 4))" "LLM conversations in all"
eq "$(pq "SELECT value FROM mana_ai_proxy.metrics WHERE name = 'mana_ai_proxy_shards_up'")" 2 "shards up at the end"
echo "sharded ok"
