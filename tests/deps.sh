#!/usr/bin/env bash
# deps.sh: install what building and testing mana_ai needs, on Debian,
# as root; does nothing when everything is already there.
set -euo pipefail
pkgs=(make gcc clang pkg-config python3 postgresql-15 postgresql-common
      postgresql-server-dev-15 libcurl4-openssl-dev libssl-dev libjson-c-dev
      postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
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
