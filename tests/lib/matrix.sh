#!/usr/bin/env bash
# matrix.sh: mana_ai on the other supported PostgreSQL majors, each in the
# Debian suite that ships it, in a cached debootstrap chroot
# (tests/lib/chroot.sh):
#   17  trixie (Debian 13: json-c 0.18, gcc 14)
#   18  sid    (Debian unstable: json-c 0.19, gcc 15)
# The host itself is the 15 of the matrix (Debian 12).
#
#   matrix.sh prepare               both chroots, with their packages
#   matrix.sh run MAJOR subset|full tests/run.sh inside MAJOR's chroot:
#                                   subset (make test) = pg_regress, pgTAP,
#                                   unit, the worker end-to-end in both
#                                   protocols, kill -9, the upgrade and
#                                   dump/restore; full (make test-matrix) =
#                                   everything
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUBSET='regress/|pgtap/|unit/|worker/tick_e2e|worker/tools_e2e|worker/kill9|integration/upgrade|worker/dump_restore'
suite_of() {
    case $1 in
        17) echo trixie ;;
        18) echo sid ;;
        *) echo "matrix.sh: no chroot for PostgreSQL $1" >&2; exit 2 ;;
    esac
}
case ${1:-} in
    prepare)
        for major in 17 18; do
            echo "== prepare PostgreSQL $major ($(suite_of $major))"
            bash "$here/chroot.sh" prepare "$(suite_of $major)"
        done
        ;;
    run)
        major=${2:?MAJOR}; mode=${3:-subset}
        only=$SUBSET; [ "$mode" = full ] && only=""
        suite=$(suite_of "$major")
        # shellcheck disable=SC2016
        bash "$here/chroot.sh" run "$suite" bash -c '
            got=$(pg_config --version | sed -E "s/^PostgreSQL ([0-9]+).*/\1/")
            [ "$got" = "$0" ] || { echo "matrix: $1 has PostgreSQL $got, not $0"; exit 1; }
            echo "matrix: PostgreSQL $(pg_config --version | cut -d" " -f2), json-c $(pkg-config --modversion json-c), $(gcc --version | head -1), $(curl --version | head -1 | cut -d" " -f1-2)"
            MANA_MATRIX=0 ONLY="$2" exec bash tests/run.sh' "$major" "$suite" "$only"
        ;;
    *) echo "usage: matrix.sh prepare | run MAJOR [subset|full]" >&2; exit 2 ;;
esac
