#!/usr/bin/env bash
# demo_story.sh: the story make demo tells, inside a running cluster that
# preloads mana_ai with the worker paused (mana_ai.enabled = off) and
# mana_ai.role = mana_runner (tests/demo.sh starts that cluster;
# tests/worker/demo_story.sh runs this in its own one and checks it).
#
# It loads the whole world first (the realistic fixture, tick_world.sql's
# users and alice's gated missions, the grant mission), then lets the
# worker tick until a tick plans nothing new, pauses it again, and only
# then prints: every table below is read from a database no tick changes
# while it is printed, so the tables agree with each other.  Then it
# answers four questions, each from the tables that hold the answer:
#   1. what did the worker plan, for whom, with which tools?
#   2. why did the other missions not run?
#   3. what did the grant decrypt?
#   4. what do the metrics say?
# A question whose query prints no row fails the demo (ask): an empty
# answer is a broken story, never a quiet one.
# Owns nothing but the cluster it is given; never prints a key.
set -euo pipefail
source tests/lib/common.sh

db=mana_sync
# ask: run the SQL on stdin (one psql session, so a temporary view made in
# it serves the queries after it), print it, fail on an empty answer.
ask() {
    local out
    out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f -) || fail "a demo query failed"
    printf '%s\n' "$out"
    if grep -q '^(0 rows)$' <<< "$out"; then fail "the demo's answer above is empty"; fi
}

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
[ "$(q postgres -c "SHOW mana_ai.enabled")" = off ] || fail "start the cluster with -o mana_ai.enabled=off"

echo "mana_ai runs Mana's AI missions inside PostgreSQL: a background worker reads the sync"
echo "server's event log (sync_changes), folds it into each user's missions and agents, and every"
echo "tick plans the missions that are due: it asks an LLM (here a mock on loopback) for steps and"
echo "writes them back into sync_changes as a new iteration, whose steps the web app executes at once."
echo
echo "== 1. the world: loaded while the worker is paused (mana_ai.enabled = off)"
echo "   tests/fixtures/demo_data.sql (five users' history, as the web app wrote it),"
echo "   tests/fixtures/tick_world.sql (100 users with one due mission each; alice with missions"
echo "   that must not run), and a mission with a grant to encrypted inputs (tests/lib/demo_grant.sh)"
# demo_data.sql carries its history with explicit created_at values, so it
# is loaded before CREATE EXTENSION (the first refresh reads it all).
q postgres -c "CREATE DATABASE $db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $db -f tests/fixtures/sync_changes.sql >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d $db -f tests/fixtures/demo_data.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "CREATE EXTENSION mana_ai"
psql -X -q -v ON_ERROR_STOP=1 -d $db -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm --latency "${DEMO_LLM_LATENCY_MS:-200}"
DEMO_KEYS=$(mktemp -d)
trap 'kill $MOCK_PID 2>/dev/null; rm -rf "$DEMO_KEYS"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
bash tests/lib/demo_grant.sh setup "$DEMO_KEYS"
psql -X -q -v ON_ERROR_STOP=1 -d $db -f tests/fixtures/tick_world.sql >/dev/null
format=$(q $db -c "SELECT mana_ai.sync_format()")
echo "   the sync format mana_ai found: $format$([ "$format" = seed ] || echo " (FORMAT=seed make demo shows the seed one)")"
ask <<'SQL'
SELECT app_id, table_name, count(*) AS rows, count(DISTINCT user_id) AS users
  FROM sync_changes GROUP BY 1, 2 ORDER BY 1, 2;
SQL

echo "== 2. the worker runs (every 2 s): ALTER SYSTEM SET mana_ai.enabled = on; SELECT pg_reload_conf()"
set_guc mana_ai.enabled on
# Quiet: a finished tick planned nothing, after at least one that planned.
# The tick after the last plan also folded that plan's write-back into the
# snapshots, so mana_ai.missions shows every iteration the worker wrote.
poll_until 120 $db "SELECT coalesce(bool_or(plans_produced > 0), false)
                           AND (array_agg(plans_produced ORDER BY id DESC))[1] = 0
                      FROM mana_ai.tick_runs WHERE status <> 'running'" t \
    || fail "the worker did not reach a tick that planned nothing new"
echo "   a tick planned nothing new: pausing the worker (ALTER SYSTEM SET mana_ai.enabled = off)"
set_guc mana_ai.enabled off
poll_until 30 $db "SELECT count(*) FROM pg_stat_activity
                    WHERE backend_type = 'mana_ai worker' AND query = 'paused (mana_ai.enabled = off)'" 1 \
    || fail "the worker did not pause"
echo "   the worker says (pg_stat_activity): paused (mana_ai.enabled = off); from here on no tick changes anything"
echo "   mana_ai.status:"
ask <<'SQL'
SELECT worker_pid IS NOT NULL AS worker_running, enabled, tick_interval,
       last_tick_started_at, last_tick_finished_at, next_tick_at, grants_configured
  FROM mana_ai.status;
SQL
echo "   the ticks it ran (mana_ai.tick_runs):"
ask <<'SQL'
SELECT id AS tick, status, due_missions, plans_produced, plans_written_back, parse_failures,
       round(extract(epoch FROM finished_at - started_at)::numeric, 2) AS seconds
  FROM mana_ai.tick_runs ORDER BY id;
SQL

echo "== 3. what did the worker plan, for whom, with which tools?"
echo "   every mission a tick ran (mana_ai.mission_runs, decision = ran), the agent that ran it"
echo "   (mana_ai.agents; none: the user's default agent Mana) and the steps of the iteration it"
echo "   wrote back (mana_ai.mission_snapshots, superuser only: the record holds the plan);"
echo "   each step, a call of one tool of mana_ai.tools, runs as soon as a device of the user takes the iteration"
echo "   (the mock LLM answers every mission alike: one create_task call, \"Mock title r1.1\";"
echo "   a real model plans from the prompt, as section 5 shows one)"
ask <<'SQL'
CREATE TEMP VIEW planned AS
SELECT r.tick_id AS tick, r.user_id AS "for whom", m.title AS mission,
       coalesce(a.name, 'Mana (default)') AS agent,
       it ->> 'overallStatus' AS iteration,
       (SELECT string_agg(st -> 'intent' ->> 'toolName'
                          || coalesce(' "' || (st -> 'intent' -> 'params' ->> 'title') || '"', ''),
                          ', ' ORDER BY n)
          FROM jsonb_array_elements(it -> 'plan') WITH ORDINALITY p(st, n)) AS "steps (tool and title)",
       r.tokens AS "tokens (LLM usage)"
  FROM mana_ai.mission_runs r
  JOIN mana_ai.missions m USING (user_id, mission_id)
  JOIN mana_ai.mission_snapshots s USING (user_id, mission_id)
  CROSS JOIN LATERAL (SELECT i FROM jsonb_array_elements(s.record -> 'iterations') i
                       WHERE i ->> 'id' = r.iteration_id) x(it)
  LEFT JOIN mana_ai.agents a ON a.user_id = r.user_id AND a.agent_id = r.agent_id
 WHERE r.decision = 'ran';
SELECT * FROM planned WHERE "for whom" !~ '^u[0-9]{3}$' ORDER BY tick, "for whom", mission;
\echo '   and the 100 users of tick_world.sql, u001..u100, one line:'
SELECT count(*) AS missions, count(DISTINCT "for whom") AS users, agent, iteration,
       min("steps (tool and title)") AS "steps (one of them)", sum("tokens (LLM usage)") AS "tokens (LLM usage)"
  FROM planned WHERE "for whom" ~ '^u[0-9]{3}$' GROUP BY agent, iteration;
SQL

echo "== 4. why did the other missions not run?"
echo "   every mission of alice that did not run, with what each tick decided (mana_ai.mission_runs)"
echo "   and why: its agent (mana_ai.agents) or its own state and schedule (mana_ai.missions);"
echo "   a mission no tick considered was not due"
ask <<'SQL'
CREATE TEMP VIEW why AS
WITH per_decision AS (
    SELECT user_id, mission_id, decision, min(id) AS first_id, max(id) AS last_id,
           decision || ' in tick ' || string_agg(tick_id::text, ', ' ORDER BY tick_id) AS ticks
      FROM mana_ai.mission_runs GROUP BY 1, 2, 3),
runs AS (
    SELECT user_id, mission_id, string_agg(ticks, '; ' ORDER BY first_id) AS decisions,
           (array_agg(decision ORDER BY last_id DESC))[1] AS last_decision,
           bool_or(decision = 'skipped-concurrency') AS deferred
      FROM per_decision GROUP BY 1, 2),
reasons AS (
    SELECT m.user_id, m.mission_id, m.deleted_at, m.state, m.next_run_at, r.decisions,
           a.name AS agent, a.state AS agent_state, a.deleted_at AS agent_deleted_at,
           a.max_concurrent_missions, a.max_tokens_per_day,
           (SELECT coalesce(sum(u.tokens), 0) FROM mana_ai.token_usage u
             WHERE u.user_id = m.user_id AND u.agent_id = a.agent_id
               AND u.ts > now() - interval '24 hours') AS tokens_used,
           CASE
             WHEN r.last_decision = 'ran' AND r.deferred THEN 'agent busy, ran a tick later'
             WHEN r.last_decision = 'skipped-paused' THEN 'agent paused'
             WHEN r.last_decision = 'skipped-archived' THEN 'agent archived'
             WHEN r.last_decision = 'skipped-deleted' THEN 'agent deleted'
             WHEN r.last_decision = 'skipped-budget' THEN 'agent''s token budget spent'
             WHEN r.last_decision = 'skipped-concurrency' THEN 'agent busy'
             WHEN r.last_decision IN ('backing-off', 'failed') THEN 'failed, retried later'
             WHEN m.deleted THEN 'mission deleted'
             WHEN m.state <> 'active' THEN 'mission ' || m.state
             WHEN m.cadence ->> 'kind' = 'manual' AND m.next_run_at IS NULL THEN 'manual, not started'
             WHEN m.next_run_at > now() THEN 'not due yet'
             WHEN m.next_run_at IS NULL THEN 'nothing scheduled'
           END AS reason
      FROM mana_ai.missions m
      LEFT JOIN runs r USING (user_id, mission_id)
      LEFT JOIN mana_ai.agents a ON a.user_id = m.user_id AND a.agent_id = m.agent_id
     WHERE r.last_decision IS DISTINCT FROM 'ran' OR r.deferred)
SELECT user_id, mission_id, coalesce(agent, '') AS agent,
       coalesce(decisions, '(no tick considered it)') AS "what the ticks decided", reason,
       CASE reason
         WHEN 'agent busy, ran a tick later'
           THEN 'maxConcurrentMissions ' || max_concurrent_missions || ': another mission of ' || agent || ' ran first'
         WHEN 'agent busy' THEN 'maxConcurrentMissions ' || max_concurrent_missions
         WHEN 'agent paused' THEN agent || ' has state ' || agent_state
         WHEN 'agent archived' THEN agent || ' has state ' || agent_state
         WHEN 'agent deleted' THEN agent || ' has deletedAt ' || to_char(agent_deleted_at, 'YYYY-MM-DD')
         WHEN 'agent''s token budget spent'
           THEN 'maxTokensPerDay ' || max_tokens_per_day || ', used in the last 24 h ' || tokens_used
         WHEN 'mission deleted' THEN 'deletedAt ' || to_char(deleted_at, 'YYYY-MM-DD')
         WHEN 'mission ' || state THEN 'state ' || state
         WHEN 'manual, not started' THEN 'runs when the user starts it (the app then sets nextRunAt)'
         WHEN 'not due yet' THEN 'nextRunAt ' || to_char(next_run_at, 'YYYY-MM-DD HH24:MI TZ')
         ELSE ''
       END AS detail
  FROM reasons;
SELECT mission_id, agent, "what the ticks decided", reason, detail
  FROM why WHERE user_id = 'alice' ORDER BY mission_id;
\echo '   every user: the missions that did not run, by reason'
SELECT reason, count(*) AS missions, string_agg(DISTINCT user_id, ', ') AS users
  FROM why GROUP BY 1 ORDER BY 2 DESC, 1;
\echo '   still due, so the next tick considers them again (mana_ai.due_missions):'
SELECT user_id, mission_id, agent_id, next_run_at FROM mana_ai.due_missions ORDER BY user_id, mission_id;
SQL

echo "== 5. what did the grant decrypt?"
bash tests/lib/demo_grant.sh show "$DEMO_KEYS" "$MOCK_URL"

echo "== 6. what do the metrics say? (mana_ai.metrics: every counter above zero, histogram buckets left out)"
ask <<'SQL'
SELECT name, labels, value FROM mana_ai.metrics
 WHERE value > 0 AND name NOT LIKE '%\_bucket' ORDER BY name, labels::text;
SQL
echo "   the metrics agree with the tables (counted since the server started; no tick ran since the pause):"
ask <<'SQL'
SELECT 'ticks' AS what, (SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_ticks_total')::bigint AS metrics,
       (SELECT count(*) FROM mana_ai.tick_runs) AS tables, 'mana_ai.tick_runs rows' AS "from"
UNION ALL
SELECT 'plans written back', (SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_plans_written_back_total')::bigint,
       (SELECT sum(plans_written_back) FROM mana_ai.tick_runs), 'sum of mana_ai.tick_runs.plans_written_back'
UNION ALL
SELECT 'decisions: ran', (SELECT value FROM mana_ai.metrics WHERE name = 'mana_ai_agent_decisions_total'
                                                            AND labels ->> 'decision' = 'ran')::bigint,
       (SELECT count(*) FROM mana_ai.mission_runs r
          JOIN mana_ai.missions m USING (user_id, mission_id)
          JOIN mana_ai.agents a ON a.user_id = m.user_id AND a.agent_id = m.agent_id
         WHERE r.decision = 'ran'),
       'mana_ai.mission_runs ran, of missions naming an existing agent (the gates count those)'
UNION ALL
SELECT 'decrypts', (SELECT sum(value) FROM mana_ai.metrics WHERE name = 'mana_ai_decrypts_total')::bigint,
       (SELECT count(*) FROM mana_ai.decrypt_audit WHERE status = 'ok'), 'mana_ai.decrypt_audit ok rows';
SQL
echo "   (mana_ai_llm_tokens_total counts request and answer bytes / 4, what a provider's limits"
echo "   count; the tokens of section 3 are the usage the LLM reported, 42 a round from the mock)"
echo "   the same as Prometheus text (SELECT mana_ai.metrics_prometheus(); docs/monitoring/queries.yaml"
echo "   exports it through postgres_exporter), without the # TYPE lines and histogram buckets:"
q $db -c "SELECT mana_ai.metrics_prometheus()" | grep -v -e '^# TYPE' -e '_bucket{' | sed 's/^/   | /'
