#!/usr/bin/env bash
# with_cluster.sh [--preload] [-o name=value]... -- command [args]
#
# Runs command inside a throwaway PostgreSQL cluster of the major that
# pg_config names (15, 17 or 18; pg_virtualenv -t, loopback only, on a
# free port) that loads mana_ai from this checkout's staged install (the
# directory in tests/.out/stage, made by tests/lib/stage.sh), so several
# checkouts and test runs never share a server or an installed library.
# Before command runs, tests/lib/check_build.sh proves that the server
# loads the staged library, not one installed earlier.
# Inside, PGHOST/PGPORT/PGUSER/PGPASSWORD are set, and
#   MANA_PG_LOG    the server log file
#   MANA_STAGE     the staged install root
#   MANA_PG_MAJOR  the server's major version
#   MANA_EXT_CONF  postgresql.conf lines that load mana_ai from MANA_STAGE
#                  (for the further clusters a test starts itself)
# The cluster is stopped and removed when command exits (pg_virtualenv's
# own trap), whatever happens.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/pg_env.sh"
if [ -z "${MANA_STAGE:-}" ]; then
    [ -s "$top/tests/.out/stage" ] || { echo "with_cluster: nothing staged; run tests/lib/stage.sh" >&2; exit 1; }
    MANA_STAGE=$(cat "$top/tests/.out/stage")
fi
stage=$MANA_STAGE

opts=(-o "listen_addresses=localhost"
      -o "log_line_prefix=%m [%p] %q%u@%d "
      -o "max_worker_processes=16")
while read -r setting; do opts+=(-o "$setting"); done < <(mana_ext_settings "$stage")
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
export MANA_EXT_CONF
MANA_EXT_CONF=$(mana_ext_conf "$stage")
export PGPORT=$port
cd /
exec pg_virtualenv -t "${opts[@]}" bash -c '
    export MANA_PG_LOG="${PG_CLUSTER_CONF_ROOT%/postgresql}/log/postgresql-$MANA_PG_MAJOR-regress.log"
    cd "$0" && bash tests/lib/check_build.sh && exec "$@"' "$top" "$@"
