#!/usr/bin/env bash
# with_cluster.sh [--preload] [-o name=value]... -- command [args]
#
# Runs command inside a throwaway PostgreSQL 15 cluster (pg_virtualenv -t,
# loopback only, on a free port) that loads mana_ai from this checkout's
# staged install (tests/.out/root, made by tests/lib/stage.sh), so several
# checkouts and test runs never share a server or an installed library.
# Inside, PGHOST/PGPORT/PGUSER/PGPASSWORD are set, and
#   MANA_PG_LOG   the server log file
#   MANA_STAGE    the staged install root
# The cluster is stopped and removed when command exits (pg_virtualenv's
# own trap), whatever happens.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
stage=${MANA_STAGE:-$top/tests/.out/root}
libdir=$(pg_config --pkglibdir)

opts=(-o "extension_destdir=$stage"
      -o "dynamic_library_path=$stage$libdir:\$libdir"
      -o "listen_addresses=localhost"
      -o "log_line_prefix=%m [%p] %q%u@%d "
      -o "max_worker_processes=16")
while [ $# -gt 0 ]; do
    case $1 in
        --preload) opts+=(-o "shared_preload_libraries=mana_ai"); shift ;;
        -o) opts+=(-o "$2"); shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: with_cluster.sh [--preload] [-o k=v]... -- command" >&2; exit 2; }

# A free loopback port: let the kernel pick one.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MANA_STAGE=$stage
export PGPORT=$port
cd /
exec pg_virtualenv -t "${opts[@]}" bash -c '
    export MANA_PG_LOG="${PG_CLUSTER_CONF_ROOT%/postgresql}/log/postgresql-15-regress.log"
    cd "$0" && exec "$@"' "$top" "$@"
