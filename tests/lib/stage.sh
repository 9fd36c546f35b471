#!/usr/bin/env bash
# stage.sh: build mana_ai with warnings as errors and install it into
# tests/.out/root (a DESTDIR), which with_cluster.sh's servers load from.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top"
make -s -j2 WERROR=-Werror >/dev/null
rm -rf tests/.out/root
make -s install DESTDIR="$top/tests/.out/root" >/dev/null
