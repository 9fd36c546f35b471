#!/usr/bin/env bash
# deps.sh: install what building and testing mana_ai needs, on Debian,
# as root; does nothing when everything is already there.
set -euo pipefail
pkgs=(make gcc clang pkg-config python3 postgresql-15 postgresql-common
      postgresql-server-dev-15 libcurl4-openssl-dev libssl-dev libjson-c-dev
      postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
      prometheus-postgres-exporter prometheus curl jq unzip
      postgresql-15-plproxy)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
    echo "deps: run as root (or install the packages above yourself)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a "main" cluster on install; tests use their own.
pg_ctlcluster 15 main stop 2>/dev/null || true
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
