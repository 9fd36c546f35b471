#!/usr/bin/env bash
# doc_links.sh: every relative link of README.md and docs/*.md points at a
# file of the repository, and every #anchor at a heading of that file (as
# GitHub derives anchors: lower case, punctuation dropped, spaces to
# hyphens, -1, -2 ... for repeats); every docs/NAME.md the text names
# exists.  The README is the user's manual and docs/ holds its depth
# (issue 21): a moved section must not leave a dead link behind.
# Needs no server (runs inside with_cluster.sh like its neighbours).
set -euo pipefail
. tests/lib/common.sh

out=$(python3 - README.md docs/*.md <<'PY'
import os, re, sys

def anchors(path):
    seen, result, fence = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
            continue
        m = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(2))
        slug = re.sub(r"[^\w\- ]", "", text.lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else "%s-%d" % (slug, n))
    return result

problems, checked = [], 0
for doc in sys.argv[1:]:
    fence = False
    for lineno, line in enumerate(open(doc, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            checked += 1
            if not os.path.exists(full):
                problems.append("%s:%d: %s: no such file" % (doc, lineno, target))
            elif anchor and full.endswith(".md") and anchor not in anchors(full):
                problems.append("%s:%d: %s: no such heading in %s" % (doc, lineno, target, full))
        for name in re.findall(r"(?<![\w/.])docs/([\w.-]+\.md)", line):
            checked += 1
            if not os.path.exists(os.path.join("docs", name)):
                problems.append("%s:%d: docs/%s: no such file" % (doc, lineno, name))
print("\n".join(problems) if problems else "ok %d" % checked)
PY
)
case $out in
    "ok "*) echo "ok - ${out#ok } links and docs/ names in README.md and docs/*.md resolve" ;;
    *) echo "$out" >&2; fail "dead links in the documentation" ;;
esac
echo "PASS doc_links"
