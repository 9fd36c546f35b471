#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1
# No ticks on a standby (SPEC 9a): a streaming replica of a primary whose
# worker ticks runs neither the launcher nor the tick worker while it
# replays the primary's ticks, and starts both once it is promoted.
set -euo pipefail
source tests/lib/common.sh

bindir=$(pg_config --bindir)
sbdir=$(mktemp -d)
chown postgres "$sbdir"
chmod 0700 "$sbdir"
sbport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- env PGPASSWORD="$PGPASSWORD" "$@"; }
cleanup() {
    as_pg "$bindir/pg_ctl" -D "$sbdir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    rm -rf "$sbdir"
}
trap cleanup EXIT
# sq SQL: one value from the standby's mana_sync
sq() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$sbport" -d mana_sync -c "$1"; }
mana_backends="SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('mana_ai launcher', 'mana_ai worker')"

setup_mana_sync
poll_until 20 mana_sync "SELECT count(*) > 0 FROM mana_ai.tick_runs WHERE status = 'ok'" t \
    || fail "the primary's worker never ticked"

# A replica of this cluster, preloading mana_ai with the same settings.
as_pg "$bindir/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U "$PGUSER" -D "$sbdir/data" -R -X stream -c fast
cp "$(q postgres -c "SHOW hba_file")" "$sbdir/data/pg_hba.conf"
cat > "$sbdir/data/postgresql.conf" <<EOF
port = $sbport
listen_addresses = 'localhost'
unix_socket_directories = '$sbdir'
hot_standby = on
shared_preload_libraries = 'mana_ai'
$MANA_EXT_CONF
mana_ai.tick_interval = 1
max_worker_processes = 16
logging_collector = off
EOF
chown postgres "$sbdir/data/pg_hba.conf" "$sbdir/data/postgresql.conf"
as_pg "$bindir/pg_ctl" -D "$sbdir/data" -l "$sbdir/standby.log" -w -t 30 start >/dev/null \
    || { cat "$sbdir/standby.log" >&2; fail "standby did not start"; }
[ "$(sq "SELECT pg_is_in_recovery()")" = t ] || fail "the replica is not in recovery"
grep -q 'mana_ai' <(sq "SHOW shared_preload_libraries") || fail "the replica does not preload mana_ai"

# While the primary keeps ticking and the standby replays those ticks,
# the standby runs no mana_ai process.
mark=$(q mana_sync -c "SELECT max(id) FROM mana_ai.tick_runs")
poll_until 30 mana_sync "SELECT count(*) >= 3 FROM mana_ai.tick_runs WHERE id > $mark AND status = 'ok'" t \
    || fail "the primary stopped ticking"
last=$(q mana_sync -c "SELECT max(id) FROM mana_ai.tick_runs")
deadline=$((SECONDS + 30))
until [ "$(sq "SELECT count(*) >= 1 FROM mana_ai.tick_runs WHERE id >= $last" 2>/dev/null)" = t ]; do
    [ $SECONDS -lt $deadline ] || fail "the standby did not replay the primary's ticks"
    sleep 0.2
done
[ "$(sq "$mana_backends")" = 0 ] || fail "a mana_ai process runs on the standby"
[ "$(sq "SELECT worker_loaded AND worker_pid IS NULL FROM mana_ai.status")" = t ] \
    || fail "mana_ai.status on the standby should show the library loaded and no worker"
echo "ok - no launcher or worker on the standby while the primary ticks"

# Promoted, it ticks on its own.
as_pg "$bindir/pg_ctl" -D "$sbdir/data" -w -t 30 promote >/dev/null
deadline=$((SECONDS + 40))
until [ "$(sq "$mana_backends" 2>/dev/null)" = 2 ] \
      && [ "$(sq "SELECT count(*) > 0 FROM mana_ai.tick_runs WHERE id > $last AND source = 'worker' AND status = 'ok' AND started_at > pg_postmaster_start_time()" 2>/dev/null)" = t ]; do
    [ $SECONDS -lt $deadline ] || { tail -20 "$sbdir/standby.log" >&2; fail "the promoted standby did not start ticking"; }
    sleep 0.2
done
echo "ok - the promoted standby runs the launcher and the worker, and ticks"
echo "standby ok"
