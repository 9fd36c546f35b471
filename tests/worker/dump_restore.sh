#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# pg_dump -Fc of a planned mana_sync, pg_restore into a new database:
#  - the DBA-added tool and every decrypt_audit row (ids included) come
#    back; the shipped tools are those of CREATE EXTENSION, once; so does
#    the current format's slot state (mana_ai.mission_slots);
#  - so do the token ledger and the retry state (issue 19: a restore must
#    not reset a day's budget or a failing mission's backoff);
#  - derived state does not: snapshots, the refresh cursor's bookkeeping
#    and tick_runs are empty after the restore;
#  - the worker, pointed at the restored database (mana_ai.database, a
#    restart), rebuilds the snapshots in its first refresh (same missions,
#    same nextRunAt as before the dump), plans a mission that falls due
#    after the restore, and plans none of the slots it had planned before
#    the dump again;
#  - the audit id sequence continues after the restored rows.
set -euo pipefail
source tests/lib/common.sh
tmp=$(mktemp -d)

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$tmp"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/tick_world.sql >/dev/null

written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
poll_until 60 mana_sync "$written" 103 || fail "the worker did not plan the tick world (103 write-backs)"

# What a DBA adds, and an audit trail of several users.
q mana_sync -c "INSERT INTO mana_ai.tools (name, module, description, parameters)
                VALUES ('book_room', 'calendar', 'Bucht einen Raum.', '[{\"name\": \"room\", \"type\": \"string\", \"required\": true, \"description\": \"Raum\"}]')" >/dev/null
for u in alice bob carol; do
    q mana_sync -c "SELECT mana_ai.audit_decrypt('$u', 'm-$u', NULL, 'notes', 'n-$u', 'ok'),
                           mana_ai.audit_decrypt('$u', 'm-$u', 'it-1', 'journal', 'j-$u', 'scope-violation', 'record-not-in-grant-allowlist')" >/dev/null
done

# Pause the worker: the dump is taken of a quiet database.
set_guc mana_ai.enabled off
poll_until 10 mana_sync "SELECT enabled FROM mana_ai.status" f || fail "the worker did not pause"
poll_until 30 mana_sync "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'running'" 0 || fail "a tick is still running"
# A backoff in progress on a mission that exists (retention keeps it).
q mana_sync -c "INSERT INTO mana_ai.mission_attempts (user_id, mission_id, slot, attempts, next_attempt_at, last_error)
                SELECT user_id, mission_id, 'slot-x', 3, now() + interval '1 hour', 'llm timeout'
                  FROM mana_ai.mission_snapshots ORDER BY 1, 2 LIMIT 1
                ON CONFLICT (user_id, mission_id) DO UPDATE SET attempts = 3, next_attempt_at = now() + interval '1 hour'" >/dev/null
# Fold the last write-backs in, so the snapshots are those every later tick would see.
q mana_sync -c "SELECT count(*) FROM mana_ai.refresh_snapshots()" >/dev/null

audit="SELECT id, user_id, mission_id, iteration_id, table_name, record_id, status, reason, ts FROM mana_ai.decrypt_audit ORDER BY id"
tools="SELECT name, module, description, parameters, shipped FROM mana_ai.tools ORDER BY name"
# next_run_at: the record's nextRunAt (seed format) or the slot state's (current)
snaps="SELECT m.user_id, m.mission_id, s.record ->> 'nextRunAt', m.next_run_at FROM mana_ai.missions m JOIN mana_ai.mission_snapshots s USING (user_id, mission_id) ORDER BY 1, 2"
slots="SELECT user_id, mission_id, planned_slot, next_slot FROM mana_ai.mission_slots ORDER BY 1, 2"
q mana_sync -c "$audit" > "$tmp/audit.before"
q mana_sync -c "$tools" > "$tmp/tools.before"
q mana_sync -c "$snaps" > "$tmp/snaps.before"
q mana_sync -c "$slots" > "$tmp/slots.before"
q mana_sync -c "SELECT record_id, data ->> 'nextRunAt' FROM sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY 1" > "$tmp/planned.before"
ledger="SELECT user_id, agent_id, mission_id, tokens, ts FROM mana_ai.token_usage ORDER BY 1, 2, 3, 5"
attempts="SELECT user_id, mission_id, slot, attempts, next_attempt_at, last_error FROM mana_ai.mission_attempts ORDER BY 1, 2"
q mana_sync -c "$ledger" > "$tmp/ledger.before"
q mana_sync -c "$attempts" > "$tmp/attempts.before"
[ "$(wc -l < "$tmp/ledger.before")" -gt 0 ] || fail "no token usage before the dump"
[ "$(wc -l < "$tmp/attempts.before")" -gt 0 ] || fail "no retry state before the dump"
[ "$(wc -l < "$tmp/audit.before")" = 6 ] || fail "expected 6 audit rows before the dump"
[ "$(wc -l < "$tmp/snaps.before")" -gt 100 ] || fail "too few snapshots before the dump"

timeout 120 pg_dump -Fc -d mana_sync -f "$tmp/mana_sync.dump" || fail "pg_dump"
q postgres -c "CREATE DATABASE mana_restored" >/dev/null
timeout 120 pg_restore --exit-on-error -d mana_restored "$tmp/mana_sync.dump" 2> "$tmp/restore.err" \
    || { cat "$tmp/restore.err" >&2; fail "pg_restore"; }

# --- what came back -------------------------------------------------------------
q mana_restored -c "$audit" > "$tmp/audit.after"
diff "$tmp/audit.before" "$tmp/audit.after" >&2 || fail "the audit trail did not come back row for row"
q mana_restored -c "$tools" > "$tmp/tools.after"
diff "$tmp/tools.before" "$tmp/tools.after" >&2 || fail "the tool catalog differs after the restore"
grep -q '^book_room|calendar|' "$tmp/tools.after" || fail "the DBA-added tool is missing"
[ "$(q mana_restored -c "SELECT count(*) FROM sync_changes")" = "$(q mana_sync -c "SELECT count(*) FROM sync_changes")" ] \
    || fail "sync_changes did not come back"
q mana_restored -c "$ledger" > "$tmp/ledger.after"
diff "$tmp/ledger.before" "$tmp/ledger.after" >&2 || fail "the token ledger did not come back (a restore would reset every budget)"
q mana_restored -c "$attempts" > "$tmp/attempts.after"
diff "$tmp/attempts.before" "$tmp/attempts.after" >&2 || fail "the retry state did not come back (a restore would end every backoff)"
for t in mission_snapshots agent_snapshots snapshot_applied snapshot_tombstones tick_runs; do
    [ "$(q mana_restored -c "SELECT count(*) FROM mana_ai.$t")" = 0 ] || fail "derived table mana_ai.$t was dumped"
done
q mana_restored -c "$slots" > "$tmp/slots.after"
diff "$tmp/slots.before" "$tmp/slots.after" >&2 || fail "the slot state did not come back row for row"
if [ "$FORMAT" = seed ]; then
    [ ! -s "$tmp/slots.before" ] || fail "the seed format wrote slot state"
else
    [ "$(wc -l < "$tmp/slots.before")" = 103 ] || fail "the current format kept no slot state per planned mission"
fi
# Mark what the dump held: nothing newer may be planned from these rows.
q mana_restored -c "CREATE TABLE public.dumped_rows AS SELECT id FROM sync_changes" >/dev/null
echo "ok - tools, audit, token ledger and retry state came back, snapshots and tick runs did not"

# --- the worker moves to the restored database --------------------------------
# The original stays, paused, so a plan written there could not count here.
q postgres -c "ALTER SYSTEM SET mana_ai.database = 'mana_restored'" -c "ALTER SYSTEM SET mana_ai.enabled = on" >/dev/null
timeout 60 pg_ctlcluster -m fast "$MANA_PG_MAJOR" regress stop || fail "the cluster did not stop"
deadline=$((SECONDS + 30))
while pg_ctlcluster "$MANA_PG_MAJOR" regress status >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "the cluster is still running 30 s after stop"
    sleep 0.2
done
timeout 60 pg_ctlcluster "$MANA_PG_MAJOR" regress start || fail "the cluster did not start again"
poll_until 30 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND datname = 'mana_restored'" 1 \
    || fail "no worker in mana_restored after the restart"
poll_until 30 mana_restored "SELECT count(*) >= 1 FROM mana_ai.tick_runs WHERE status = 'ok'" t || fail "no tick finished in mana_restored"
q mana_restored -c "$snaps" > "$tmp/snaps.after"
diff "$tmp/snaps.before" "$tmp/snaps.after" >&2 || fail "the first refresh did not rebuild the snapshots as they were"
echo "ok - the worker ticks in the restored database and its first refresh rebuilt $(wc -l < "$tmp/snaps.after") mission snapshots"

# A mission that falls due after the restore is planned, once.
q mana_restored -c "
SELECT set_config('app.current_user_id', 'restored-user', false);
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'aiMissions', 'm-after-restore', 'restored-user', 'insert',
        jsonb_build_object('title', 'Nach dem Restore', 'objective', 'Weiter planen', 'state', 'active',
                           'cadence', '{\"kind\": \"manual\"}'::jsonb, 'iterations', '[]'::jsonb,
                           'nextRunAt', '2020-01-01T00:00:00.000Z'), 'web')" >/dev/null
poll_until 30 mana_restored "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-after-restore'" 1 \
    || fail "the mission written after the restore was not planned"
now_ok=$(q mana_restored -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status = 'ok'")
poll_until 30 mana_restored "SELECT count(*) >= $now_ok + 3 FROM mana_ai.tick_runs WHERE status = 'ok'" t || fail "the worker stopped ticking"

# Nothing planned before the dump was planned again.
q mana_restored -c "SELECT record_id, data ->> 'nextRunAt' FROM sync_changes
                    WHERE client_id = 'mana-ai-runner' AND id IN (SELECT id FROM public.dumped_rows) ORDER BY 1" > "$tmp/planned.after"
diff "$tmp/planned.before" "$tmp/planned.after" >&2 || fail "the dumped write-backs changed"
again=$(q mana_restored -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND id NOT IN (SELECT id FROM public.dumped_rows)
                            AND record_id <> 'm-after-restore'")
[ "$again" = 0 ] || { q mana_restored -c "SELECT record_id, data ->> 'nextRunAt' FROM sync_changes WHERE client_id = 'mana-ai-runner'
                                          AND id NOT IN (SELECT id FROM public.dumped_rows)" >&2; fail "$again missions planned again after the restore"; }
[ "$(q mana_restored -c "SELECT count(*) FROM (SELECT record_id FROM sync_changes WHERE client_id = 'mana-ai-runner'
                                               GROUP BY record_id HAVING count(*) > 1) d")" = 0 ] || fail "a mission has two iterations"
[ "$(q mana_sync -c "$written")" = 103 ] || fail "the original database was written to after the switch"
echo "ok - no slot planned before the dump was planned again; the new mission was planned once"

# The audit sequence continues after the restored ids.
next=$(q mana_restored -c "SELECT mana_ai.audit_decrypt('alice', 'm-alice', NULL, 'notes', 'n-2', 'ok')")
[ "$next" -gt "$(tail -1 "$tmp/audit.after" | cut -d'|' -f1)" ] || fail "decrypt_audit ids restart after the restore"
echo "PASS dump_restore"
