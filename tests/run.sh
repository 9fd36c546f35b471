#!/usr/bin/env bash
# run.sh: every test of mana_ai (make test; .ci/run calls exactly that).
#
#   1. install missing Debian packages (tests/deps.sh)
#   2. build with -Wall -Wextra -Werror and stage-install (tests/lib/stage.sh)
#   3. unit tests of the Postgres-free code (tests/unit), then every
#      libFuzzer target (tests/fuzz/fuzz_*.c) for a bounded time from the
#      committed seeds, in the background beside steps 4 and 5 (a crash
#      fails it and prints the reproducer)
#   4. in a throwaway cluster without preload: pg_regress (installcheck)
#      and every pgTAP suite through pg_prove
#   5. each tests/integration/*.sh in its own cluster without preload
#   6. each tests/worker/*.sh in its own cluster with
#      shared_preload_libraries=mana_ai (options from a "# cluster:" line)
#   7. each tests/scale/*.sh in its own cluster without preload; a scale
#      test starts the further clusters it needs itself (and stops them)
#   8. steps 4-7 run in the current sync format (SPEC 11.1); pg_regress,
#      pgTAP, tick_e2e, tools_e2e, kill9, dump_restore, soak and upgrade
#      run again in the seed format (FORMAT=seed, SPEC 1.1) as seed/...
#   9. the matrix (tests/lib/matrix.sh): PostgreSQL 17 (Debian trixie) and
#      18 (sid) in cached debootstrap chroots, prepared in the background
#      while steps 1 to 6 run, then run side by side, beside steps 7 and 8
#      (most of every test is waiting on ticks, and it saves the four
#      minutes that make test would otherwise need past its half hour);
#      each builds with -Werror, stage-installs and
#      runs pg_regress, pgTAP, the unit tests, the worker end-to-end in
#      both protocols, kill -9, the upgrade and dump/restore there
#      (MANA_MATRIX=full: the whole suite, as make test-matrix does;
#      MANA_MATRIX=0, or ONLY=... without MANA_MATRIX: no matrix)
#
# Prints the output of whatever failed, a line per PostgreSQL major
# ("15: N passed, M failed"), then one line "N passed, M failed" over all;
# exits non-zero on any failure.  ONLY=pattern runs the matching tests
# (ONLY='a|b' those matching a or b).
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
out=$top/tests/.out
logs=$out/logs
rm -rf "$logs"; mkdir -p "$logs"
passed=0; failed=0; failed_names=()
only=${ONLY:-}

pass() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
flunk() {
    failed=$((failed + 1)); failed_names+=("$1")
    printf '  FAIL  %s\n' "$1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        echo "  ----- $2 (last 80 lines)"; tail -n 80 "$2" | sed 's/^/  | /'; echo "  -----"
    fi
}
# ONLY=a|b|c: the tests whose names contain any of the patterns.
wanted() {
    local p
    [ -z "$only" ] && return 0
    IFS='|' read -ra pats <<< "$only"
    for p in "${pats[@]}"; do [[ "$1" == *$p* ]] && return 0; done
    return 1
}
summary() {
    echo
    [ $failed -gt 0 ] && printf 'failed: %s\n' "${failed_names[*]}"
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
}

# The matrix runs beside the last host tests, from the chroots prepared
# beside the first ones.
matrix=${MANA_MATRIX:-}
[ -z "$matrix" ] && { [ -n "$only" ] && matrix=0 || matrix=subset; }
[ "$(id -u)" = 0 ] || matrix=0
if [ "$matrix" != 0 ]; then
    echo "== matrix chroots (PostgreSQL 17 and 18) prepared in the background: $logs/matrix-prepare.log"
    bash tests/lib/matrix.sh prepare > "$logs/matrix-prepare.log" 2>&1 &
    matrix_prep_pid=$!
fi

echo "== dependencies"
if ! bash tests/deps.sh > "$logs/deps.log" 2>&1; then
    flunk deps "$logs/deps.log"; summary; exit 1
fi

echo "== build (-Wall -Wextra -Werror) and staged install"
if bash tests/lib/stage.sh > "$logs/build.log" 2>&1; then
    pass build
else
    flunk build "$logs/build.log"; summary; exit 1
fi

echo "== unit tests (src/core, no server)"
if make -s -j2 -C tests/unit all > "$logs/unit-build.log" 2>&1; then
    for bin in tests/unit/build/test_*; do
        [ -x "$bin" ] || continue
        name=unit/$(basename "$bin")
        wanted "$name" || continue
        if (cd tests/unit && timeout 300 "./build/$(basename "$bin")") > "$logs/$(basename "$bin").log" 2>&1; then
            pass "$name"
        else
            flunk "$name" "$logs/$(basename "$bin").log"
        fi
    done
else
    flunk unit-build "$logs/unit-build.log"
fi

# Every tests/fuzz/fuzz_*.c from the committed seeds (a fresh corpus each
# run), one after another: 20 s each, less when there are more than five
# targets, so the step stays under about two minutes.  They run on one
# core in the background while pg_regress, pgTAP and the integration
# tests (mostly waiting on psql) use the other; their lines are printed
# after the integration tests, before any worker test starts.
fuzz_names=()
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    wanted "fuzz/$(basename "$src" .c)" && fuzz_names+=("$(basename "$src" .c)")
done
fuzz_pid=""
rm -f "$logs/fuzz.results"
if [ ${#fuzz_names[@]} -gt 0 ]; then
    fuzz_secs=$(( ${FUZZ_BUDGET:-100} / ${#fuzz_names[@]} ))
    [ $fuzz_secs -gt 20 ] && fuzz_secs=20
    [ $fuzz_secs -lt 5 ] && fuzz_secs=5
    echo "== fuzzers started in the background (libFuzzer, ASan, UBSan; ${fuzz_secs} s per target)"
    rm -rf "$out/fuzz"; mkdir -p "$out/fuzz"
    (
        if bash tests/fuzz/run.sh --build-only 0 "${fuzz_names[@]}" > "$logs/fuzz-build.log" 2>&1; then
            for f in "${fuzz_names[@]}"; do
                if FUZZ_CORPUS_DIR=$out/fuzz timeout $((fuzz_secs + 60)) \
                       bash tests/fuzz/run.sh --no-build "$fuzz_secs" "$f" > "$logs/fuzz-$f.log" 2>&1; then
                    echo "ok fuzz/$f ($(sed -n "s/^ok $f (\(.*\))$/\1/p" "$logs/fuzz-$f.log"))"
                else
                    echo "fail fuzz/$f $logs/fuzz-$f.log"
                fi
            done
        else
            echo "fail fuzz-build $logs/fuzz-build.log"
        fi > "$logs/fuzz.results"
    ) &
    fuzz_pid=$!
fi
# report_fuzzers: wait for the background fuzzers and print their lines.
report_fuzzers() {
    [ -n "$fuzz_pid" ] || return 0
    wait "$fuzz_pid" || true
    echo "== fuzzers"
    [ -s "$logs/fuzz.results" ] || { flunk fuzzers; return 0; }
    while read -r verdict name rest; do
        if [ "$verdict" = ok ]; then
            pass "$name $rest"
        else
            flunk "$name" "$rest"
            grep -E '^  reproducer:' "$rest" 2>/dev/null | sed 's/^/  /' || true
        fi
    done < "$logs/fuzz.results"
}

echo "== pg_regress and pgTAP (cluster without preload)"
if timeout 900 bash tests/lib/with_cluster.sh -- bash tests/lib/sql_suites.sh "$logs" > "$logs/sql_suites.log" 2>&1; then :; fi
if [ -f "$logs/sql_suites.results" ]; then
    while read -r verdict name file; do
        if [ "$verdict" = ok ]; then pass "$name"; else flunk "$name" "$file"; fi
    done < "$logs/sql_suites.results"
else
    flunk sql-suites "$logs/sql_suites.log"
fi
[ -f "$logs/regression.diffs" ] && { echo "  ----- regression.diffs"; sed 's/^/  | /' "$logs/regression.diffs"; }

# Shell tests: "# cluster: --preload -o name=value ..." on a line of the script.
run_shell_tests() {
    local dir=$1 default=$2 t name opts
    for t in "$dir"/*.sh; do
        [ -f "$t" ] || continue
        name=${dir#tests/}/$(basename "$t" .sh)
        wanted "$name" || continue
        opts=$(sed -n 's/^# cluster: *//p' "$t" | head -1)
        [ -n "$opts" ] || opts=$default
        # shellcheck disable=SC2086
        if timeout 600 bash tests/lib/with_cluster.sh $opts -- bash "$t" > "$logs/${name//\//_}.log" 2>&1; then
            pass "$name"
        else
            flunk "$name" "$logs/${name//\//_}.log"
        fi
    done
}

echo "== integration tests (one cluster each, no preload)"
run_shell_tests tests/integration ""
report_fuzzers

echo "== worker tests (one cluster each, shared_preload_libraries=mana_ai)"
run_shell_tests tests/worker "--preload"

# start_matrix: 17 and 18 side by side in the background, each in its own
# chroot, its clusters on kernel-picked ports.
matrix_pids=()
start_matrix() {
    [ "$matrix" != 0 ] || return 0
    echo "== matrix: waiting for the chroots"
    if ! wait "$matrix_prep_pid"; then
        matrix_prep_failed=1
        return 0
    fi
    echo "== matrix: PostgreSQL 17 and 18 started side by side, beside the tests below"
    for major in 17 18; do
        bash tests/lib/matrix.sh run "$major" "$matrix" > "$logs/matrix-$major.log" 2>&1 &
        matrix_pids+=($!)
    done
}
matrix_prep_failed=0
start_matrix

echo "== scale tests (a cluster each, plus the clusters the test starts)"
run_shell_tests tests/scale ""

# The seed sync format (SPEC 1.1, field_timestamps): everything above runs
# in the current one (SPEC 11.1, tests/fixtures/sync_changes.sql's default);
# these run again with FORMAT=seed, named seed/...  kill9 with fewer kills,
# the soak with 40 s of writes (its seed oracle reads the runner's nextRunAt).
echo "== seed sync format (FORMAT=seed)"
if wanted seed/regress || wanted seed/pgtap; then
    mkdir -p "$logs/seed"
    FORMAT=seed timeout 900 bash tests/lib/with_cluster.sh -- bash tests/lib/sql_suites.sh "$logs/seed" > "$logs/seed/sql_suites.log" 2>&1 || true
    if [ -f "$logs/seed/sql_suites.results" ]; then
        while read -r verdict name file; do
            if [ "$verdict" = ok ]; then pass "seed/$name"; else flunk "seed/$name" "$file"; fi
        done < "$logs/seed/sql_suites.results"
    else
        flunk seed/sql-suites "$logs/seed/sql_suites.log"
    fi
    [ -f "$logs/seed/regression.diffs" ] && { echo "  ----- seed regression.diffs"; sed 's/^/  | /' "$logs/seed/regression.diffs"; }
fi
for t in tests/worker/tick_e2e.sh tests/worker/tools_e2e.sh tests/worker/exfiltration.sh tests/worker/kill9.sh \
         tests/worker/dump_restore.sh tests/worker/writeback_memory.sh tests/worker/soak.sh tests/integration/upgrade.sh; do
    name=seed/${t#tests/}; name=${name%.sh}
    wanted "$name" || continue
    opts=$(sed -n 's/^# cluster: *//p' "$t" | head -1)
    # shellcheck disable=SC2086
    if FORMAT=seed KILLS_LLM=6 KILLS_WRITE=2 SOAK_SECONDS=40 timeout 600 bash tests/lib/with_cluster.sh $opts -- bash "$t" \
           > "$logs/${name//\//_}.log" 2>&1; then
        pass "$name"
    else
        flunk "$name" "$logs/${name//\//_}.log"
    fi
done

host_major=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ "$matrix" = 0 ]; then
    summary; exit
fi
echo "$host_major: $passed passed, $failed failed" > "$logs/matrix.lines"
if [ "$matrix_prep_failed" = 1 ]; then
    flunk matrix-prepare "$logs/matrix-prepare.log"
else
    echo "== matrix: waiting for PostgreSQL 17 and 18"
    wait "${matrix_pids[@]}" || true     # each run's own lines say what failed
    for major in 17 18; do
        echo "== matrix: PostgreSQL $major"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/matrix-$major.log" | tail -1)
        if [ -z "$line" ]; then
            flunk "matrix-$major" "$logs/matrix-$major.log"
            continue
        fi
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
        passed=$((passed + p)); failed=$((failed + f))
        while read -r n; do
            failed_names+=("$major:$n"); echo "  FAIL  $major: $n"
        done < <(sed -n 's/^  FAIL  //p' "$logs/matrix-$major.log")
        echo "$major: $p passed, $f failed" | tee -a "$logs/matrix.lines"
    done
fi
echo
cat "$logs/matrix.lines"
summary
