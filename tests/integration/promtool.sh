#!/usr/bin/env bash
# The alert rules of docs/monitoring with Debian's promtool: they parse
# (promtool check rules), each alert fires on the series it is written for
# and stays quiet on the others (promtool test rules), every metric a rule
# reads is one that docs/monitoring/queries.yaml exports, and a test that
# expects an alert which the rules cannot raise is reported as a failure.
set -euo pipefail
source tests/lib/common.sh
mon=docs/monitoring
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v promtool >/dev/null || fail "promtool is not installed (tests/deps.sh: prometheus)"

timeout 60 promtool check rules "$mon/mana_ai.rules.yml" || fail "promtool check rules"
timeout 120 promtool test rules "$mon/mana_ai.rules.test.yml" || fail "promtool test rules"

# Every alert of the rules file has a test group.
for a in $(sed -n 's/^ *- alert: *//p' "$mon/mana_ai.rules.yml"); do
    grep -q "alertname: $a\$" "$mon/mana_ai.rules.test.yml" || fail "alert $a has no promtool test"
done

# Every mana_ai_ series a rule reads is exported by the queries file
# (query name + "_" + column, histograms with _count/_sum/_bucket).
python3 - "$mon/queries.yaml" "$mon/mana_ai.rules.yml" <<'PY' || fail "a rule reads a series the queries file does not export"
import re, sys
exported = set()
ns = None
usage = {}
for line in open(sys.argv[1]):
    m = re.match(r'^([a-z_]+):\s*$', line)
    if m:
        ns = m.group(1); continue
    m = re.match(r'^    - ([a-z_]+):\s*$', line)
    if m and ns:
        col = m.group(1); continue
    m = re.match(r'^        usage: "([A-Z]+)"', line)
    if m and ns:
        if m.group(1) == "LABEL":
            continue
        name = ns + "_" + col
        exported.add(name)
        if m.group(1) == "HISTOGRAM":
            exported.update(name + s for s in ("_bucket", "_sum", "_count"))
rules = open(sys.argv[2]).read()
used = set(re.findall(r'\b(mana_ai_[a-z_]+)\b', rules))
missing = sorted(used - exported)
if missing:
    sys.exit("not exported: " + ", ".join(missing))
print("ok - the rules read %d series, all exported: %s" % (len(used), ", ".join(sorted(used))))
PY

# The harness can fail: an expectation the rules cannot meet is reported.
cp "$mon/mana_ai.rules.yml" "$tmp/"
sed 's/values: .1x5 0x20./values: '"'"'1x25'"'"'/' "$mon/mana_ai.rules.test.yml" > "$tmp/broken.test.yml"
! cmp -s "$mon/mana_ai.rules.test.yml" "$tmp/broken.test.yml" || fail "could not make the broken test file"
if timeout 120 promtool test rules "$tmp/broken.test.yml" > "$tmp/broken.out" 2>&1; then
    fail "promtool test rules passed a test whose worker never goes away"
fi
grep -q ManaAiWorkerAbsent "$tmp/broken.out" || { cat "$tmp/broken.out"; fail "the broken test did not fail on ManaAiWorkerAbsent"; }
echo "PASS promtool"
