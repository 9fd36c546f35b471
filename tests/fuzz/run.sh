#!/usr/bin/env bash
# run.sh [--build-only | --no-build] [seconds] [target...]: build every
# tests/fuzz/fuzz_*.c (or the named targets) with libFuzzer, ASan and
# UBSan against all of src/core/*.c into tests/fuzz/build/, then run each
# target for the given time (default 30 s).  Prints one line per target,
# "ok NAME (N runs)" or "FAIL NAME: ...", and exits non-zero when a build
# fails or a target finds a crash, leak or timeout; the reproducer is
# written as tests/fuzz/build/NAME-crash-<sha1> (or -leak-, -timeout-)
# and its path printed.
#
# Seeds, when present, live in tests/fuzz/seeds/NAME/ (or seeds/ without
# the fuzz_ prefix) and a dictionary in tests/fuzz/NAME.dict (or without
# the prefix).  New inputs go to $FUZZ_CORPUS_DIR/corpus-NAME (default
# tests/fuzz/build), never into the committed seeds; make test points it
# at a fresh directory so every run starts from the seeds alone.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build_step=1 run_step=1
case ${1:-} in
    --build-only) run_step=0; shift ;;
    --no-build) build_step=0; shift ;;
esac
secs=${1:-30}
[ $# -gt 0 ] && shift
build=$here/build
corpora=${FUZZ_CORPUS_DIR:-$build}
mkdir -p "$build" "$corpora"

targets=()
if [ $# -gt 0 ]; then
    targets=("$@")
else
    for src in "$here"/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi

cflags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -I"$top/src" -I"$top/src/core")
read -r -a jsonc <<<"$(pkg-config --cflags json-c)"
libs=(-lcrypto -ljson-c -lcurl -lm -lpthread)

status=0
if [ $build_step = 1 ]; then
    # src/core once, then one link per target.
    objs=()
    mkdir -p "$build/core"
    for c in "$top"/src/core/*.c; do
        o=$build/core/$(basename "$c" .c).o
        clang "${cflags[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}" "${jsonc[@]}" -c -o "$o" "$c"
        objs+=("$o")
    done
    for name in "${targets[@]}"; do
        echo "== build $name"
        clang "${cflags[@]}" "${jsonc[@]}" -o "$build/$name" "$here/$name.c" "${objs[@]}" "${libs[@]}"
    done
fi
[ $run_step = 1 ] || exit 0

for name in "${targets[@]}"; do
    corpus=$corpora/corpus-$name
    mkdir -p "$corpus"
    extra=()
    for d in "$here/seeds/$name" "$here/seeds/${name#fuzz_}"; do
        [ -d "$d" ] && extra+=("$d")
    done
    for d in "$here/$name.dict" "$here/${name#fuzz_}.dict"; do
        [ -f "$d" ] && { extra=(-dict="$d" "${extra[@]}"); break; }
    done
    log=$build/$name.log
    echo "== run $name for ${secs}s"
    if (cd "$build" && "./$name" -max_total_time="$secs" -max_len=4096 \
            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$build/$name-" "$corpus" "${extra[@]}" >"$log" 2>&1); then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "ok $name (${runs:-?} runs in ${secs}s)"
    else
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "FAIL $name: $(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|Timeout|out-of-memory' "$log" || echo 'see the log')"
        echo "  reproducer: ${repro:-none written} (replay: $build/$name ${repro:-<file>})"
        echo "  log: $log"
        tail -n 40 "$log" | sed 's/^/  | /'
        status=1
    fi
done
exit $status
