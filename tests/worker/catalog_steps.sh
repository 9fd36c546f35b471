#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=1 -o mana_ai.role=mana_runner -o mana_ai.max_attempts=10
# Every one of the 62 catalog tools, end to end in each protocol: the mock
# answers 13 missions with a step per tool and every one of its parameters
# (enum values, numbers, booleans, arrays, objects), 5 per mission.  Each
# step passes the planner's checks, the last of which is the web app
# executor's rules (SPEC 11.3), and is written: the plans of each protocol
# hold all 62 tools, each with exactly the parameters proposed.
set -euo pipefail
source tests/lib/common.sh
source tests/lib/faults.sh
tmp=$(mktemp -d)

q postgres -c "CREATE ROLE mana_runner LOGIN NOBYPASSRLS" >/dev/null
setup_mana_sync
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -v runner=mana_runner -f tests/fixtures/runner_role.sql >/dev/null
start_mock_llm
trap 'kill $MOCK_PID 2>/dev/null || true; rm -rf "$tmp"' EXIT
set_guc mana_ai.llm_url "$MOCK_URL"
# Every module a core module, so each mission is offered every tool from
# its first round: this test is about the executor's rules; that each tool
# is reachable through the smaller default offer is test_tool_offer.c's.
set_guc mana_ai.planner_core_modules \
    "$(python3 -c 'import json; print(",".join(sorted({t["module"] for t in json.load(open("catalog/tool-catalog.json"))["tools"]})))')"

# The steps, 5 per mission, from the product's catalog.
python3 - catalog/tool-catalog.json "$tmp" <<'PY'
import json, sys
tools = json.load(open(sys.argv[1]))["tools"]
assert len(tools) == 62, len(tools)
def value(p):
    if "enum" in p:
        return p["enum"][-1]
    return {"number": 3, "integer": 2, "boolean": True, "array": ["a"],
            "object": {"k": "v"}}.get(p["type"], "Wocheneinkauf")
steps = [{"name": t["name"], "arguments": {p["name"]: value(p) for p in t["parameters"]}} for t in tools]
groups = [steps[i:i + 5] for i in range(0, len(steps), 5)]
script, contents = [], []
for g in groups:
    script += [[dict(s, arguments=dict(s["arguments"], rationale="Weil " + s["name"])) for s in g], []]
    plan = {"summary": "Katalog", "steps": [{"summary": s["name"], "toolName": s["name"],
                                             "params": s["arguments"], "rationale": "Weil " + s["name"]} for s in g]}
    contents.append("```json\n" + json.dumps(plan, ensure_ascii=False) + "\n```")
json.dump({"tool_calls": script, "contents": contents}, open(sys.argv[2] + "/control.json", "w"))
json.dump({s["name"]: s["arguments"] for s in steps}, open(sys.argv[2] + "/want.json", "w"))
print(len(groups))
PY
python3 -c 'import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/__control", data=open(sys.argv[2], "rb").read(), headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()' "$MOCK_URL" "$tmp/control.json"

# check_protocol PREFIX: the 13 missions' plans hold the 62 tools, params as proposed.
check_protocol() {
    poll_until 90 mana_sync "SELECT count(*) FROM sync_changes WHERE client_id = 'mana-ai-runner' AND record_id LIKE '$1-%'" 13 \
        || { q mana_sync -c "SELECT id, status, errors FROM mana_ai.tick_runs ORDER BY id DESC LIMIT 3" | cut -c1-600;
             fail "$1: not all 13 missions planned"; }
    q mana_sync -c "SELECT coalesce(jsonb_object_agg(s -> 'intent' ->> 'toolName', s -> 'intent' -> 'params'), '{}')
                      FROM sync_changes c, jsonb_array_elements(c.data -> 'iterations' -> -1 -> 'plan') s
                     WHERE c.client_id = 'mana-ai-runner' AND c.record_id LIKE '$1-%'" > "$tmp/$1.json"
    python3 - "$tmp/want.json" "$tmp/$1.json" "$1" <<'PY' || fail "$1: the written steps are not the 62 proposed"
import json, sys
want, got = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
missing = sorted(set(want) - set(got))
assert not missing, "%s: %d tools not planned: %s" % (sys.argv[3], len(missing), missing)
bad = [t for t in want if got[t] != want[t]]
assert not bad, "%s: params changed for %s" % (sys.argv[3], bad[:5])
PY
    [ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.mission_runs WHERE mission_id LIKE '$1-%' AND (decision <> 'ran' OR error_message IS NOT NULL)")" = 0 ] \
        || fail "$1: a mission did not run cleanly"
}

missions() {
    for k in $(seq 0 12); do echo "$1-$k|u$k|Katalog $k $(printf "$2" $((k * $3)))"; done | add_missions
}
missions tools '[mock:tools-scripted:%d]' 2
check_protocol tools
echo "ok - tools protocol: all 62 tools planned with every parameter"

set_guc mana_ai.planner_protocol json
sleep 2
missions json '[mock:content:%d]' 1
check_protocol json
echo "ok - json protocol: all 62 tools planned with every parameter"
