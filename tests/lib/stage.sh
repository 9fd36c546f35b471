#!/usr/bin/env bash
# stage.sh: build mana_ai with warnings as errors and install it into a
# staged root (a DESTDIR), which with_cluster.sh's servers load from.
#
# The stage is tests/.out/root when the server's user (postgres) can read
# it; a checkout it cannot read (under /root, a 0700 home) stages to
# /var/tmp/mana_ai-stage-<hash of the checkout path> instead.  Either way
# tests/.out/stage names the directory used.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top"
make -s -j2 WERROR=-Werror >/dev/null
mkdir -p tests/.out
stage=$top/tests/.out/root
can_read() {  # can the server's user read (and traverse to) $1?
    [ "$(id -u)" != 0 ] && return 0      # the servers run as this user
    id postgres >/dev/null 2>&1 || return 0
    runuser -u postgres -- test -r "$1" -a -x "$1"
}
if ! can_read "$top/tests/.out"; then
    stage=/var/tmp/mana_ai-stage-$(printf '%s' "$top" | sha256sum | cut -c1-12)/root
    echo "stage: the postgres user cannot read $top; staging in $stage" >&2
fi
rm -rf "$stage"
mkdir -p "$stage"
make -s install DESTDIR="$stage" >/dev/null
chmod -R a+rX "$(dirname "$stage")"
can_read "$stage" || { echo "stage: the postgres user cannot read $stage either" >&2; exit 1; }
echo "$stage" > tests/.out/stage
