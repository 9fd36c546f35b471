#!/usr/bin/env bash
# deps.sh: install what building and testing mana_ai needs, on Debian 12
# (PostgreSQL 15), 13 (17) or unstable (18), as root; does nothing when
# everything is already there.  Every package the suite calls is named
# here: nothing is assumed to come in as a recommendation (installs run
# with --no-install-recommends).  PG_MAJOR=N picks the server major;
# otherwise the one of the installed pg_config, else the suite's default.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
updated=no
apt_update() { [ $updated = yes ] || { apt-get update -qq; updated=yes; }; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# The server major: asked for, installed, or what this suite's "postgresql" depends on.
pg=${PG_MAJOR:-}
if [ -z "$pg" ] && command -v pg_config >/dev/null; then
    pg=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
fi
if [ -z "$pg" ]; then
    [ "$(id -u)" = 0 ] || { echo "deps: run as root (PostgreSQL is not installed yet)" >&2; exit 1; }
    apt_update
    pg=$(apt-cache depends postgresql | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
fi
[ -n "$pg" ] || { echo "deps: cannot tell which PostgreSQL major to install" >&2; exit 1; }

# libFuzzer's runtime (clang's libclang-rt-N-dev is only a recommendation of clang).
clang_major() {
    if command -v clang >/dev/null; then
        clang -dumpversion | cut -d. -f1
    else
        apt_update
        apt-cache depends clang | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -1
    fi
}

pkgs=(make gcc clang pkg-config python3 perl git zip unzip openssl procps
      ca-certificates curl jq util-linux debootstrap
      postgresql-$pg postgresql-common postgresql-server-dev-$pg
      postgresql-$pg-pgtap libtap-parser-sourcehandler-pgtap-perl
      postgresql-$pg-plproxy
      libcurl4-openssl-dev libssl-dev libjson-c-dev
      prometheus-postgres-exporter prometheus)
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
    rt=libclang-rt-$(clang_major)-dev
    installed "$rt" && exit 0
fi
[ "$(id -u)" = 0 ] || { echo "deps: missing ${missing[*]:-libclang-rt}; run as root (or install them yourself)" >&2; exit 1; }
apt_update
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rt=libclang-rt-$(clang_major)-dev
if ! installed "$rt"; then
    echo "deps: installing $rt"
    apt-get install -y -qq --no-install-recommends "$rt" >/dev/null
fi
# Debian starts a "main" cluster on install; tests use their own.
pg_ctlcluster "$pg" main stop 2>/dev/null || true
# prometheus and prometheus-postgres-exporter start a service on install
# (:9090, :9187); the tests start their own on loopback ports, so stop and
# disable the packaged ones.
for svc in prometheus prometheus-postgres-exporter; do
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    else
        service "$svc" stop >/dev/null 2>&1 || true
        update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
done
