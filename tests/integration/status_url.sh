#!/usr/bin/env bash
# cluster: --preload
# status_url.sh: mana_ai.llm_url may carry a credential (user:password@ or
# ?key=); mana_ai.status shows it redacted, and only superusers (and
# pg_read_all_settings) may read the parameter itself.
# Preloaded, as in production: a session that has not loaded the library
# sees only PostgreSQL's unrestricted placeholder.  cwd = repo root.
set -euo pipefail
. tests/lib/common.sh
db=mana_sync
pass() { echo "ok - $*"; }

setup_mana_sync "$db"
cat > /tmp/status_url_ops.sql <<'SQL'
CREATE ROLE mana_ops NOLOGIN;
GRANT USAGE ON SCHEMA mana_ai TO mana_ops;
GRANT SELECT ON mana_ai.status TO mana_ops;
GRANT EXECUTE ON FUNCTION mana_ai.worker_state() TO mana_ops;
SQL
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f /tmp/status_url_ops.sql >/dev/null
rm -f /tmp/status_url_ops.sql
q "$db" -c "CREATE ROLE plain NOLOGIN" >/dev/null

url='http://alice:s3cret@127.0.0.1:9/v1?api_key=k3y&x=1'
q "$db" -c "LOAD 'mana_ai'" -c "ALTER SYSTEM SET mana_ai.llm_url = '$url'" -c "SELECT pg_reload_conf()" >/dev/null
poll_until 10 "$db" "SELECT current_setting('mana_ai.llm_url')" "$url" || fail "llm_url not reloaded"

got=$(q "$db" -c "SELECT llm_url FROM mana_ai.status")
[ "$got" = 'http://***@127.0.0.1:9/v1?***' ] || fail "status shows llm_url as '$got'"
pass "mana_ai.status shows http://***@127.0.0.1:9/v1?***"
got=$(q "$db" -c "SET ROLE mana_ops" -c "SELECT s::text FROM mana_ai.status s" -c "SELECT w::text FROM mana_ai.worker_state() w")
case $got in *s3cret*|*alice*|*k3y*) fail "the operator sees the credential: $got" ;; esac
pass "the operator's status and worker_state rows hold no credential"

for role in mana_ops plain; do
    if out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE $role" -c "SHOW mana_ai.llm_url" 2>&1); then
        fail "$role can SHOW mana_ai.llm_url: $out"
    fi
    case $out in *"permission denied"*|*"must be superuser"*|*pg_read_all_settings*) ;; *) fail "$role: $out" ;; esac
    [ -z "$(q "$db" -c "SET ROLE $role" -c "SELECT setting FROM pg_settings WHERE name = 'mana_ai.llm_url'")" ] \
        || fail "$role reads llm_url through pg_settings"
    [ -z "$(q "$db" -c "SET ROLE $role" -c "SELECT current_setting('mana_ai.llm_url', true)" 2>/dev/null | grep s3cret || true)" ] \
        || fail "$role reads llm_url through current_setting"
done
pass "neither the operator nor PUBLIC can read mana_ai.llm_url itself"

q "$db" -c "ALTER SYSTEM RESET mana_ai.llm_url" -c "SELECT pg_reload_conf()" >/dev/null
poll_until 10 "$db" "SELECT llm_url FROM mana_ai.status" "http://localhost:3020" || fail "plain URL not shown as is"
pass "a URL without credentials is shown as it is"
echo "status_url ok"
