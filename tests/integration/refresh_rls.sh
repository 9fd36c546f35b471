#!/usr/bin/env bash
# refresh_rls.sh: the snapshot refresh run by an ordinary role (no
# superuser, no BYPASSRLS) that even owns sync_changes, under FORCE
# row-level security, over two users' data: both users' snapshots must be
# right (SPEC 3, least privilege).  Run inside tests/lib/with_cluster.sh.
set -euo pipefail
source tests/lib/common.sh   # FORMAT and STAMPS (the format under test)
db=mana_rls_$$
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { dropdb --if-exists "$db" >/dev/null 2>&1 || true; psql -X -q -d postgres -c "DROP ROLE IF EXISTS mana_worker_t" >/dev/null 2>&1 || true; }
trap cleanup EXIT
q()  { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
qw() { PGUSER=mana_worker_t PGPASSWORD=worker psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

createdb "$db"
q <<'SQL'
CREATE EXTENSION mana_ai;
\i tests/fixtures/sync_changes.sql
CREATE ROLE mana_worker_t LOGIN PASSWORD 'worker' NOSUPERUSER NOBYPASSRLS;
-- as in production: the ordinary role owns the log, so FORCE applies to it
ALTER TABLE public.sync_changes OWNER TO mana_worker_t;
-- the worker role's grants (docs/projections.md)
GRANT USAGE ON SCHEMA mana_ai TO mana_worker_t;
GRANT EXECUTE ON FUNCTION mana_ai.refresh_snapshots(), mana_ai.refresh_horizon(),
      mana_ai.snapshot_users_since(text, timestamptz),
      mana_ai.snapshot_rows_of(text[], timestamptz, timestamptz),
      mana_ai.replay_record(text, text, text, text) TO mana_worker_t;
GRANT SELECT, INSERT, UPDATE, DELETE ON mana_ai.mission_snapshots, mana_ai.agent_snapshots,
      mana_ai.snapshot_applied, mana_ai.snapshot_tombstones TO mana_worker_t;
GRANT SELECT, UPDATE ON mana_ai.snapshot_horizon TO mana_worker_t;
SQL

# two users' histories, written by each user under their own scope
for u in alice bob; do
q >/dev/null <<SQL
BEGIN;
SELECT set_config('app.current_user_id', '$u', true);
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, $STAMPS, client_id)
SELECT 'ai', 'aiMissions', 'm' || (g % 5), '$u', CASE WHEN g < 5 THEN 'insert' ELSE 'update' END,
       jsonb_build_object('title', '$u-' || g, 'state', 'active'), '{}', 'web'
  FROM generate_series(0, 19) g;
INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'agents', 'legacy:ai-default', '$u', 'insert', '{"name": "Mana $u"}', 'web'),
       ('ai', 'aiMissions', 'm4', '$u', 'delete', NULL, 'web');
COMMIT;
SQL
done

# without a scope the worker sees nothing: RLS is really in force for it
[ "$(qw -c 'SELECT count(*) FROM public.sync_changes')" = 0 ] || fail "worker reads sync_changes without a user scope"
[ "$(qw -c "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user")" = f ] || fail "worker role is privileged"

out=$(qw -c "SELECT kind, rows_applied, new_snapshots, deleted_snapshots FROM mana_ai.refresh_snapshots()")
echo "$out"
[ "$out" = $'missions|42|8|0\nagents|2|2|0' ] || fail "unexpected refresh counts: $out"

# every snapshot equals the full replay computed by the superuser
mism=$(q -c "
WITH r AS (SELECT user_id, record_id,
                  mana_ai.lww_merge(record_id, op, data, $STAMPS, created_at ORDER BY created_at, id) AS rec
             FROM public.sync_changes WHERE table_name = 'aiMissions' GROUP BY 1, 2)
SELECT count(*) FROM r FULL JOIN mana_ai.mission_snapshots s
    ON s.user_id = r.user_id AND s.mission_id = r.record_id
 WHERE r.rec IS DISTINCT FROM s.record")
[ "$mism" = 0 ] || fail "$mism mission snapshots differ from a full replay"
# each user's snapshots hold that user's data only
[ "$(q -c "SELECT count(*) FROM mana_ai.mission_snapshots WHERE record->>'title' NOT LIKE user_id || '-%'")" = 0 ] \
    || fail "a snapshot holds another user's data"
[ "$(q -c "SELECT count(*) FROM mana_ai.agent_snapshots WHERE agent_id = 'legacy:ai-default'")" = 2 ] || fail "agent snapshots missing"

# a second refresh by the worker applies nothing
out=$(qw -c "SELECT sum(rows_applied) FROM mana_ai.refresh_snapshots()")
[ "$out" = 0 ] || fail "second refresh applied $out rows"

# the discovery and the batched read are not open to PUBLIC
psql -X -q -d "$db" -c "CREATE ROLE mana_nobody_t LOGIN PASSWORD 'x'" >/dev/null
if PGUSER=mana_nobody_t PGPASSWORD=x psql -X -q -At -d "$db" -c "SELECT * FROM mana_ai.snapshot_users_since('aiMissions', '-infinity')" >/dev/null 2>&1; then
    q -c "DROP ROLE mana_nobody_t" >/dev/null 2>&1 || true
    fail "PUBLIC can call the cross-user discovery function"
fi
if PGUSER=mana_nobody_t PGPASSWORD=x psql -X -q -At -d "$db" -c "SELECT * FROM mana_ai.snapshot_rows_of(ARRAY['alice'], '-infinity', '-infinity')" >/dev/null 2>&1; then
    q -c "DROP ROLE mana_nobody_t" >/dev/null 2>&1 || true
    fail "PUBLIC can call the cross-user batched read"
fi
dropdb "$db"; psql -X -q -d postgres -c "DROP ROLE mana_nobody_t" >/dev/null
echo "ok - refresh as a non-superuser without BYPASSRLS folds both users' rows"
