#!/usr/bin/env bash
# sql_suites.sh LOGDIR: inside a with_cluster.sh cluster, run pg_regress
# (make installcheck) and every tests/pgtap/*.sql through pg_prove.
# Writes "ok|fail NAME LOGFILE" lines to LOGDIR/sql_suites.results.
set -uo pipefail
logs=$1
res=$logs/sql_suites.results
: > "$res"
only=${ONLY:-}
# ONLY=a|b|c: the tests whose names contain any of the patterns.
wanted() {
    local p
    [ -z "$only" ] && return 0
    IFS='|' read -ra pats <<< "$only"
    for p in "${pats[@]}"; do [[ "$1" == *$p* ]] && return 0; done
    return 1
}

# pg_regress: one result per test file.
make -s installcheck > "$logs/installcheck.log" 2>&1
[ -f regression.diffs ] && cp regression.diffs "$logs/regression.diffs"
grep -E '^(ok|not ok) |^test |^ +[a-z_0-9]+ +\.\.\. ' "$logs/installcheck.log" |
while read -r line; do
    name=$(echo "$line" | sed -E 's/^(not ok|ok) +[0-9]+ +[-+] +//; s/^test +//; s/^ +//; s/ +\.\.\..*//; s/ +[0-9]+ ms$//')
    case $line in
        *FAILED*|"not ok"*) echo "fail regress/$name $logs/installcheck.log" ;;
        *) echo "ok regress/$name -" ;;
    esac
done >> "$res"
grep -q 'regress/' "$res" || echo "fail regress/installcheck $logs/installcheck.log" >> "$res"

# pgTAP: a fresh mana_sync database with the fixture, pgtap and mana_ai.
psql -X -q -d postgres -c "CREATE DATABASE mana_sync" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -f tests/fixtures/sync_changes.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d mana_sync -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION mana_ai" >/dev/null
for f in tests/pgtap/*.sql; do
    [ -f "$f" ] || continue
    name=pgtap/$(basename "$f" .sql)
    wanted "$name" || continue
    log=$logs/${name//\//_}.log
    if timeout 300 pg_prove -v -d mana_sync "$f" > "$log" 2>&1; then
        echo "ok $name -" >> "$res"
    else
        echo "fail $name $log" >> "$res"
    fi
done
