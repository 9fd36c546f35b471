#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.planner_max_rounds=4 -o mana_ai.max_attempts=10
# The tools protocol end to end with the worker and the mock LLM: two and
# three rounds, an invalid call then its correction, several calls in one
# message, an unknown tool, a model that never stops (max rounds), no call
# at all, and never a valid call.  The written rows keep exactly the shape
# of SPEC 1.3/1.4 (the web app must not notice the protocol changed): every
# step has its rationale and a summary made from it, the iteration names
# the model.  Tokens of every round count; the metrics say what happened;
# build_prompt shows the functions; switching to json still plans.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
set_guc mana_ai.llm_url "$MOCK_URL"

add_missions <<'EOF'
t-two|u1|Zwei Runden
t-three|u2|Drei Runden [mock:tools-rounds:3]
t-fix|u3|Erst falsch [mock:tools-invalid-then-fix]
t-multi|u4|Drei auf einmal [mock:tools-multi:3]
t-unknown|u5|Unbekannt [mock:tools-unknown]
t-never|u6|Hoert nie auf [mock:tools-never-stop]
t-none|u7|Nichts zu tun [mock:tools-none]
t-bad|u8|Nie gueltig [mock:tools-never-stop-invalid]
EOF

written="SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner'"
poll_until 60 mana_sync "$written" 7 \
    || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-600; fail "expected 7 write-backs"; }
poll_until 30 mana_sync "SELECT count(*) FROM mana_ai.mission_attempts WHERE mission_id = 't-bad'" 1 \
    || fail "the mission without a valid call was not counted as a failed attempt"

it() { echo "(SELECT data -> 'iterations' -> 0 FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$1')"; }
check() { [ "$(q mana_sync -c "SELECT $1")" = t ] || fail "$2"; }

# --- the exact shape of every written row (SPEC 1.3, 1.4, 4.8) -------------
declare -A objective=([t-two]="Zwei Runden" [t-three]="Drei Runden [mock:tools-rounds:3]"
    [t-fix]="Erst falsch [mock:tools-invalid-then-fix]" [t-multi]="Drei auf einmal [mock:tools-multi:3]"
    [t-unknown]="Unbekannt [mock:tools-unknown]" [t-never]="Hoert nie auf [mock:tools-never-stop]"
    [t-none]="Nichts zu tun [mock:tools-none]")
for m in "${!objective[@]}"; do
    row="FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = '$m'"
    check "op = 'update' AND app_id = 'ai' AND table_name = 'aiMissions' AND schema_version = 1 $row" "$m: row columns"
    # seed (SPEC 4.8): iterations and the next slot; current (SPEC 11.2): iterations alone
    keys='{iterations,nextRunAt,updatedAt}'
    [ "$FORMAT" = seed ] || keys='{iterations}'
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(data) k) = '$keys' $row" "$m: data keys"
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys($STAMPS) k) = '$keys' $row" "$m: stamps"
    [ "$FORMAT" = seed ] || check "origin = 'agent' $row" "$m: origin"
    check "actor = jsonb_build_object('kind', 'ai', 'principalId', 'legacy:ai-default', 'displayName', 'Mana',
                                      'missionId', '$m', 'iterationId', data -> 'iterations' -> 0 ->> 'id',
                                      'rationale', '${objective[$m]}') $row" \
        "$m: actor is SPEC 1.4's, exactly"
    check "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys($(it $m)) k)
             = '{finishedAt,id,model,overallStatus,plan,source,startedAt,summary}'" \
        "$m: iteration keys are SPEC 1.3's plus model"
    check "$(it $m) ->> 'model' = 'gpt-4o-mini' AND $(it $m) ->> 'source' = 'server'" "$m: the answering model on the iteration"
    check "coalesce(bool_and((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s) k) = '{id,intent,rationale,status,summary}'
                   AND (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s -> 'intent') k) = '{kind,params,toolName}'
                   AND s -> 'intent' ->> 'kind' = 'toolCall' AND s ->> 'status' = 'planned'
                   AND jsonb_typeof(s -> 'intent' -> 'params') = 'object'
                   AND NOT (s -> 'intent' -> 'params') ? 'rationale'
                   AND s ->> 'rationale' LIKE 'Mock: Schritt %' AND s ->> 'summary' = s ->> 'rationale'
                   AND s ->> 'id' = ($(it $m) ->> 'id') || '-' || (n - 1)), true)
             FROM jsonb_array_elements($(it $m) -> 'plan') WITH ORDINALITY AS e(s, n)" \
        "$m: every step is {id, summary = rationale, intent {kind, toolName, params without rationale}, status planned, rationale}"
done

steps() { q mana_sync -c "SELECT jsonb_array_length($(it "$1") -> 'plan') || ' ' || ($(it "$1") ->> 'overallStatus')"; }
[ "$(steps t-two)" = "1 awaiting-review" ] || fail "two rounds: one step ($(steps t-two))"
[ "$(steps t-three)" = "2 awaiting-review" ] || fail "three rounds: two steps ($(steps t-three))"
[ "$(steps t-fix)" = "1 awaiting-review" ] || fail "invalid then fixed: the corrected call only ($(steps t-fix))"
[ "$(steps t-multi)" = "3 awaiting-review" ] || fail "three calls in one message: three steps ($(steps t-multi))"
[ "$(steps t-unknown)" = "0 approved" ] || fail "an unknown tool, then stop: an approved empty plan ($(steps t-unknown))"
[ "$(steps t-never)" = "4 awaiting-review" ] || fail "never stops: max rounds (4) with their steps ($(steps t-never))"
[ "$(steps t-none)" = "0 approved" ] || fail "no call at all: an approved empty plan ($(steps t-none))"
check "$(it t-two) ->> 'summary' = 'Mock-Plan nach 2 Runde(n): die Vorschläge liegen zur Prüfung bereit.'" \
    "the model's final text is the iteration's summary"
check "$(it t-never) ->> 'summary' = '4 Vorschläge zur Prüfung.'" "a loop ended by max rounds gets a counted summary"
check "$(it t-fix) -> 'plan' -> 0 -> 'intent' -> 'params' ? 'title'" "the corrected call carries the required argument"
check "$(it t-multi) -> 'plan' -> 0 -> 'intent' ->> 'toolName' = 'create_task'" "the step names the catalog tool"

# What the model was sent: the error of the invalid call, no round past the limit.
mock_get /__requests | python3 -c '
import json, sys
reqs = [r for r in json.load(sys.stdin) if r.get("path") == "/v1/chat/completions"]
def user(r):
    return "".join(m.get("content") or "" for m in r["body"]["messages"] if m.get("role") == "user")
def of(marker):
    return [r for r in reqs if marker in user(r)]
fix2 = [r for r in of("tools-invalid-then-fix") if r.get("round") == 2]
assert fix2, "no round 2 for the invalid call"
tool_msgs = [m for m in fix2[0]["body"]["messages"] if m.get("role") == "tool"]
assert tool_msgs and "missing required argument" in tool_msgs[0]["content"], tool_msgs
never = sorted(r.get("round") for r in of("tools-never-stop]"))
assert never == [1, 2, 3, 4], "never-stop rounds %r" % never
first = of("Zwei Runden")[0]["body"]
assert first["tool_choice"] == "auto", first["tool_choice"]
# offered: the core module todo and more_tools, which names every other tool: 62 in reach
names = [t["function"]["name"] for t in first["tools"]]
assert "create_task" in names and names[-1] == "more_tools" and len(names) < 10, "offered %r" % names
import re
listed = [n.strip() for _, ns in re.findall(r"([a-z][a-zA-Z0-9_-]*) \(([^)]*)\)", first["tools"][-1]["function"]["description"])
          for n in ns.split(",")]
assert len(set(names[:-1]) | set(listed)) == 62 and not set(names) & set(listed), "in reach: %d" % len(set(names[:-1]) | set(listed))
assert all("rationale" in t["function"]["parameters"]["required"] for t in first["tools"])
assert "Antwortformat" not in first["messages"][0]["content"]
' || fail "the conversation sent to the model is not as it should be"

# --- the mission that never made a valid call -----------------------------
check "(SELECT last_error LIKE 'no valid tool call in 4 rounds%' FROM mana_ai.mission_attempts WHERE mission_id = 't-bad')" \
    "a loop without a valid call is a parse failure with its reason"
[ "$(q mana_sync -c "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 't-bad'")" = 0 ] \
    || fail "a failed first attempt must not write"

# --- tokens of every round count against the budget -----------------------
check "(SELECT sum(tokens) = 84 FROM mana_ai.token_usage WHERE mission_id = 't-two')" "two rounds: 2 x 42 tokens"
check "(SELECT sum(tokens) >= 168 AND sum(tokens) % 168 = 0 FROM mana_ai.token_usage WHERE mission_id = 't-bad')" \
    "a failed loop's 4 rounds count too (each attempt)"

# --- metrics ----------------------------------------------------------------
metric() { q mana_sync -c "SELECT coalesce(sum(value), 0)::bigint FROM mana_ai.metrics WHERE name = '$1' ${2:+AND $2}"; }
[ "$(metric mana_ai_tool_calls_total "labels = '{\"tool\": \"create_task\", \"outcome\": \"planned\"}'")" -ge 8 ] \
    || fail "planned tool calls not counted by tool"
[ "$(metric mana_ai_tool_calls_total "labels = '{\"tool\": \"unknown\", \"outcome\": \"invalid\"}'")" -ge 1 ] \
    || fail "a call of a tool that was not offered is counted as tool=unknown"
[ "$(metric mana_ai_tool_calls_total "labels ->> 'tool' = 'launch_rocket'")" = 0 ] \
    || fail "a name the model made up became a label"
[ "$(metric mana_ai_tool_calls_total "labels = '{\"tool\": \"create_task\", \"outcome\": \"invalid\"}'")" -ge 5 ] \
    || fail "invalid calls of an offered tool are counted under its name"
[ "$(metric mana_ai_planner_rounds_count)" -ge 8 ] || fail "rounds histogram has no observation per conversation"
[ "$(metric mana_ai_planner_rounds_bucket "labels ->> 'le' = '1'")" -ge 1 ] || fail "a one-round conversation not in le=1"
[ "$(metric mana_ai_planner_rounds_bucket "labels ->> 'le' = '3'")" -lt "$(metric mana_ai_planner_rounds_bucket "labels ->> 'le' = '4'")" ] \
    || fail "four-round conversations not between le=3 and le=4"
q mana_sync -c "SELECT mana_ai.metrics_prometheus()" \
    | grep '^mana_ai_tool_calls_total{tool="create_task",outcome="planned"} [1-9]' >/dev/null || fail "prometheus: two labels"

# --- build_prompt shows the active protocol ---------------------------------
check "(SELECT p ->> 'protocol' = 'tools' AND jsonb_array_length(p -> 'tools') < 10
          AND jsonb_array_length(p -> 'offered') = 62
          AND (SELECT count(*) FROM jsonb_array_elements(p -> 'offered') o WHERE o ->> 'offered' = 'core') = 3
          AND (SELECT count(*) FROM jsonb_array_elements(p -> 'offered') o WHERE o ->> 'offered' = 'discovery') = 59
          AND p -> 'more_tools' -> 'notes' @> jsonb_build_array(jsonb_build_object('function', jsonb_build_object('name', 'create_note')))
          AND p -> 'tools' -> 0 ->> 'type' = 'function' AND p ->> 'system' NOT LIKE '%Antwortformat%'
          FROM (SELECT mana_ai.build_prompt('u8', 't-bad') AS p) s)" "build_prompt in tools mode: what is offered and why"

# --- the json protocol still plans, with the same model on the iteration ----
set_guc mana_ai.planner_protocol json
wait_worker_ticks 1
add_missions <<'EOF'
j-one|u9|Im alten Protokoll
EOF
poll_until 30 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id = 'j-one'" 1 \
    || fail "json protocol: not planned"
check "$(it j-one) -> 'plan' -> 0 ->> 'summary' = 'Aufgabe anlegen' AND $(it j-one) ->> 'model' = 'gpt-4o-mini'" \
    "json protocol: the fenced plan as before, model on the iteration"
mock_get /__requests | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    b = r.get("body")
    if isinstance(b, dict) and any("Im alten Protokoll" in (m.get("content") or "") for m in b["messages"]):
        assert "tools" not in b and "Antwortformat" in b["messages"][0]["content"]
        sys.exit(0)
sys.exit(1)' || fail "json protocol: the request has tools or lacks the answer format"
check "(SELECT mana_ai.build_prompt('u9', 'j-one') ->> 'protocol' = 'json'
          AND NOT mana_ai.build_prompt('u9', 'j-one') ? 'tools')" "build_prompt in json mode"
echo "tools protocol end to end ok"
