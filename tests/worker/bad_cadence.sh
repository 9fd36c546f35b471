#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.max_attempts=3 -o mana_ai.role=mana_runner -o mana_ai.writeback_batch_time=10000
# Missions the write-back cannot finish (issue 11, "a bad cadence
# re-plans forever"), with the worker and the mock LLM:
#  - a cadence next_run_at refuses (everyMinutes 0, a cron with a minute
#    of 61) is caught before the LLM call: one failed iteration per slot,
#    phase resolving-inputs, nextRunAt cleared, and no LLM request for it;
#    given a new slot with the cadence still broken, one more; fixed, it
#    is planned normally;
#  - a write-back refused after a real LLM call (a trigger on sync_changes
#    raises for the runner's rows of two missions) counts the tokens
#    spent and backs off: the LLM gets one call per attempt, never while
#    the mission backs off, and an agent's maxTokensPerDay stops it;
#  - the other missions of the same ticks are planned, their plans
#    committed by the same batch transaction as the refused write-backs
#    (writeback_batch_time 10 s: the streamed batch fills until the last
#    call ends; the failures caught before any call are written after it).
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
log_attempts
start_mock_llm --total-tokens 42
set_guc mana_ai.llm_url "$MOCK_URL"
wait_worker_ticks 2

# The refused write-backs: deterministic, whoever writes (the runner's
# role included), for the runner's rows of m-wb-budget and m-wb-legacy.
q mana_sync <<'SQL' >/dev/null
CREATE FUNCTION public.refuse_runner_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'test: write-back of % refused', NEW.record_id;
END $$;
CREATE TRIGGER refuse_runner_row BEFORE INSERT ON public.sync_changes
    FOR EACH ROW WHEN (NEW.client_id = 'mana-ai-runner' AND NEW.record_id IN ('m-wb-budget', 'm-wb-legacy'))
    EXECUTE FUNCTION public.refuse_runner_row();
-- The agent of m-wb-budget may spend 1 token a day: one counted call
-- uses it up.
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
VALUES ('ai', 'agents', 'ag-tight', 'u-wb-budget', 'insert',
        '{"name": "Sparsam", "role": "Planer", "state": "active", "maxConcurrentMissions": 5,
          "maxTokensPerDay": 1, "createdAt": "2026-01-01T00:00:00.000Z"}', 'web');
SQL

# One transaction: the first tick that sees any of them sees them all.
q mana_sync <<'SQL' >/dev/null
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
SELECT 'ai', 'aiMissions', m.id, m.usr, 'insert',
       jsonb_build_object('title', 'Mission ' || m.id, 'objective', m.objective, 'inputs', '[]'::jsonb,
                          'cadence', m.cadence::jsonb, 'state', 'active',
                          'nextRunAt', '2026-01-01T08:00:00.000Z', 'iterations', '[]'::jsonb,
                          'createdAt', '2026-01-01T00:00:00.000Z', 'updatedAt', '2026-01-01T00:00:00.000Z')
       || CASE WHEN m.agent IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('agentId', m.agent) END,
       'web'
  FROM (VALUES
    ('m-zero', 'u-zero', 'Kadenz null [bc:zero]', '{"kind": "interval", "everyMinutes": 0}', NULL),
    ('m-cron', 'u-cron', 'Kaputtes cron [bc:cron]', '{"kind": "cron", "expression": "61 * * * *"}', NULL),
    ('m-ok', 'u-ok', 'Alles gut [bc:ok]', '{"kind": "interval", "everyMinutes": 60}', NULL),
    ('m-ok-cron', 'u-ok', 'Auch gut [bc:okcron]', '{"kind": "cron", "expression": "0 9 * * *"}', NULL),
    ('m-wb-budget', 'u-wb-budget', 'Schreiben scheitert, Budget [bc:wbbudget]', '{"kind": "interval", "everyMinutes": 60}', 'ag-tight'),
    ('m-wb-legacy', 'u-wb-legacy', 'Schreiben scheitert [bc:wblegacy]', '{"kind": "interval", "everyMinutes": 60}', NULL)
  ) AS m(id, usr, objective, cadence, agent);
SQL

runner() { q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1'"; }
calls() { mock_conversations "[bc:$1]"; }   # planner calls, in either protocol
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'" 4 \
    || fail "expected 4 write-backs (2 failed iterations, 2 plans), got $(q mana_sync -c "SELECT string_agg(record_id, ',') FROM sync_changes WHERE client_id = 'mana-ai-runner'")"
first=$(q mana_sync -c "SELECT min(id) FROM mana_ai.tick_runs WHERE due_missions = 6")
[ -n "$first" ] || fail "no tick saw the six missions"
# Let the backoffs run a while (attempts 1, 2, 3 at 1 s, 2 s, 4 s ...), ticking every second.
t_watch=$(q mana_sync -c "SELECT clock_timestamp()")
poll_until 30 mana_sync "SELECT count(*) >= 8 FROM mana_ai.tick_runs WHERE source = 'worker' AND started_at > '$t_watch' AND status = 'ok'" t \
    || fail "the worker did not go on ticking"

# --- the bad cadences: one failed iteration each, no LLM call ---------------
for m in zero cron; do
    [ "$(runner m-$m)" = 1 ] || fail "m-$m: $(runner m-$m) runner rows, wanted exactly 1"
    [ "$(calls $m)" = 0 ] || fail "m-$m: the LLM got $(calls $m) call(s) for a mission whose cadence is invalid"
    r="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-$m'"
    [ "$(q mana_sync -c "SELECT data -> 'iterations' -> 0 ->> 'overallStatus' || '|' || (data -> 'iterations' -> 0 -> 'errorDetails' ->> 'phase')
                               || '|' || (data -> 'iterations' -> 0 -> 'errorDetails' ->> 'name') $r")" = "failed|resolving-inputs|CadenceError" ] \
        || fail "m-$m iteration: $(q mana_sync -c "SELECT data -> 'iterations' $r")"
    if [ "$FORMAT" = seed ]; then
        [ "$(q mana_sync -c "SELECT data -> 'nextRunAt' = 'null' AND field_timestamps ? 'nextRunAt' $r")" = t ] \
            || fail "m-$m: nextRunAt not cleared: $(q mana_sync -c "SELECT data -> 'nextRunAt' $r")"
        [ "$(q mana_sync -c "SELECT mana_ai.replay_record('u-$m', 'ai', 'aiMissions', 'm-$m') -> 'nextRunAt'")" = null ] \
            || fail "m-$m: the merged record still has a nextRunAt"
    else
        # current: no next slot in mana_ai's own state, nothing but iterations written
        [ "$(q mana_sync -c "SELECT next_slot IS NULL FROM mana_ai.mission_slots WHERE mission_id = 'm-$m'")" = t ] \
            || fail "m-$m: the slot state still has a next slot"
        [ "$(q mana_sync -c "SELECT data - 'iterations' = '{}' $r")" = t ] || fail "m-$m: more than iterations written"
    fi
done
msg() { q mana_sync -c "SELECT data -> 'iterations' -> 0 -> 'errorDetails' ->> 'message' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1'"; }
[[ "$(msg m-zero)" == 'invalid cadence: interval cadence field "everyMinutes" is out of range'* ]] || fail "m-zero message: $(msg m-zero)"
[[ "$(msg m-cron)" == 'invalid cadence: invalid cron expression "61 * * * *"'* ]] || fail "m-cron message: $(msg m-cron)"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_attempts WHERE mission_id IN ('m-zero', 'm-cron')")" = 0 ] \
    || fail "a bad cadence left a backoff row behind"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE id = $first AND errors::text LIKE '%mission m-zero: resolving-inputs: invalid cadence%'")" = 1 ] \
    || fail "the first tick did not report m-zero: $(q mana_sync -c "SELECT errors FROM mana_ai.tick_runs WHERE id = $first")"
echo "bad cadences: one failed iteration each (resolving-inputs, nextRunAt cleared), no LLM call"

# --- the good ones, in the same tick ------------------------------------------
for m in m-ok m-ok-cron; do
    [ "$(q mana_sync -c "SELECT count(*) || '|' || min(data -> 'iterations' -> 0 ->> 'overallStatus') FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$m'")" = "1|awaiting-review" ] \
        || fail "$m was not planned once"
done
[ "$(q mana_sync -c "SELECT plans_written_back FROM mana_ai.tick_runs WHERE id = $first")" = 2 ] || fail "the first tick did not plan m-ok and m-ok-cron"
# One streamed batch (writeback_batch_size 32, writeback_batch_time 10 s)
# held the four missions that called the LLM: the plans of m-ok and
# m-ok-cron were committed by one transaction, which the refused
# write-backs of the same batch did not undo; the bad cadences' failed
# iterations make the tick's four rows.
[ "$(q mana_sync -c "SELECT count(DISTINCT created_at) FILTER (WHERE record_id IN ('m-ok', 'm-ok-cron')) || '|' || count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'")" = "1|4" ] \
    || fail "the first tick's write-backs were not committed together: $(q mana_sync -c "SELECT string_agg(record_id || '@' || created_at, ', ') FROM sync_changes WHERE client_id = 'mana-ai-runner'")"
echo "m-ok and m-ok-cron planned in that tick, in one batch with the failed iterations"

# --- refused write-backs: tokens counted, backed off --------------------------
tokens() { q mana_sync -c "SELECT coalesce(sum(tokens), 0) || '|' || count(*) FROM mana_ai.token_usage WHERE mission_id = '$1'"; }
# m-wb-budget: its one call is counted against the agent, which then stops it.
[ "$(calls wbbudget)" = 1 ] || fail "m-wb-budget: $(calls wbbudget) LLM calls, wanted 1 (then skipped-budget)"
[ "$(tokens m-wb-budget)" = "42|1" ] || fail "m-wb-budget tokens: $(tokens m-wb-budget), wanted 42|1"
[ "$(q mana_sync -c "SELECT agent_id FROM mana_ai.token_usage WHERE mission_id = 'm-wb-budget'")" = ag-tight ] || fail "m-wb-budget tokens not on its agent"
[ "$(q mana_sync -c "SELECT value >= 1 FROM mana_ai.metrics WHERE name = 'mana_ai_agent_decisions_total' AND labels ->> 'decision' = 'skipped-budget'")" = t ] \
    || fail "no skipped-budget decision counted"
# m-wb-legacy: one call per attempt, each attempt saved with its backoff
# and its tokens; no call while it backs off; far fewer calls than ticks.
# Pause the worker between two ticks first, so the calls, token rows and
# attempts below are counted at one moment (a tools-protocol call has two
# rounds: its tokens land a round after its first request).
set_guc mana_ai.enabled off
poll_until 60 mana_sync "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mana_ai worker' AND query LIKE 'paused%'" 1 \
    || fail "the worker did not pause"
n=$(calls wblegacy)
ticks=$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE id >= $first AND source = 'worker' AND status = 'ok'")
[ "$n" -ge 3 ] || fail "m-wb-legacy: only $n LLM calls; the backoff should have allowed 3 or more"
[ "$n" -le $((ticks / 2)) ] || fail "m-wb-legacy: $n LLM calls in $ticks ticks: it is re-planned instead of backing off"
# the mock reports 42 tokens per request; a call is one round (json) or more (tools)
requests=$(mock_calls '[bc:wblegacy]' | grep -c . || true)
[ "$(tokens m-wb-legacy)" = "$((42 * requests))|$n" ] || fail "m-wb-legacy tokens: $(tokens m-wb-legacy), wanted $((42 * requests))|$n (every round counted, one row per call)"
[ "$(q mana_sync -c "SELECT count(*) FROM public.attempt_log WHERE mission_id = 'm-wb-legacy'")" = "$n" ] \
    || fail "m-wb-legacy: $n calls but $(q mana_sync -c "SELECT count(*) FROM public.attempt_log WHERE mission_id = 'm-wb-legacy'") attempts saved"
[ "$(q mana_sync -c "SELECT string_agg(attempts::text, ',' ORDER BY logged_at) FROM public.attempt_log WHERE mission_id = 'm-wb-legacy'")" = "$(seq -s, 1 "$n")" ] \
    || fail "m-wb-legacy attempts: $(q mana_sync -c "SELECT string_agg(attempts::text, ',' ORDER BY logged_at) FROM public.attempt_log WHERE mission_id = 'm-wb-legacy'")"
[ "$(q mana_sync -c "SELECT bool_and(last_error LIKE 'test: write-back of m-wb-legacy refused%') FROM public.attempt_log WHERE mission_id = 'm-wb-legacy'")" = t ] \
    || fail "m-wb-legacy backoff reason: $(q mana_sync -c "SELECT last_error FROM public.attempt_log WHERE mission_id = 'm-wb-legacy'")"
early=$(q mana_sync -c "SELECT count(*) FROM unnest(string_to_array('$(mock_calls '[bc:wblegacy]' | awk '{print $1}' | paste -sd, -)', ',')) x, public.attempt_log a
                         WHERE a.mission_id = 'm-wb-legacy' AND to_timestamp(x::float8) >= a.logged_at AND to_timestamp(x::float8) < a.next_attempt_at")
[ "$early" = 0 ] || fail "m-wb-legacy: $early LLM request(s) while it was backing off"
[ "$(runner m-wb-budget)$(runner m-wb-legacy)" = 00 ] || fail "a refused write-back was written"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE id = $first AND errors::text LIKE '%mission m-wb-legacy: finalizing: test: write-back of m-wb-legacy refused%'")" = 1 ] \
    || fail "the first tick did not report the refused write-back: $(q mana_sync -c "SELECT errors FROM mana_ai.tick_runs WHERE id = $first")"
echo "refused write-backs: tokens counted ($(tokens m-wb-legacy) for m-wb-legacy), $n calls in $ticks ticks, m-wb-budget stopped by its budget"
set_guc mana_ai.enabled on

# --- once per slot: a new slot with the cadence still broken, then fixed ------
reslot() {   # reslot MISSION USER DATA-JSON
    q mana_sync -c "INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
                    VALUES ('ai', 'aiMissions', '$1', '$2', 'update', '$3'::jsonb, 'web')" >/dev/null
}
reslot m-zero u-zero '{"nextRunAt": "2026-01-02T08:00:00.000Z"}'
poll_until 20 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-zero'" 2 \
    || fail "m-zero's new slot got no failed iteration"
wait_worker_ticks 3
[ "$(runner m-zero)" = 2 ] || fail "m-zero: $(runner m-zero) runner rows after its second slot, wanted 2"
[ "$(calls zero)" = 0 ] || fail "m-zero: the LLM was called"
reslot m-zero u-zero '{"cadence": {"kind": "interval", "everyMinutes": 30}, "nextRunAt": "2026-01-03T08:00:00.000Z"}'
poll_until 20 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-zero'" 3 \
    || fail "m-zero with a fixed cadence was not planned"
r="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-zero' ORDER BY created_at DESC, id DESC LIMIT 1"
next="mana_ai.iso_timestamp(data ->> 'nextRunAt') - mana_ai.iso_timestamp(data ->> 'updatedAt')"
[ "$FORMAT" = seed ] || next="(SELECT mana_ai.iso_timestamp(p.next_slot) FROM mana_ai.mission_slots p WHERE p.mission_id = 'm-zero') - mana_ai.iso_timestamp(field_meta ->> 'iterations')"
[ "$(q mana_sync -c "SELECT (data -> 'iterations' -> -1 ->> 'overallStatus') || '|' || ($next) $r")" = "awaiting-review|00:30:00" ] \
    || fail "m-zero fixed: $(q mana_sync -c "SELECT data $r")"
[ "$(calls zero)" = 1 ] || fail "m-zero fixed: $(calls zero) LLM calls, wanted 1"
echo "m-zero: a second failed iteration for its second slot, then planned once its cadence was fixed"

[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status NOT IN ('ok', 'running')")" = 0 ] || fail "a tick did not finish ok"
[ "$(log_count 'terminated by signal')" = 0 ] || fail "a process crashed"
