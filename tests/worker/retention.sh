#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.tick_runs_retention=14d -o mana_ai.audit_retention=90d
# Retention (SPEC 9a): the worker, as a role without BYPASSRLS, deletes
# tick_runs older than mana_ai.tick_runs_retention, decrypt_audit rows of
# every user older than mana_ai.audit_retention and token_usage older than
# 25 h and the retry state of missions that no longer exist, keeps
# everything younger, and leaves decrypt_audit append-only for
# everyone else afterwards.
set -euo pipefail
source tests/lib/common.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
poll_until 20 mana_sync "SELECT count(*) > 0 FROM mana_ai.tick_runs WHERE source = 'worker' AND status = 'ok'" t \
    || fail "the worker never ticked"

# Old and young rows (as the superuser, which passes row-level security).
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync <<'SQL' >/dev/null
INSERT INTO mana_ai.tick_runs (source, status, started_at, finished_at)
SELECT 'sql', 'ok', now() - d * interval '1 day', now() - d * interval '1 day'
  FROM (VALUES (20), (15), (13), (1)) AS v(d);
INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status, ts)
SELECT u, 'm-old', 'notes', 'n-' || d, 'ok', now() - d * interval '1 day'
  FROM (VALUES ('alice'), ('bob')) AS users(u), (VALUES (120), (91), (89), (2)) AS v(d);
INSERT INTO mana_ai.mission_attempts (user_id, mission_id, slot, attempts, next_attempt_at)
VALUES ('alice', 'm-gone', '2026-01-01T08:00:00.000Z', 2, now() + interval '1 hour');
INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record)
VALUES ('alice', 'm-here', '{"title": "bleibt", "state": "paused"}');
INSERT INTO mana_ai.mission_attempts (user_id, mission_id, slot, attempts, next_attempt_at)
VALUES ('alice', 'm-here', '2026-01-01T08:00:00.000Z', 1, now() + interval '1 hour');
INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens, ts)
VALUES ('alice', 'ag', 'm', 10, now() - interval '26 hours'),
       ('alice', 'ag', 'm', 20, now() - interval '23 hours');
SQL

# Retention runs when a worker starts ticking, then every ten minutes: a
# new worker process picks the rows up at once.
pid=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")
q postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
poll_until 30 mana_sync "SELECT count(*) FROM mana_ai.tick_runs WHERE source = 'sql' AND started_at < now() - interval '14 days'" 0 \
    || fail "old tick_runs were not deleted"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE source = 'sql'")" = 2 ] \
    || fail "tick_runs younger than 14 days were deleted"
poll_until 10 mana_sync "SELECT string_agg(user_id || ':' || record_id, ',' ORDER BY user_id, ts) FROM mana_ai.decrypt_audit WHERE mission_id = 'm-old'" \
    "alice:n-89,alice:n-2,bob:n-89,bob:n-2" \
    || fail "decrypt_audit retention did not keep exactly the rows younger than 90 days of both users"
[ "$(q mana_sync -c "SELECT string_agg(tokens::text, ',') FROM mana_ai.token_usage WHERE user_id = 'alice'")" = 20 ] \
    || fail "token_usage retention"
[ "$(q mana_sync -c "SELECT string_agg(mission_id, ',') FROM mana_ai.mission_attempts WHERE user_id = 'alice'")" = m-here ] \
    || fail "retry state: a deleted mission's row must go, a live mission's row must stay"
echo "ok - retention deleted what is old, kept what is young, for every user"

# The guard is back: nobody else may delete audit rows, not even a superuser.
if out=$(q mana_sync -c "DELETE FROM mana_ai.decrypt_audit WHERE mission_id = 'm-old'" 2>&1); then
    fail "a DELETE on decrypt_audit went through after retention"
fi
case $out in *append-only*) ;; *) fail "DELETE refused for another reason: $out" ;; esac
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.decrypt_audit WHERE mission_id = 'm-old'")" = 4 ] || fail "audit rows lost"
echo "ok - decrypt_audit is append-only again"
echo "retention ok"
