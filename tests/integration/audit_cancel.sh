#!/usr/bin/env bash
# audit_cancel.sh: the decrypt audit writer turns its own failures into a
# WARNING (the audit must never fail the decrypt it records), but a query
# cancel is not its failure: statement_timeout or pg_cancel_backend while
# the audit insert waits for a lock ends the statement with 57014 instead
# of being logged and ignored.  A lock_timeout stays a WARNING.
# The insert is held up deterministically: another session holds a SHARE
# lock on mana_ai.decrypt_audit, which INSERT's ROW EXCLUSIVE waits for.
# Runs inside with_cluster.sh (no preload), cwd = repo root.
set -euo pipefail
. tests/lib/common.sh
db=mana_sync
pass() { echo "ok - $*"; }
tmp=$(mktemp -d)
holder=
cleanup() { [ -n "$holder" ] && kill "$holder" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

setup_mana_sync "$db"
# No such mission: decrypt_input audits "failed / mission-not-found" and returns NULL.
decrypt="SELECT mana_ai.decrypt_input('u1', 'm-none', 'notes', 'notes', 'n1') IS NULL AS refused"

out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "$decrypt" 2>&1)
[ "$out" = t ] || fail "decrypt_input without a lock: $out"
[ "$(q "$db" -c "SELECT count(*) FROM mana_ai.decrypt_audit")" = 1 ] || fail "no audit row"
pass "unhindered: refused decrypt, one audit row"

PGAPPNAME=audit_lock_holder psql -X -qAt -d "$db" \
    -c "BEGIN" -c "LOCK TABLE mana_ai.decrypt_audit IN SHARE MODE" -c "SELECT pg_sleep(120)" \
    >/dev/null 2>&1 &
holder=$!
poll_until 10 "$db" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                     WHERE a.application_name = 'audit_lock_holder' AND l.mode = 'ShareLock'
                       AND l.relation = 'mana_ai.decrypt_audit'::regclass AND l.granted" 1 \
    || fail "the lock holder did not get its lock"

# 1. statement_timeout while the audit insert waits
start=$SECONDS
if out=$(psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$db" \
             -c "SET statement_timeout = '1s'" -c "$decrypt" 2>&1); then
    fail "statement_timeout during the audit write was swallowed: $out"
fi
case $out in *57014*"statement timeout"*) ;; *) fail "not a cancel: $out" ;; esac
case $out in *"could not write a mana_ai.decrypt_audit row"*) fail "the cancel was logged as an audit failure: $out" ;; esac
[ $((SECONDS - start)) -lt 10 ] || fail "the cancel took $((SECONDS - start)) s"
pass "statement_timeout during the audit write ends the statement (57014)"

# 2. pg_cancel_backend while the audit insert waits for the lock
PGAPPNAME=audit_waiter psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$db" -c "$decrypt" \
    > "$tmp/waiter.out" 2>&1 &
waiter=$!
poll_until 10 "$db" "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = 'audit_waiter' AND wait_event_type = 'Lock'" 1 \
    || fail "the decrypt did not wait for the audit lock"
q "$db" -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'audit_waiter'" >/dev/null
rc=0; wait "$waiter" || rc=$?
out=$(cat "$tmp/waiter.out")
[ $rc -ne 0 ] || fail "pg_cancel_backend during the audit write was swallowed: $out"
case $out in *57014*"canceling statement due to user request"*) ;; *) fail "not a cancel: $out" ;; esac
case $out in *"could not write a mana_ai.decrypt_audit row"*) fail "the cancel was logged as an audit failure: $out" ;; esac
pass "pg_cancel_backend during the audit write ends the statement (57014)"

# 3. an audit failure that is no cancel is still only a WARNING
out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SET lock_timeout = '200ms'" -c "$decrypt" 2>&1) \
    || fail "lock_timeout in the audit write failed the decrypt: $out"
case $out in *"could not write a mana_ai.decrypt_audit row"*t) ;; *) fail "lock_timeout: $out" ;; esac
pass "lock_timeout in the audit write: WARNING, the decrypt answers (NULL)"

kill "$holder" 2>/dev/null || true
q "$db" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'audit_lock_holder'" >/dev/null
wait "$holder" 2>/dev/null || true
holder=
[ "$(q "$db" -c "SELECT count(*) FROM mana_ai.decrypt_audit")" = 1 ] || fail "a cancelled attempt left an audit row"
pass "no audit row from the cancelled or timed-out attempts"
echo "audit_cancel ok"
