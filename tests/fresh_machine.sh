#!/usr/bin/env bash
# fresh_machine.sh: the README's commands, verbatim, on a Debian 12 that
# has never seen the project: a new debootstrap bookworm (minbase: no make,
# no compiler, no PostgreSQL), a git clone of this checkout's HEAD under
# /root/mana_ai (a directory the postgres user cannot read), then each
# line of the README's first ```sh block in turn, as root.
#
#   bash tests/fresh_machine.sh            as root; minutes, mostly make test
#   FRESH_MATRIX=0 bash tests/fresh_machine.sh
#                                          make test without its 17/18 matrix
#                                          (MANA_MATRIX=0 in the environment)
#   FRESH_KEEP=1                           keep the chroot afterwards
#
# Prints each command and its last lines, then "fresh machine: all N
# commands passed" or the first that failed.  Not part of make test (it
# builds a new Debian each time); rerun it before a release.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "fresh_machine.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "fresh_machine.sh: apt-get install debootstrap" >&2; exit 1; }
mirror=${MANA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/mana_ai-fresh.XXXXXX)
chmod 755 "$root"       # the chroot's /, which every user must traverse
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
    done
    [ "${FRESH_KEEP:-0}" = 1 ] || rm -rf --one-file-system "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The README's commands: the first ```sh block, comments stripped.
mapfile -t cmds < <(awk '/^```sh$/ && !done {on=1; next} on && /^```$/ {done=1; on=0} on' "$top/README.md" |
                    sed -E 's/[[:space:]]+#.*$//; /^[[:space:]]*$/d')
[ ${#cmds[@]} -gt 0 ] || { echo "fresh_machine.sh: no commands in the README's first sh block" >&2; exit 1; }

echo "== debootstrap bookworm into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.debootstrap.log" 2>&1 \
    || { tail -20 "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99mana-ai-fresh"
for tool in make gcc pg_config psql; do
    chroot "$root" /bin/sh -c "command -v $tool" >/dev/null && { echo "fresh_machine.sh: $tool is already in the new chroot" >&2; exit 1; }
done
echo "== git clone (HEAD of $top) into /root/mana_ai"
git clone -q --no-hardlinks "$top" "$root/root/mana_ai"
chmod 0700 "$root/root"
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
mount --bind /dev "$root/dev"; mounted+=("$root/dev")
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"; mounted+=("$root/dev/shm")

n=0
for cmd in "${cmds[@]}"; do
    n=$((n + 1))
    echo "== [$n/${#cmds[@]}] $cmd"
    log=$root/root/fresh-$n.log
    start=$SECONDS
    if chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 TERM=dumb ${FRESH_MATRIX:+MANA_MATRIX=$FRESH_MATRIX} \
            /bin/sh -c "cd /root/mana_ai && $cmd" > "$log" 2>&1; then
        tail -n 4 "$log" | sed 's/^/   | /'
        echo "   ok ($((SECONDS - start)) s)"
    else
        tail -n 40 "$log" | sed 's/^/   | /'
        echo "fresh machine: '$cmd' failed after $((SECONDS - start)) s"
        exit 1
    fi
done
echo "fresh machine: all ${#cmds[@]} commands passed (Debian $(cat "$root/etc/debian_version"), checkout under /root)"
