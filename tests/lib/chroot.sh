#!/usr/bin/env bash
# chroot.sh: the Debian chroots the matrix runs in (PostgreSQL 17 on
# trixie, 18 on sid), made by debootstrap and cached.
#
#   chroot.sh prepare SUITE        debootstrap SUITE if it is not cached
#                                  yet, then tests/deps.sh inside it
#   chroot.sh run SUITE CMD...     copy this checkout (working tree, with
#                                  uncommitted changes) to /build/mana_ai
#                                  in the chroot and run CMD there as root
#
# debootstrap comes with tests/deps.sh.
# Cache: $MANA_CHROOT_CACHE (default /var/cache/mana_ai/chroots)/SUITE,
# created on first use, reused after; delete a directory to start over.
# /proc, /dev and /dev/shm are mounted for the command and unmounted when
# it ends, whatever happens.  One run or prepare per suite at a time
# (flock).  Needs root, debootstrap and deb.debian.org.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${MANA_CHROOT_CACHE:-/var/cache/mana_ai/chroots}
mirror=${MANA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ $# -ge 2 ] || { echo "usage: chroot.sh prepare|run SUITE [CMD...]" >&2; exit 2; }
action=$1 suite=$2; shift 2
root=$cache/$suite
[ "$(id -u)" = 0 ] || { echo "chroot.sh: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/$suite.lock"
flock 9

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
    done
    mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount_all() {
    mount -t proc proc "$root/proc"; mounted+=("$root/proc")
    mount --bind /dev "$root/dev"; mounted+=("$root/dev")
    mount -t tmpfs -o mode=1777 shm "$root/dev/shm"; mounted+=("$root/dev/shm")
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" 2>/dev/null && mounted+=("$root/dev/pts") || true
}
in_chroot() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

if [ ! -x "$root/usr/bin/env" ]; then
    command -v debootstrap >/dev/null || { echo "chroot.sh: apt-get install debootstrap" >&2; exit 1; }
    echo "chroot: debootstrap $suite into $root"
    rm -rf "$root.new"
    debootstrap --variant=minbase "$suite" "$root.new" "$mirror" > "$cache/$suite.debootstrap.log" 2>&1 \
        || { echo "chroot.sh: debootstrap failed, see $cache/$suite.debootstrap.log" >&2; exit 1; }
    mv "$root.new" "$root"
fi
# Packages must not start services inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# A test chroot, not a server: a mirror whose Release file has passed its
# Valid-Until (a clock ahead of the mirror, a frozen snapshot) still serves.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99mana-ai-matrix"
mkdir -p "$root/dev/shm" "$root/dev/pts"

case $action in
    prepare)
        mount_all
        cp "$top/tests/deps.sh" "$root/tmp/mana_ai_deps.sh"
        in_chroot bash /tmp/mana_ai_deps.sh
        ;;
    run)
        [ $# -gt 0 ] || { echo "usage: chroot.sh run SUITE CMD..." >&2; exit 2; }
        rm -rf "$root/build/mana_ai"; mkdir -p "$root/build/mana_ai"; chmod 755 "$root/build" "$root/build/mana_ai"
        (cd "$top" && tar --exclude=./tests/.out --exclude=./.git --exclude='*.o' --exclude='*.so' \
            --exclude='*.bc' --exclude=./tests/unit/build --exclude=./tests/fuzz/build -cf - .) |
            tar -C "$root/build/mana_ai" -xf -
        mount_all
        # A repository of its own for the tests that use git (make dist).
        in_chroot bash -c 'cd /build/mana_ai && git init -q && git add -A && git -c user.name=matrix -c user.email=matrix@localhost commit -qm "matrix snapshot"' \
            || { echo "chroot.sh: git is missing in $suite; run chroot.sh prepare $suite" >&2; exit 1; }
        in_chroot bash -c 'cd /build/mana_ai && exec "$@"' bash "$@"
        ;;
    *) echo "chroot.sh: unknown action $action" >&2; exit 2 ;;
esac
