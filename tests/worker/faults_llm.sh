#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.max_attempts=3 -o mana_ai.llm_timeout=6000 -o mana_ai.role=mana_runner -o mana_ai.planner_protocol=json
# A faulty LLM per mission (SPEC 4.10, 8, 10), with the worker and the
# mock: in one tick one mission's connection is dropped, one gets a body
# that is not JSON, one an answer that is not a plan, one HTTP 500 (five
# times, then it recovers) and one an ordinary plan.  The tick finishes
# ok, the good mission is planned at once, each failing one backs off
# tick_interval * 2^(n-1) and is not called again before that, after
# mana_ai.max_attempts a failed iteration (SPEC 1.3) is written and the
# slot advances; the recovered one gets its normal plan and its attempts
# row goes.  Metrics count every failure; the bearer key leaks nowhere.
# llm_timeout 6 s: the client's five tries per call (backoff 0.25..2 s)
# always fit, so a 500 mission fails exactly one tick.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
log_attempts
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
use_llm_key
wait_worker_ticks 2

add_missions <<'EOF'
m-ok|u-ok|Eine ruhige Woche
m-down|u-down|Verbindung bricht ab [mock:down]
m-garbage|u-garbage|Antwort ist kein JSON [mock:garbage]
m-noplan|u-noplan|Antwort ist kein Plan [mock:no-plan]
m-flaky|u-flaky|Erst Fehler, dann gut [mock:fail-n-then-ok:5]
EOF

runner_rows="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
settled="SELECT ($runner_rows) = 5 AND NOT EXISTS (SELECT FROM mana_ai.mission_attempts)"
poll_until 90 mana_sync "$settled" t || {
    q mana_sync -c "SELECT id, status, due_missions, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 5" | cut -c1-400
    q mana_sync -c "SELECT * FROM mana_ai.mission_attempts"
    fail "the missions did not settle (5 write-backs, no attempts left)"; }
echo "settled: 2 plans, 3 failed iterations"

# --- the first tick that saw the missions ---------------------------------
first=$(q mana_sync -c "SELECT min(id) FROM mana_ai.tick_runs WHERE due_missions = 5")
[ -n "$first" ] || fail "no tick saw the five missions"
row() { q mana_sync -c "SELECT $1 FROM mana_ai.tick_runs WHERE id = $first"; }
[ "$(row "status || '|' || source || '|' || (finished_at IS NOT NULL)")" = "ok|worker|true" ] \
    || fail "first tick: $(row "status || ' ' || source")"
[ "$(row "plans_produced || '|' || plans_written_back || '|' || parse_failures")" = "1|1|1" ] \
    || fail "first tick counts: $(row "plans_produced || '|' || plans_written_back || '|' || parse_failures")"
[ "$(row "result -> 'errors' = errors AND (result ->> 'tickRunId')::bigint = id")" = t ] || fail "first tick result"
expect_error() {
    [ "$(row "(SELECT count(*) FROM jsonb_array_elements_text(errors) e WHERE e LIKE '$1')")" = 1 ] \
        || fail "first tick: no error like '$1' in $(row errors)"
}
expect_error 'mission m-down: calling-llm: connection dropped%'
expect_error 'mission m-garbage: calling-llm: answer is not JSON'
expect_error 'mission m-noplan: parsing-response: %'
expect_error 'mission m-flaky: calling-llm: HTTP 500%'
[ "$(row "jsonb_array_length(errors)")" = 4 ] || fail "first tick errors: $(row errors)"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE status <> 'ok' AND NOT (status = 'running' AND id = (SELECT max(id) FROM mana_ai.tick_runs))")" = 0 ] \
    || fail "a tick did not finish ok: $(q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs WHERE status <> 'ok' AND NOT (status = 'running' AND id = (SELECT max(id) FROM mana_ai.tick_runs))")"
echo "every tick finished ok; the first planned m-ok and listed the four failures"

# --- the good mission: planned in that very tick, once ---------------------
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-ok'")" = 1 ] \
    || fail "m-ok was not planned exactly once"
[ "$(q mana_sync -c "SELECT data -> 'iterations' -> 0 ->> 'overallStatus' FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-ok'")" = awaiting-review ] \
    || fail "m-ok has no normal plan"
[ "$(q mana_sync -c "SELECT count(*) FROM public.attempt_log WHERE mission_id = 'm-ok'")" = 0 ] || fail "m-ok was counted as failing"

# --- backoff: attempts 1 and 2, then the failed iteration --------------------
for m in m-down m-garbage m-noplan; do
    [ "$(q mana_sync -c "SELECT string_agg(attempts || ':' || extract(epoch FROM next_attempt_at - updated_at)::numeric(10,3), ',' ORDER BY logged_at)
                          FROM public.attempt_log WHERE mission_id = '$m'")" = "1:1.000,2:2.000" ] \
        || fail "$m backoff: $(q mana_sync -c "SELECT string_agg(attempts || ' ' || (next_attempt_at - updated_at), ', ' ORDER BY logged_at) FROM public.attempt_log WHERE mission_id = '$m'")"
    # The next try (attempt 2's write, then the failed iteration's) only after the backoff.
    [ "$(q mana_sync -c "WITH a AS (SELECT attempts, next_attempt_at, logged_at FROM public.attempt_log WHERE mission_id = '$m'),
                              f AS (SELECT created_at FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$m')
                         SELECT (SELECT a2.logged_at >= a1.next_attempt_at FROM a a1, a a2 WHERE a1.attempts = 1 AND a2.attempts = 2)
                            AND (SELECT f.created_at >= a2.next_attempt_at FROM a a2, f WHERE a2.attempts = 2)")" = t ] \
        || fail "$m was tried again before its backoff ran out"
done
echo "m-down, m-garbage, m-noplan: attempts 1 and 2 backed off 1 s and 2 s, the third wrote a failed iteration"

# The LLM's side: no request for a mission while it backs off (between
# an attempt's write and its next_attempt_at), and one call per attempt.
for m in m-down m-garbage m-noplan m-flaky; do
    marker=$(q mana_sync -c "SELECT substring(data ->> 'objective' from '\[mock:[^]]*\]') FROM sync_changes WHERE record_id = '$m' AND client_id = 'web'")
    calls=$(mock_calls "$marker" | awk '{print $1}' | paste -sd, -)
    [ -n "$calls" ] || fail "$m: the LLM got no call"
    early=$(q mana_sync -c "SELECT count(*) FROM unnest(string_to_array('$calls', ',')) x, public.attempt_log a
                             WHERE a.mission_id = '$m' AND to_timestamp(x::float8) >= a.logged_at
                               AND to_timestamp(x::float8) < a.next_attempt_at")
    [ "$early" = 0 ] || fail "$m: $early LLM request(s) while it was backing off"
done
for m in garbage no-plan; do
    [ "$(mock_calls "[mock:$m]" | grep -c .)" = 3 ] || fail "[mock:$m]: the LLM got $(mock_calls "[mock:$m]" | grep -c .) calls, wanted 3 (one per attempt)"
done
# Ticks did run while the missions waited (so the waiting was the backoff,
# not a slow worker): some tick skipped one of them between its first
# attempt and its failed iteration.  (With the streamed write-back an
# attempt is written as soon as its call ends, so a tick held up by
# m-flaky's and m-down's retries can outlast a 1 s or 2 s backoff: which
# of the three a tick skips depends on the machine's pace.)
[ "$(q mana_sync -c "SELECT count(*) >= 1 FROM mana_ai.tick_runs r, unnest(ARRAY['m-down', 'm-garbage', 'm-noplan']) m
                      WHERE r.source = 'worker' AND r.status = 'ok' AND r.due_missions >= 1
                        AND r.started_at > (SELECT logged_at FROM public.attempt_log WHERE mission_id = m AND attempts = 1)
                        AND r.finished_at < (SELECT created_at FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = m)
                        AND NOT r.errors::text LIKE '%' || m || '%'")" = t ] \
    || fail "no tick skipped m-down, m-garbage or m-noplan while it backed off"
echo "the LLM got one call per attempt, never before the backoff ran out, while ticks went on"

# --- the failed iterations (SPEC 1.3, 4.10) -----------------------------------
failed() {
    local m=$1 name=$2 phase=$3 message=$4 sql
    sql="SELECT data -> 'iterations' -> 0 FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$m'"
    check() { [ "$(q mana_sync -c "SELECT ($1) FROM ($sql) i(it)")" = t ] || fail "$m failed iteration: $1 in $(q mana_sync -c "$sql")"; }
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(it) k) = '{errorDetails,finishedAt,id,overallStatus,plan,source,startedAt,summary}'"
    check "it ->> 'overallStatus' = 'failed' AND it ->> 'source' = 'server' AND it -> 'plan' = '[]'"
    check "it -> 'errorDetails' ->> 'name' = '$name' AND it -> 'errorDetails' ->> 'phase' = '$phase'"
    check "it -> 'errorDetails' ->> 'message' LIKE '$message' AND it ->> 'summary' = it -> 'errorDetails' ->> 'message'"
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(it -> 'errorDetails') k) = '{message,name,phase}'"
    check "(it ->> 'id') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\$'"
    local r="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$m'"
    # the next slot: in the record (seed format) or in mana_ai's slot state (current)
    local advanced="mana_ai.iso_timestamp(data ->> 'nextRunAt') - mana_ai.iso_timestamp(data ->> 'updatedAt') = interval '60 min'"
    [ "$FORMAT" = seed ] || advanced="data - 'iterations' = '{}' AND (SELECT mana_ai.iso_timestamp(p.next_slot) FROM mana_ai.mission_slots p
        WHERE p.mission_id = '$m') - mana_ai.iso_timestamp(field_meta ->> 'iterations') = interval '60 min'"
    [ "$(q mana_sync -c "SELECT op = 'update' AND jsonb_array_length(data -> 'iterations') = 1
                               AND $advanced
                               AND actor ->> 'principalId' = 'legacy:ai-default' AND actor ->> 'iterationId' = data -> 'iterations' -> 0 ->> 'id' $r")" = t ] \
        || fail "$m failed row: $(q mana_sync -c "SELECT data, actor $r")"
}
failed m-down LlmError calling-llm 'connection dropped%'
failed m-garbage LlmError calling-llm 'answer is not JSON'
failed m-noplan ParseError parsing-response '_%'
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.due_missions WHERE mission_id IN ('m-down', 'm-garbage', 'm-noplan')")" = 0 ] \
    || fail "a mission with a failed iteration is still due"
echo "failed iterations have the SPEC 1.3 shape and nextRunAt advanced"

# --- the one that recovered ---------------------------------------------------
[ "$(q mana_sync -c "SELECT string_agg(attempts || ':' || (last_error LIKE 'HTTP 500%'), ',') FROM public.attempt_log WHERE mission_id = 'm-flaky'")" = "1:true" ] \
    || fail "m-flaky attempts: $(q mana_sync -c "SELECT attempts, last_error FROM public.attempt_log WHERE mission_id = 'm-flaky'")"
[ "$(q mana_sync -c "SELECT count(*) || '|' || min(data -> 'iterations' -> 0 ->> 'overallStatus') || '|' || min(jsonb_array_length(data -> 'iterations' -> 0 -> 'plan'))
                      FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-flaky'")" = "1|awaiting-review|1" ] \
    || fail "m-flaky did not get its normal plan"
[ "$(mock_calls '[mock:fail-n-then-ok:5]' | awk '{print $2}' | paste -sd' ' -)" = "500 500 500 500 500 200" ] \
    || fail "m-flaky calls: $(mock_calls '[mock:fail-n-then-ok:5]' | awk '{print $2}' | paste -sd' ' -)"
echo "m-flaky: five 500s in one call, one backoff, then its plan; attempts row cleared"

# --- metrics (SPEC 10) --------------------------------------------------------
metric() { q mana_sync -c "SELECT value FROM mana_ai.metrics WHERE name = '$1' AND labels = '{}'"; }
[ "$(metric mana_ai_mission_errors_total)" = 10 ] || fail "mission errors: $(metric mana_ai_mission_errors_total), wanted 3+3+3+1"
[ "$(metric mana_ai_parse_failures_total)" = 3 ] || fail "parse failures: $(metric mana_ai_parse_failures_total)"
[ "$(q mana_sync -c "SELECT sum(parse_failures) FROM mana_ai.tick_runs")" = 3 ] || fail "tick_runs parse failures"
[ "$(metric mana_ai_plans_produced_total)" = 2 ] || fail "plans produced: $(metric mana_ai_plans_produced_total)"
[ "$(metric mana_ai_plans_written_back_total)" = 2 ] || fail "plans written back: $(metric mana_ai_plans_written_back_total)"
[ "$(metric mana_ai_planner_request_duration_seconds_count)" = 12 ] \
    || fail "planner calls observed: $(metric mana_ai_planner_request_duration_seconds_count), wanted 1+3+3+3+2"
q mana_sync -c "SELECT mana_ai.metrics_prometheus()" | grep -x 'mana_ai_mission_errors_total 10' >/dev/null || fail "prometheus mission errors"
echo "metrics: 10 mission errors, 3 parse failures, 2 plans, 12 planner calls"

assert_no_key
[ "$(log_count 'terminated by signal')" = 0 ] || fail "a process crashed"
echo "the bearer key was sent on every call and is nowhere else"
