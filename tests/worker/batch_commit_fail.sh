#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.max_attempts=3
# A write-back batch whose commit fails (issue 19): a trigger on
# sync_changes defers the constraints, and a deferred constraint trigger
# refuses m-bad's iteration only at COMMIT, so the whole batch (m-bad,
# m-ok-1, m-ok-2) is undone after every mission of it looked settled.
# Each of its missions then goes through the failure path: its attempt is
# counted (a backoff row), its tokens are counted once, its mission_runs
# row says failed in phase finalizing and claims no iteration; the tick
# closes ok and lists the error.  With one mission per batch afterwards,
# m-ok-1 and m-ok-2 are planned and m-bad ends with its failed iteration
# refused too (backoff only), never planned.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
q mana_sync <<'SQL' >/dev/null
CREATE FUNCTION public.defer_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SET CONSTRAINTS ALL DEFERRED;
    RETURN NEW;
END $$;
CREATE FUNCTION public.refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.client_id = 'mana-ai-runner' AND NEW.record_id = 'm-bad' THEN
        RAISE EXCEPTION 'm-bad refused at commit';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER a_defer_all BEFORE INSERT ON public.sync_changes FOR EACH ROW EXECUTE FUNCTION public.defer_all();
CREATE CONSTRAINT TRIGGER z_refuse_bad AFTER INSERT ON public.sync_changes
    DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION public.refuse_bad();
SQL
log_attempts
wait_worker_ticks 1
add_missions <<'X'
m-bad|u1|Wird beim Commit abgelehnt
m-ok-1|u2|Gut
m-ok-2|u3|Auch gut
X
poll_until 30 mana_sync "SELECT count(DISTINCT mission_id) FROM public.attempt_log" 3 \
    || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-400
         fail "the batch's missions did not each get an attempt counted"; }
run=$(q mana_sync -c "SELECT tick_id FROM mana_ai.mission_runs WHERE mission_id = 'm-bad' ORDER BY id LIMIT 1")
[ -n "$run" ] || fail "no mission_runs row for m-bad"
poll_until 10 mana_sync "SELECT status FROM mana_ai.tick_runs WHERE id = $run" ok || fail "the tick did not close ok"
# (later ticks retry after the 1 s backoff: count only what this run wrote)
window="FROM mana_ai.tick_runs r WHERE r.id = $run AND x.ts BETWEEN r.started_at AND r.finished_at"
attempts="SELECT string_agg(x.mission_id || ':' || x.attempts, ',' ORDER BY x.mission_id)
            FROM (SELECT mission_id, attempts, logged_at AS ts FROM public.attempt_log) x WHERE EXISTS (SELECT 1 $window)"
[ "$(q mana_sync -c "$attempts")" = "m-bad:1,m-ok-1:1,m-ok-2:1" ] || fail "attempts of run $run: $(q mana_sync -c "$attempts")"
tokens="SELECT string_agg(x.mission_id || ':' || x.tokens, ',' ORDER BY x.mission_id)
          FROM mana_ai.token_usage x WHERE EXISTS (SELECT 1 $window)"
[ "$(q mana_sync -c "$tokens")" = "m-bad:84,m-ok-1:84,m-ok-2:84" ] || fail "tokens of run $run not counted once each: $(q mana_sync -c "$tokens")"
[ "$(q mana_sync -c "SELECT string_agg(mission_id || ':' || decision || ':' || error_phase || ':' || (iteration_id IS NULL), ',' ORDER BY mission_id)
                     FROM mana_ai.mission_runs WHERE tick_id = $run")" = "m-bad:failed:finalizing:true,m-ok-1:failed:finalizing:true,m-ok-2:failed:finalizing:true" ] \
    || fail "mission_runs: $(q mana_sync -c "SELECT string_agg(mission_id || ':' || decision || ':' || coalesce(error_phase, '-'), ',') FROM mana_ai.mission_runs WHERE tick_id = $run")"
[ "$(q mana_sync -c "SELECT plans_written_back FROM mana_ai.tick_runs WHERE id = $run")" = 0 ] || fail "the run counts writes that were undone"
[ "$(q mana_sync -c "SELECT (SELECT count(*) FROM jsonb_array_elements_text(errors) e WHERE e LIKE '%did not commit%m-bad refused at commit%') FROM mana_ai.tick_runs WHERE id = $run")" -ge 1 ] \
    || fail "the run does not list the commit error: $(q mana_sync -c "SELECT errors FROM mana_ai.tick_runs WHERE id = $run" | cut -c1-300)"
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-bad'")" = 0 ] || fail "m-bad was written"
echo "failed batch: attempts counted, tokens once, history honest"

set_guc mana_ai.writeback_batch_size 1
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id LIKE 'm-ok-%'" 2 \
    || fail "m-ok-1 and m-ok-2 were not planned once in batches of their own"
poll_until 60 mana_sync "SELECT attempts >= 3 FROM mana_ai.mission_attempts WHERE mission_id = 'm-bad'" t \
    || fail "m-bad did not go on backing off: $(q mana_sync -c "SELECT attempts, last_error FROM mana_ai.mission_attempts WHERE mission_id = 'm-bad'")"
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-bad'")" = 0 ] || fail "m-bad was written"
echo "PASS batch_commit_fail"
