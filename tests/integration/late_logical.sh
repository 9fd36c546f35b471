#!/usr/bin/env bash
# late_logical.sh: rows that logical replication applies into sync_changes
# are folded in even when their transaction spans a refresh (SPEC 3, "no
# lost rows").  with_cluster.sh's cluster is the subscriber; this script
# starts a publisher cluster on loopback (wal_level = logical) and stops
# it on exit.
#  A. created_at stamped here (the publication leaves the column out, so
#     the apply worker's DEFAULT now() gives its own transaction start):
#     the apply worker inserts a row, then waits mid-transaction (an
#     ALWAYS trigger on a later row takes an advisory lock that an idle
#     session holds); refreshes run meanwhile; once it commits, the next
#     refresh must fold the row in.  The apply worker's backend_type is
#     "logical replication worker": the horizon must count it.  Run with
#     mana_ai.late_row_window = 0, so only that can save the row.
#  B. created_at from the publisher (every column published): a publisher
#     transaction holds its insert open across refreshes here; its row
#     arrives stamped with the publisher's transaction start, older than
#     anything open here.  With the default mana_ai.late_row_window the
#     next refresh after it arrives must fold it in.
set -euo pipefail
source tests/lib/common.sh

db=mana_late_logical
bindir=$(pg_config --bindir)
work=$(mktemp -d /tmp/mana_late_logical.XXXXXX)
chmod 0755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
ppid_lock= ppid_pub=
cleanup() {
    local rc=$?
    exec 3>&- 4>&- 2>/dev/null || true
    for p in $ppid_lock $ppid_pub; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    # The subscriptions go with the throwaway subscriber; the publisher first.
    [ -f "$work/pub/data/postmaster.pid" ] &&
        as_pg "$bindir/pg_ctl" -D "$work/pub/data" stop -m immediate -w -t 20 >/dev/null 2>&1 || true
    [ "$rc" != 0 ] && { echo "----- publisher log (tail)"; tail -n 30 "$work/pub/log" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

sub() { q "$db" "$@"; }
pub() { PGHOST=127.0.0.1 PGPORT=$pport q mana_pub "$@"; }
# until_sub SQL WANT: poll the subscriber (20 s).
until_sub() { poll_until 20 "$db" "$1" "$2"; }
applied() { sub -c "SELECT rows_applied FROM mana_ai.refresh_snapshots() WHERE kind = 'missions'"; }
snapshot_m1() { sub -c "SELECT record ->> 'title' || '|' || coalesce(record ->> 'objective', '-') FROM mana_ai.mission_snapshots WHERE mission_id = 'm1'"; }

# --- the publisher ---------------------------------------------------------
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg mkdir -p "$work/pub"
printf '%s\n' "$PGPASSWORD" | as_pg tee "$work/pub/pw" >/dev/null
as_pg "$bindir/initdb" -D "$work/pub/data" -U "$PGUSER" --auth=scram-sha-256 --pwfile="$work/pub/pw" \
    -E UTF8 --no-sync >/dev/null
as_pg tee -a "$work/pub/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = 'localhost'
port = $pport
unix_socket_directories = '$work/pub'
wal_level = logical
fsync = off
EOF
as_pg "$bindir/pg_ctl" -D "$work/pub/data" -l "$work/pub/log" -w -t 60 start >/dev/null
PGHOST=127.0.0.1 PGPORT=$pport q postgres -c "CREATE DATABASE mana_pub" >/dev/null
PGHOST=127.0.0.1 PGPORT=$pport psql -X -q -v ON_ERROR_STOP=1 -d mana_pub -f tests/fixtures/sync_changes.sql >/dev/null 2>&1
pubcols="id, app_id, table_name, record_id, user_id, op, data, $STAMPS, client_id, schema_version, actor"
[ "$FORMAT" = seed ] || pubcols="$pubcols, origin, space_id"
pub >/dev/null <<SQL
CREATE PUBLICATION pub_local FOR TABLE public.sync_changes ($pubcols);
CREATE PUBLICATION pub_all FOR TABLE public.sync_changes;
SQL
conninfo="host=127.0.0.1 port=$pport dbname=mana_pub user=$PGUSER password=$PGPASSWORD"

# --- the subscriber --------------------------------------------------------
q postgres -c "CREATE DATABASE $db" >/dev/null
sub >/dev/null 2>&1 <<'SQL'
CREATE EXTENSION mana_ai;
\i tests/fixtures/sync_changes.sql
SQL
sub >/dev/null <<'SQL'
BEGIN;
SELECT set_config('app.current_user_id', 'alice', true);
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm1', 'alice', 'insert', '{"title": "start", "state": "active"}', 'web');
COMMIT;
-- Stands in for any slow step of an apply: a row for record "hold" waits
-- for advisory lock 4242 inside the apply worker's transaction.
CREATE FUNCTION public.hold_apply() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_catalog.pg_advisory_xact_lock(4242); RETURN NULL; END $$;
CREATE TRIGGER hold_apply AFTER INSERT ON public.sync_changes
    FOR EACH ROW WHEN (NEW.record_id = 'hold') EXECUTE FUNCTION public.hold_apply();
ALTER TABLE public.sync_changes ENABLE ALWAYS TRIGGER hold_apply;
SQL
[ "$(applied)" = 1 ] || fail "the first refresh did not apply the first row"

# === A. the apply worker held mid-transaction ==============================
q postgres -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.late_row_window = 0" -c "SELECT pg_reload_conf()" >/dev/null
poll_until 10 "$db" "SELECT current_setting('mana_ai.late_row_window', true)" 0 || fail "late_row_window = 0 did not take"
# An idle session (no transaction open) holds the lock the trigger waits for.
mkfifo "$work/lock.in"
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <"$work/lock.in" >"$work/lock.out" 2>&1 &
ppid_lock=$!
exec 3>"$work/lock.in"
echo "SET application_name = 'late_logical_lock'; SELECT pg_advisory_lock(4242);" >&3
until_sub "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'late_logical_lock' AND l.locktype = 'advisory' AND l.objid = 4242 AND l.granted" 1 \
    || fail "the lock session did not take its lock"

sub -c "CREATE SUBSCRIPTION sub_local CONNECTION '$conninfo' PUBLICATION pub_local WITH (copy_data = false)" >/dev/null
until_sub "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'sub_local' AND pid IS NOT NULL" 1 \
    || fail "the apply worker for sub_local did not start"

pub >/dev/null <<'SQL'
BEGIN;
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm1', 'alice', 'update', '{"objective": "applied while held"}', 'web'),
       ('todo', 'tasks', 'hold', 'alice', 'insert', '{"title": "hold"}', 'web');
COMMIT;
SQL
# The apply worker has inserted the first row and waits on the second.
until_sub "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('logical replication worker', 'logical replication apply worker') AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND backend_xid IS NOT NULL" 1 \
    || fail "the apply worker never waited mid-transaction"
held_at=$(sub -c "SELECT clock_timestamp()")
[ "$(applied)" = 0 ] || fail "a refresh applied a row of an open transaction"
[ "$(applied)" = 0 ] || fail "a second refresh applied a row of an open transaction"

echo "SELECT pg_advisory_unlock(4242);" >&3
until_sub "SELECT count(*) FROM public.sync_changes WHERE record_id = 'hold'" 1 || fail "the apply never committed"
older=$(sub -c "SELECT created_at < '$held_at' FROM public.sync_changes WHERE data ->> 'objective' = 'applied while held'")
[ "$older" = t ] || fail "the applied row is not older than the refreshes that ran while it was held (test setup)"
out=$(applied)
[ "$out" = 1 ] || fail "after the held apply committed the refresh applied $out rows, want 1"
[ "$(snapshot_m1)" = "start|applied while held" ] || fail "the applied row is not in the snapshot: $(snapshot_m1)"
sub -c "DROP SUBSCRIPTION sub_local" >/dev/null
echo "ok - A: a row of an apply worker held across refreshes is folded in"

# === B. a publisher transaction open across refreshes, created_at from there
sub -c "ALTER TABLE public.sync_changes DISABLE TRIGGER hold_apply" >/dev/null
q postgres -c "LOAD 'mana_ai'" -c "ALTER SYSTEM RESET mana_ai.late_row_window" -c "SELECT pg_reload_conf()" >/dev/null
poll_until 10 "$db" "SELECT current_setting('mana_ai.late_row_window', true) IS DISTINCT FROM '0'" t || fail "late_row_window did not return to its default"
sub -c "CREATE SUBSCRIPTION sub_all CONNECTION '$conninfo' PUBLICATION pub_all WITH (copy_data = false)" >/dev/null
until_sub "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'sub_all' AND pid IS NOT NULL" 1 \
    || fail "the apply worker for sub_all did not start"

mkfifo "$work/pub.in"
PGHOST=127.0.0.1 PGPORT=$pport psql -X -q -At -v ON_ERROR_STOP=1 -d mana_pub <"$work/pub.in" >"$work/pub.out" 2>&1 &
ppid_pub=$!
exec 4>"$work/pub.in"
cat >&4 <<'SQL'
SET application_name = 'late_logical_pub';
BEGIN;
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm1', 'alice', 'update', '{"title": "from a long publisher transaction"}', 'web');
SQL
PGHOST=127.0.0.1 PGPORT=$pport poll_until 20 mana_pub \
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'late_logical_pub' AND state = 'idle in transaction' AND backend_xid IS NOT NULL" 1 \
    || fail "the publisher transaction did not start"
held_at=$(sub -c "SELECT clock_timestamp()")
[ "$(applied)" = 0 ] || fail "a refresh applied a row the publisher has not committed"
[ "$(applied)" = 0 ] || fail "a second refresh applied a row the publisher has not committed"

echo "COMMIT;" >&4
until_sub "SELECT count(*) FROM public.sync_changes WHERE data ->> 'title' = 'from a long publisher transaction'" 1 \
    || fail "the publisher's row never arrived"
older=$(sub -c "SELECT created_at < '$held_at' FROM public.sync_changes WHERE data ->> 'title' = 'from a long publisher transaction'")
[ "$older" = t ] || fail "the replicated row is not older than the refreshes that ran before it arrived (test setup)"
out=$(applied)
[ "$out" = 1 ] || fail "after the publisher committed the refresh applied $out rows, want 1"
[ "$(snapshot_m1)" = "from a long publisher transaction|applied while held" ] || fail "the replicated row is not in the snapshot: $(snapshot_m1)"
[ "$(applied)" = 0 ] || fail "a refresh after that applied a row again"
[ "$(sub -c "SELECT mana_ai.refresh_horizon() <= now() - interval '1 min'")" = t ] \
    || fail "with a subscription the horizon does not trail now() by late_row_window"

mism=$(sub -c "SELECT count(*) FROM mana_ai.mission_snapshots s WHERE s.record IS DISTINCT FROM
  (SELECT mana_ai.lww_merge(record_id, op, data, $STAMPS, created_at ORDER BY created_at, id)
     FROM public.sync_changes c WHERE c.user_id = s.user_id AND c.record_id = s.mission_id AND c.table_name = 'aiMissions')")
[ "$mism" = 0 ] || fail "a snapshot differs from a full replay"
sub -c "DROP SUBSCRIPTION sub_all" >/dev/null
echo "ok - B: a replicated row stamped by a publisher transaction open across refreshes is folded in"
