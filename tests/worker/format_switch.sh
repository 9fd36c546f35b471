#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner
# The sync format changes under a running worker (issue 17): a database in
# the seed format (SPEC 1.1) is migrated in place to the current one (SPEC
# 11.1: RENAME COLUMN field_timestamps TO field_meta, ADD COLUMN origin,
# ADD COLUMN space_id), once while a tick waits for the LLM.  No row is
# lost, no slot is planned twice, and every write after the migration is
# in the new format (SPEC 11.2) with the next slot in mana_ai's own state,
# which advances without a browser.  Then a table of neither format: the
# errcode and hint, one log line however often the worker retries, the
# worker alive, and ticking again once the table is repaired.
set -euo pipefail
FORMAT=seed    # the database starts in the seed format, whatever the suite runs in
source tests/lib/common.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"

# mission NAME OBJECTIVE NEXTRUNAT: a user's mission, interval 60 min.
mission() {
    q mana_sync -c "INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
        VALUES ('ai', 'aiMissions', '$1', 'u-$1', 'insert',
                jsonb_build_object('title', '$1', 'objective', '$2', 'inputs', '[]'::jsonb,
                                   'cadence', '{\"kind\": \"interval\", \"everyMinutes\": 60}'::jsonb,
                                   'state', 'active', 'nextRunAt', '$3', 'iterations', '[]'::jsonb,
                                   'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z'),
                'web')" >/dev/null
}
runner() { q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' ${1:+AND record_id = '$1'}"; }
users_rows="SELECT count(*) || ':' || md5(string_agg(id::text, ',' ORDER BY id)) FROM sync_changes WHERE client_id <> 'mana-ai-runner'"

# ---- seed format: planned once, nextRunAt written into the record -------
for m in s1 s2 s3; do mission $m "Vor dem Umzug $m" 2026-01-01T08:00:00.000Z; done
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'" 3 \
    || fail "the seed-format missions were not planned"
[ "$(q mana_sync -c "SELECT bool_and(data ? 'nextRunAt' AND field_timestamps ? 'nextRunAt') FROM sync_changes WHERE client_id = 'mana-ai-runner'")" = t ] \
    || fail "the seed format's write-back lost nextRunAt"
wait_for_log 10 'public.sync_changes is in the seed \(field_timestamps\) sync format' || fail "the worker did not say which format it found"
echo "ok - seed format: three missions planned, nextRunAt in the record"

# ---- migrate in place while a tick waits for the LLM --------------------
mission slow "Langsam [mock:latency:4000]" 2026-01-01T08:00:00.000Z
poll_until 30 mana_sync "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND query = 'mana_ai tick: waiting for the LLM'" 1 \
    || fail "the worker never waited for the slow mission's answer"
before=$(q mana_sync -c "$users_rows")
q mana_sync >/dev/null <<'SQL'
BEGIN;
ALTER TABLE public.sync_changes RENAME COLUMN field_timestamps TO field_meta;
ALTER TABLE public.sync_changes ADD COLUMN origin text;
ALTER TABLE public.sync_changes ADD COLUMN space_id text;
CREATE INDEX sync_changes_user_space_app_created_idx
    ON public.sync_changes (user_id, space_id, app_id, created_at) WHERE space_id IS NOT NULL;
CREATE POLICY sync_changes_space_member_read ON public.sync_changes FOR SELECT
    USING (space_id IS NOT NULL
           AND space_id = ANY (string_to_array(coalesce(current_setting('app.current_user_space_ids', true), ''), ',')));
COMMIT;
SQL
[ "$(q mana_sync -c "SELECT mana_ai.sync_format()")" = current ] || fail "sync_format() did not see the migration"
[ "$(q mana_sync -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND query = 'mana_ai tick: waiting for the LLM'")" = 1 ] \
    || fail "the migration did not happen while the tick waited for the LLM (the test proves nothing)"
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'slow'" 1 \
    || fail "the slow mission was not written back after the migration"
row="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'slow'"
[ "$(q mana_sync -c "SELECT data - 'iterations' = '{}' AND field_meta - 'iterations' = '{}' AND field_meta ? 'iterations' AND origin = 'agent' $row")" = t ] \
    || fail "the write-back after the migration is not in the current format: $(q mana_sync -c "SELECT data - 'iterations', field_meta, origin $row")"
[ "$(q mana_sync -c "SELECT planned_slot = '2026-01-01T08:00:00Z' AND mana_ai.iso_timestamp(next_slot) > now() FROM mana_ai.mission_slots WHERE mission_id = 'slow'")" = t ] \
    || fail "the slot state of the slow mission is wrong"
wait_for_log 10 'public.sync_changes is in the current \(field_meta\) sync format' || fail "the worker did not notice the migration"
echo "ok - migrated while a tick waited for the LLM: its write-back follows the new format"

# ---- nothing lost, nothing planned twice ---------------------------------
wait_ticks() {
    local from
    from=$(q mana_sync -c "SELECT coalesce(max(id), 0) FROM mana_ai.tick_runs")
    poll_until 30 mana_sync "SELECT count(*) >= $1 FROM mana_ai.tick_runs WHERE id > $from AND status = 'ok'" t \
        || fail "the worker stopped ticking"
}
wait_ticks 3
[ "$(q mana_sync -c "$users_rows")" = "$before" ] || fail "users' rows changed across the migration"
[ "$(runner)" = 4 ] || fail "$(runner) runner rows after the migration, wanted 4: a slot was planned twice"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_snapshots s WHERE s.record IS DISTINCT FROM
      (SELECT mana_ai.lww_merge(record_id, op, data, field_meta, created_at ORDER BY created_at, id)
         FROM sync_changes c WHERE c.user_id = s.user_id AND c.record_id = s.mission_id AND c.table_name = 'aiMissions')")" = 0 ] \
    || fail "a snapshot differs from a full replay of the migrated log"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.due_missions")" = 0 ] || fail "a planned mission is still due"
echo "ok - no row lost, no slot planned twice across the migration"

# ---- the current format from then on -------------------------------------
# A seed-planned mission's next slot falls due: its device moves the
# nextRunAt the seed write-back set to an earlier slot, stamped now.
q mana_sync -c "BEGIN" -c "SELECT set_config('app.current_user_id', 'u-s1', true)" \
    -c "INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
        VALUES ('ai', 'aiMissions', 's1', 'u-s1', 'update', '{\"nextRunAt\": \"2026-02-01T08:00:00.000Z\"}',
                jsonb_build_object('nextRunAt', mana_ai.iso_text(clock_timestamp())), 'web')" -c "COMMIT" >/dev/null
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 's1'" 2 \
    || fail "s1's new slot was not planned"
[ "$(q mana_sync -c "SELECT data - 'iterations' = '{}' AND origin = 'agent' AND jsonb_array_length(data -> 'iterations') = 2
                     FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 's1' ORDER BY created_at DESC LIMIT 1")" = t ] \
    || fail "s1's second iteration is not a current-format row keeping the first"
# Without a browser: mana_ai's own next slot falls due (moved into the
# past here instead of waiting an hour) and is planned exactly once.
q mana_sync -c "UPDATE mana_ai.mission_slots SET next_slot = '2026-03-01T08:00:00.000Z' WHERE mission_id = 'slow'" >/dev/null
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'slow'" 2 \
    || fail "mana_ai's own next slot was not planned"
wait_ticks 3
[ "$(runner slow)" = 2 ] || fail "the slow mission's own slot was planned $(runner slow) times"
[ "$(runner s1)" = 2 ] || fail "s1 was planned $(runner s1) times"
[ "$(q mana_sync -c "SELECT planned_slot = '2026-03-01T08:00:00Z' AND mana_ai.iso_timestamp(next_slot) > now() FROM mana_ai.mission_slots WHERE mission_id = 'slow'")" = t ] \
    || fail "the slot state did not advance past the planned slot"
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND created_at > (SELECT min(created_at) FROM sync_changes WHERE record_id = 'slow' AND client_id = 'mana-ai-runner') AND (data ? 'nextRunAt' OR data ? 'updatedAt')")" = 0 ] \
    || fail "a write after the migration carries nextRunAt or updatedAt"
echo "ok - after the migration: every write in the current format, the next slot in mana_ai's state, each slot planned once"

# ---- a table of neither format --------------------------------------------
q mana_sync -c "ALTER TABLE public.sync_changes ADD COLUMN field_timestamps jsonb" >/dev/null
out=$(psql -X -qAt -d mana_sync -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "\\set VERBOSITY verbose" -c "SELECT mana_ai.sync_format()" 2>&1 || true)
case $out in *"0A000"*"matches neither sync format"*) ;; *) fail "sync_format() on neither format: $out" ;; esac
case $out in *"HINT:"*"field_timestamps"*"field_meta"*) ;; *) fail "the error's hint does not name both formats: $out" ;; esac
tick=$(psql -X -qAt -d mana_sync -c "SELECT mana_ai_tick()" 2>&1 || true)
case $tick in *"matches neither sync format"*) ;; *) fail "a SQL tick on neither format: $tick" ;; esac
wait_for_log 20 'mana_ai worker: public.sync_changes matches neither sync format' || fail "the worker did not log the format error"
pid=$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")
# Make the worker retry three more times (a reload sets its latch), each
# seen as a new state change of its backend.
for i in 1 2 3; do
    seen=$(q postgres -c "SELECT state_change FROM pg_stat_activity WHERE pid = $pid")
    q postgres -c "SELECT pg_reload_conf()" >/dev/null
    poll_until 20 postgres "SELECT state_change > '$seen' AND query = 'waiting after an error' FROM pg_stat_activity WHERE pid = $pid" t \
        || fail "the worker did not retry after a reload"
done
[ "$(log_count 'mana_ai worker: public.sync_changes matches neither sync format')" = 1 ] \
    || fail "the format error was logged $(log_count 'matches neither sync format') times, wanted once"
[ "$(q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mana_ai worker'")" = "$pid" ] \
    || fail "the worker restarted (crash loop) instead of waiting"
echo "ok - neither format: 0A000 with a hint naming both, logged once, the worker waits"

q mana_sync -c "ALTER TABLE public.sync_changes DROP COLUMN field_timestamps" >/dev/null
q postgres -c "SELECT pg_reload_conf()" >/dev/null
wait_ticks 2
[ "$(runner)" = 6 ] || fail "$(runner) runner rows after the repair, wanted 6"
echo "ok - repaired: the worker ticks again, nothing planned twice"
echo "format switch ok"
