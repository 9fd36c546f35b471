#!/usr/bin/env bash
# cluster: --preload
# llm_buffer_cap.sh: mana_ai.llm_max_parallel x mana_ai.llm_max_response_size
# (what the LLM calls of one tick may buffer at once) is capped at 256 MB.
#   - ALTER SYSTEM refuses either parameter when the product would pass
#     the cap, naming the limit and how to get there; at the cap it is
#     accepted;
#   - a reload that applies a value over the cap keeps the old value and
#     logs why; one that raises one parameter before lowering the other is
#     refused for the raise and applies it on the next reload, so the
#     product is never over the cap at any moment.
# Runs inside with_cluster.sh --preload (the postmaster applies the
# file), cwd = repo root.
set -euo pipefail
. tests/lib/common.sh

pass() { echo "ok - $*"; }
setting() { q postgres -c "SELECT current_setting('$1')"; }
# wait_setting NAME VALUE: a reload is asynchronous; new sessions see it soon.
wait_setting() {
    local deadline=$((SECONDS + 10))
    while [ "$(setting "$1")" != "$2" ]; do
        [ $SECONDS -lt $deadline ] || fail "$1 is $(setting "$1"), wanted $2"
        sleep 0.1
    done
}
reload() { q postgres -c "SELECT pg_reload_conf()" >/dev/null; }
# refused SQL: fails with invalid_parameter_value and the cap in the detail
refused() {
    local out
    if out=$(psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d postgres -c "$1" 2>&1); then
        fail "accepted: $1"
    fi
    case $out in *22023*"the limit is 256 MB"*"Lower the other parameter first"*) ;;
        *) fail "$1 failed for another reason: $out" ;; esac
}

[ "$(setting mana_ai.llm_max_parallel)" = 8 ] && [ "$(setting mana_ai.llm_max_response_size)" = 1MB ] \
    || fail "unexpected defaults"

refused "ALTER SYSTEM SET mana_ai.llm_max_response_size = '64MB'"   # 8 x 64 MB = 512 MB
pass "8 calls x 64 MB refused by ALTER SYSTEM"
q postgres -c "ALTER SYSTEM SET mana_ai.llm_max_response_size = '32MB'" >/dev/null  # 8 x 32 MB
reload
wait_setting mana_ai.llm_max_response_size 32MB
pass "8 calls x 32 MB (the cap itself) accepted"
refused "ALTER SYSTEM SET mana_ai.llm_max_parallel = 9"            # 9 x 32 MB = 288 MB
pass "raising llm_max_parallel past the cap refused"
q postgres -c "ALTER SYSTEM SET mana_ai.llm_max_parallel = 4" >/dev/null
reload
wait_setting mana_ai.llm_max_parallel 4
pass "lowering is always accepted"

# The file, read on reload: over the cap -> old value kept, logged.
q postgres -c "ALTER SYSTEM RESET ALL" >/dev/null
reload
wait_setting mana_ai.llm_max_response_size 1MB
wait_setting mana_ai.llm_max_parallel 8
conf=$(q postgres -c "SHOW config_file")
cp "$conf" "$conf.orig"
echo "mana_ai.llm_max_response_size = '512MB'" >> "$conf"
limit_lines=$(log_count 'the limit is 256 MB')
reload
wait_for_log 10 'LOG: +invalid value for parameter "mana_ai.llm_max_response_size": 524288' \
    || fail "no log line for the refused value"
[ "$(log_count 'the limit is 256 MB')" -gt "$limit_lines" ] || fail "the log does not name the cap"
[ "$(setting mana_ai.llm_max_response_size)" = 1MB ] || fail "a value over the cap was applied"
pass "a reloaded file over the cap keeps the old value and logs the limit"

# Raise one and lower the other in one reload: never over the cap.
cp "$conf.orig" "$conf"
printf '%s\n' "mana_ai.llm_max_response_size = '128MB'" "mana_ai.llm_max_parallel = 2" >> "$conf"
reload
wait_setting mana_ai.llm_max_parallel 2
[ "$(setting mana_ai.llm_max_response_size)" = 1MB ] \
    || fail "128MB applied while llm_max_parallel was still 8"
reload
wait_setting mana_ai.llm_max_response_size 128MB
pass "raise-then-lower in one file: the raise is applied on the next reload (2 x 128 MB)"
cp "$conf.orig" "$conf"
reload
echo "llm_buffer_cap ok"
