#!/usr/bin/env bash
# late_commit.sh: a transaction that started before a refresh commits a
# row after that refresh moved on; the row's created_at (its transaction
# start) is older than rows the refresh already applied.  The next
# refresh must still fold it in (SPEC 3, "no lost rows").
# Two sessions: session A is a psql kept open on a FIFO; session B is
# ordinary one-shot psql calls.  Run inside tests/lib/with_cluster.sh.
set -euo pipefail
source tests/lib/common.sh   # FORMAT and STAMPS (the format under test)
db=mana_late_$$
work=$(mktemp -d)
apid=
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$apid" ] && kill "$apid" 2>/dev/null || true
    [ -n "$apid" ] && wait "$apid" 2>/dev/null || true
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# poll a query until it prints the wanted value (10 s deadline)
wait_for() {
    local sql=$1 want=$2 deadline=$((SECONDS + 10))
    until [ "$(q -c "$sql")" = "$want" ]; do
        [ $SECONDS -lt $deadline ] || fail "timed out waiting for: $sql = $want"
        sleep 0.05
    done
}

createdb "$db"
q >/dev/null <<'SQL'
CREATE EXTENSION mana_ai;
\i tests/fixtures/sync_changes.sql
BEGIN;
SELECT set_config('app.current_user_id', 'alice', true);
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm1', 'alice', 'insert', '{"title": "start", "state": "active"}', 'web');
COMMIT;
SQL
q -c "SELECT * FROM mana_ai.refresh_snapshots()" >/dev/null

# Session A: open a transaction (created_at is fixed now), write, do not commit.
mkfifo "$work/a.in"
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <"$work/a.in" >"$work/a.out" 2>&1 &
apid=$!
exec 3>"$work/a.in"
cat >&3 <<'SQL'
SET application_name = 'late_commit_a';
BEGIN;
SELECT set_config('app.current_user_id', 'alice', true);
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm1', 'alice', 'update', '{"objective": "from the late transaction"}', 'web');
SQL
wait_for "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'late_commit_a' AND state = 'idle in transaction' AND backend_xid IS NOT NULL" 1

# Session B: a later row, committed, and refreshes that move past A's start.
q >/dev/null <<'SQL'
BEGIN;
SELECT set_config('app.current_user_id', 'alice', true);
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm1', 'alice', 'update', '{"title": "from B"}', 'web');
COMMIT;
SQL
out=$(q -c "SELECT rows_applied FROM mana_ai.refresh_snapshots() WHERE kind = 'missions'")
[ "$out" = 1 ] || fail "refresh while A is open applied $out rows, want 1 (B's)"
q -c "SELECT * FROM mana_ai.refresh_snapshots()" >/dev/null
[ "$(q -c "SELECT record->>'title' || '|' || coalesce(record->>'objective', '-') FROM mana_ai.mission_snapshots WHERE mission_id = 'm1'")" = "from B|-" ] \
    || fail "snapshot before A commits is wrong"

# A commits: its row is older than B's, which the refresh already applied.
echo "COMMIT;" >&3
wait_for "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'late_commit_a' AND state = 'idle'" 1
older=$(q -c "SELECT bool_and(a.created_at < b.created_at) FROM public.sync_changes a, public.sync_changes b WHERE a.data ? 'objective' AND b.data->>'title' = 'from B'")
[ "$older" = t ] || fail "the late row is not older than the applied one (test setup)"

out=$(q -c "SELECT rows_applied FROM mana_ai.refresh_snapshots() WHERE kind = 'missions'")
[ "$out" = 1 ] || fail "refresh after the late commit applied $out rows, want 1"
got=$(q -c "SELECT record->>'title' || '|' || (record->>'objective') FROM mana_ai.mission_snapshots WHERE mission_id = 'm1'")
[ "$got" = "from B|from the late transaction" ] || fail "late row not folded in: $got"
mism=$(q -c "SELECT count(*) FROM mana_ai.mission_snapshots s WHERE s.record IS DISTINCT FROM
  (SELECT mana_ai.lww_merge(record_id, op, data, $STAMPS, created_at ORDER BY created_at, id)
     FROM public.sync_changes c WHERE c.user_id = s.user_id AND c.record_id = s.mission_id AND c.table_name = 'aiMissions')")
[ "$mism" = 0 ] || fail "snapshot differs from a full replay"
out=$(q -c "SELECT sum(rows_applied) FROM mana_ai.refresh_snapshots()")
[ "$out" = 0 ] || fail "a refresh after that applied $out rows, want 0"
echo "ok - a row committed after the refresh passed its created_at is folded in by the next refresh"
