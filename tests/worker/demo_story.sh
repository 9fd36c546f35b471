#!/usr/bin/env bash
# cluster: --preload -o mana_ai.tick_interval=2 -o mana_ai.role=mana_runner -o mana_ai.enabled=off
# make demo's story (tests/lib/demo_story.sh) answers each question it asks
# with rows, in order, from a paused worker: what the worker planned (for
# alice, the grant's user and the 100 tick_world users), why the others did
# not run (each gate of alice's world with its reason), what the grant
# decrypted (the user message once, the audit rows) and what the metrics
# say (each in agreement with the tables); and no tick runs after the pause.
set -euo pipefail
source tests/lib/common.sh

out=$(mktemp)
trap 'rm -f "$out"' EXIT
DEMO_LLM_LATENCY_MS=20 bash tests/lib/demo_story.sh > "$out" 2>&1 \
    || { cat "$out"; fail "the demo story failed"; }
show() { sed 's/^/  | /' "$out" >&2; }

# sec[N]: the lines from "== N." up to the next "== <digit>." header.  The
# checks read them from here-strings: grep -q stops at its first match, and
# a writer into a pipe would die of SIGPIPE (a false failure under pipefail).
declare -A sec
for n in 1 2 3 4 5 6; do sec[$n]=$(awk -v n="$n" '/^== [0-9]\./ { on = ($2 == n ".") } on' "$out"); done

# Every numbered section, in order, each with a table of at least one row.
[ "$(grep -o '^== [0-9]\.' "$out" | tr -d '= .' | tr -d '\n')" = 123456 ] || { show; fail "sections 1-6 not in order"; }
for n in 1 2 3 4 5 6; do
    grep -Eq '^\(([1-9][0-9]*) rows?\)$' <<< "${sec[$n]}" || { show; fail "section $n prints no row"; }
done
! grep -q '^(0 rows)$' "$out" || { show; fail "an empty answer"; }

# 2: the worker is paused before anything is printed, and stays paused.
grep -q 'paused (mana_ai.enabled = off)' <<< "${sec[2]}" || { show; fail "no pause before the ops views"; }
printed_ticks=$(grep -Ec '^ +[0-9]+ \| ok ' <<< "${sec[2]}")
[ "$printed_ticks" -ge 2 ] || { show; fail "fewer than two ticks printed"; }
sleep 4     # two tick intervals
[ "$(q mana_sync -c "SELECT count(*) FROM mana_ai.tick_runs")" = "$printed_ticks" ] \
    || fail "a tick ran after the pause: the views could contradict each other"

# 3: what was planned, for whom, with which tool.
for who in '1 \| alice +\| Mission m-busy-1 +\| Fleissig' '1 \| demo-grant-user +\| Umzug planen' \
           '2 \| alice +\| Mission m-busy-2 +\| Fleissig'; do
    grep -Eq "^ +$who .*\| create_task " <<< "${sec[3]}" || { show; fail "section 3 lacks a plan: $who"; }
done
grep -Eq '^ +100 \| +100 \| Mana +\| awaiting-review \| create_task' <<< "${sec[3]}" || { show; fail "section 3 lacks the 100 users"; }

# 4: alice's missions that did not run, each with its reason.
for row in 'm-paused .*skipped-paused in tick 1.*\| agent paused' \
           'm-broke .*skipped-budget in tick 1.*\| agent.s token budget spent' \
           'm-archived .*\| agent archived' 'm-deleted-agent .*\| agent deleted' \
           'm-busy-2 .*skipped-concurrency in tick 1; ran in tick 2 .*\| agent busy, ran a tick later' \
           'm-manual .*no tick considered it.*\| manual, not started' \
           'm-future .*no tick considered it.*\| not due yet' \
           'm-off .*\| mission paused' 'm-gone .*\| mission deleted'; do
    grep -Eq "^ $row" <<< "${sec[4]}" || { show; fail "section 4 lacks: $row"; }
done
! grep -Eq '^ (m-ghost|m-busy-1) ' <<< "${sec[4]}" || { show; fail "section 4 lists a mission that ran"; }

# 5: the user message once, decrypted, without the journal entry; the audit rows.
[ "$(grep -c '| # Mission: Umzug planen' <<< "${sec[5]}")" = 1 ] || { show; fail "the grant mission's prompt is not printed exactly once"; }
grep -q '| Besichtigung Freitag 17 Uhr' <<< "${sec[5]}" || { show; fail "the decrypted note is not in the prompt"; }
! grep -Eq '^   \| .*(enc:1:|Privat: nicht)' <<< "${sec[5]}" || { show; fail "ciphertext or the journal entry in the prompt"; }
[ "$(grep -Ec '\| (notes|tasks) +\| [nt]-demo +\| ok ' <<< "${sec[5]}")" = 2 ] || { show; fail "no two ok audit rows"; }
grep -Eq '\| journal +\| j-demo +\| scope-violation \| record-not-in-grant-allowlist' <<< "${sec[5]}" || { show; fail "no scope-violation row"; }

# 6: the metrics agree with the tables, row by row.
agree=$(awk -F'|' '$1 ~ /^ (ticks|plans written back|decisions: ran|decrypts) +$/ { n++; if ($2 + 0 != $3 + 0 || $2 + 0 == 0) bad++ } END { print n + 0, bad + 0 }' <<< "${sec[6]}")
[ "$agree" = "4 0" ] || { show; fail "metrics and tables disagree (rows, disagreeing: $agree)"; }
grep -q '^   | mana_ai_ticks_total [1-9]' <<< "${sec[6]}" || { show; fail "no Prometheus text"; }
echo "ok: the demo's story answers each question"
