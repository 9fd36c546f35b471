#!/usr/bin/env bash
# layers.sh: the folders of src/ are layers (docs/architecture.md), and no
# files call each other round a circle.  A file calls only into its own
# folder or a folder below it:
#   mana_ai.c, worker.c > tick/ > planner/ > crypto/ > projection/ >
#   ops/, shared/ > core/
# The calls are read from the built objects: what each one needs (nm -u)
# against what each one defines, functions and variables alike.  Needs no
# server; runs with the integration tests (cwd = repo root, after the build).
set -euo pipefail
source tests/lib/common.sh

# The object of every source (not a glob of src/*.o: an object left by an
# older layout would be read as a file of today's).
objs=()
for c in src/*.c src/*/*.c; do
    [ -f "${c%.c}.o" ] || fail "${c%.c}.o is missing: build first (make)"
    objs+=("${c%.c}.o")
done

report=$(for o in "${objs[@]}"; do
    nm --defined-only "$o" | awk -v f="$o" '$2 ~ /^[TDBR]$/ {print "D", f, $3}'
    nm -u "$o" | awk -v f="$o" '{print "U", f, $2}'
done | python3 -c '
import sys, collections
rank = {"top": 0, "tick": 1, "planner": 2, "crypto": 3, "projection": 4,
        "ops": 5, "shared": 5, "core": 6}
defs, uses = {}, collections.defaultdict(set)
for line in sys.stdin:
    kind, f, sym = line.split()
    f = f[:-2] + ".c"
    if kind == "D":
        defs[sym] = f
    else:
        uses[f].add(sym)
def folder(f):
    p = f.split("/")
    return p[1] if len(p) > 2 else "top"
edges = collections.defaultdict(set)
bad = []
for f, syms in uses.items():
    for s in syms:
        g = defs.get(s)
        if g is None or g == f:
            continue
        edges[f].add(g)
        a, b = folder(f), folder(g)
        if a not in rank or b not in rank:
            bad.append("%s: folder not in the layers (%s or %s)" % (f, a, b))
        elif a != b and rank[b] <= rank[a]:
            bad.append("%s calls up into %s (%s)" % (f, g, s))
# circles: strongly connected files (Tarjan)
index, low, stack, on, circles, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v:
                break
        if len(c) > 1:
            circles.append(c)
for v in list(edges):
    if v not in index:
        visit(v)
for c in circles:
    bad.append("circle: " + " ".join(sorted(c)))
for b in sorted(set(bad)):
    print(b)
print("files=%d calls=%d" % (len(uses), sum(len(e) for e in edges.values())))
')
summary=$(tail -n 1 <<< "$report")
problems=$(sed '$d' <<< "$report")
[ -z "$problems" ] || fail "the layers of src/ are broken:
$problems"
calls=${summary##*calls=}
[ "$calls" -gt 100 ] || fail "found only $calls calls between files ($summary): nm no longer reads the objects"
echo "ok - no file of src/ calls up a layer or round a circle ($summary)"
