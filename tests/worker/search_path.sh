#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.enabled=off
# search_path hijacking (CVE-2018-1058 style).  A role with CREATE on
# schema public plants public.now(), public.unnest(text[]),
# public.jsonb_build_object(VARIADIC text[]) and an operator
# public.->>(jsonb, text), each of which records its call in a table and
# then does what the built-in does.  Then:
#  1. the traps work: a plain query under search_path = public, pg_catalog
#     calls them (so the test can fail);
#  2. a session with that search_path runs every SQL entry point that runs
#     SQL inside (refresh_snapshots, replay_record, build_prompt,
#     resolve_inputs, render_prompt, parse_plan, parse_plan_for,
#     audit_decrypt, decrypt_input, mana_ai_tick): no trap is called, and
#     the tick plans and writes back its mission;
#  3. with ALTER DATABASE ... SET search_path = public, pg_catalog (what
#     the worker's connection picks up) the worker plans and writes back a
#     mission and retention runs: no trap is called.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

# The test's own sessions resolve built-ins first; the victims put public first.
export PGOPTIONS="-c search_path=pg_catalog,public"
victim() { PGOPTIONS="-c search_path=public,pg_catalog" q mana_sync "$@"; }
calls() { q mana_sync -c "SELECT count(*) FROM public.hijack_log"; }
show_calls() { q mana_sync -c "SELECT fn, who, pid FROM public.hijack_log ORDER BY at LIMIT 20"; }

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" -c "CREATE ROLE mallory LOGIN" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"
q mana_sync -c "GRANT CREATE ON SCHEMA public TO mallory" >/dev/null

# mallory's traps.  The recorder is SECURITY DEFINER, so whoever falls
# into a trap can write the evidence.
q mana_sync >/dev/null <<'SQL'
SET ROLE mallory;
CREATE TABLE public.hijack_log (fn text, who name, pid int, at timestamptz DEFAULT pg_catalog.clock_timestamp());
CREATE FUNCTION public.hijack_note(fn text) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS $$ INSERT INTO public.hijack_log (fn, who, pid) VALUES (fn, session_user, pg_backend_pid()) $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.hijack_note('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.hijack_note('unnest'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
CREATE FUNCTION public.jsonb_build_object(VARIADIC a text[]) RETURNS jsonb LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.hijack_note('jsonb_build_object'); RETURN pg_catalog.jsonb_object(a); END $$;
CREATE FUNCTION public.hijack_arrow(j jsonb, k text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.hijack_note('->>'); RETURN j OPERATOR(pg_catalog.->>) k; END $$;
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.hijack_arrow);
SQL

# --- 1. the traps catch a query that resolves through public first ----------
victim -c "SELECT now(), jsonb_build_object('a', 'b'), '{\"a\": 1}'::jsonb ->> 'a', (SELECT count(*) FROM unnest('{x}'::text[]))" >/dev/null
[ "$(q mana_sync -c "SELECT string_agg(DISTINCT fn, ',' ORDER BY fn) FROM public.hijack_log")" = "->>,jsonb_build_object,now,unnest" ] \
    || fail "the traps do not work: $(show_calls)"
q mana_sync -c "TRUNCATE public.hijack_log" >/dev/null

# --- 2. every SQL entry point, called with the hostile search_path -----------
add_missions <<'EOF'
m-sql|alice|Von Hand geplant
EOF
victim >/dev/null <<'SQL'
SELECT * FROM mana_ai.refresh_snapshots();
SELECT mana_ai.replay_record('alice', 'ai', 'aiMissions', 'm-sql');
SELECT mana_ai.build_prompt('alice', 'm-sql');
SELECT mana_ai.resolve_inputs('alice', 'm-sql');
SELECT mana_ai.render_prompt('{"title": "t", "objective": "o"}');
SELECT mana_ai.parse_plan('{"summary": "s", "steps": []}');
SELECT mana_ai.parse_plan_for('{"summary": "s", "steps": []}', NULL);
SELECT mana_ai.audit_decrypt('alice', 'm-sql', NULL, 'notes', 'n-1', 'ok');
SELECT mana_ai.decrypt_input('alice', 'm-sql', 'notes', 'notes', 'n-1');
SQL
[ "$(calls)" = 0 ] || fail "an SQL entry point called a planted object: $(show_calls)"
res=$(victim -c "SELECT mana_ai_tick()")
[ "$(calls)" = 0 ] || fail "mana_ai_tick() called a planted object: $(show_calls)"
[ "$(q mana_sync -c "SELECT ('$res'::jsonb ->> 'plansWrittenBack')::int")" = 1 ] || fail "the SQL tick did not write back: $res"
row="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-sql'"
[ "$(q mana_sync -c "SELECT actor ->> 'kind' || '|' || (actor ->> 'missionId') || '|' || jsonb_typeof(data -> 'iterations') $row")" = "ai|m-sql|array" ] \
    || fail "the SQL tick's row is wrong: $(q mana_sync -c "SELECT data, actor $row")"

# --- 3. the worker, with the database's default search_path hostile ----------
q postgres -c "ALTER DATABASE mana_sync SET search_path = public, pg_catalog" >/dev/null
[ "$(PGOPTIONS= q mana_sync -c "SHOW search_path")" = "public, pg_catalog" ] || fail "the database default did not take"
add_missions <<'EOF'
m-worker|bob|Vom Worker geplant
EOF
set_guc mana_ai.enabled on
poll_until 60 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-worker'" 1 \
    || fail "the worker did not plan m-worker: $(q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3")"
wait_worker_ticks 2
[ "$(calls)" = 0 ] || fail "the worker called a planted object: $(show_calls)"
[ "$(q mana_sync -c "SELECT actor ->> 'missionId' || '|' || jsonb_typeof(data -> 'iterations') FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'm-worker'")" = "m-worker|array" ] \
    || fail "the worker's row is wrong"
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs WHERE source = 'worker' AND status NOT IN ('ok', 'running')")" = 0 ] \
    || fail "a worker tick failed: $(q mana_sync -c "SELECT errors FROM mana_ai.tick_runs WHERE status = 'failed' LIMIT 1")"
echo "ok - no planted function or operator was called by the SQL entry points or the worker"
