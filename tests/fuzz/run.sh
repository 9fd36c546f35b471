#!/usr/bin/env bash
# run.sh [seconds]: build every tests/fuzz/fuzz_*.c with libFuzzer,
# ASan and UBSan against all of src/core/*.c into tests/fuzz/build/,
# then run each target for the given time (default 30 s).  Exits
# non-zero when a build fails or a target finds a crash, leak or
# timeout (the reproducer is left in tests/fuzz/build/).  Seed inputs,
# when present, live in tests/fuzz/seeds/<target>/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-30}
build=$here/build
mkdir -p "$build"
core=("$top"/src/core/*.c)
cflags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -I"$top/src" -I"$top/src/core")
read -r -a jsonc <<<"$(pkg-config --cflags json-c)"
libs=(-lcrypto -ljson-c -lcurl -lm -lpthread)

status=0
for src in "$here"/fuzz_*.c; do
    name=$(basename "$src" .c)
    echo "== build $name"
    clang "${cflags[@]}" "${jsonc[@]}" -o "$build/$name" "$src" "${core[@]}" "${libs[@]}"
done
for src in "$here"/fuzz_*.c; do
    name=$(basename "$src" .c)
    corpus=$build/corpus-$name
    mkdir -p "$corpus"
    seeds=()
    [ -d "$here/seeds/$name" ] && seeds=("$here/seeds/$name")
    echo "== run $name for ${secs}s"
    if ! (cd "$build" && "./$name" -max_total_time="$secs" -max_len=4096 \
            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus" "${seeds[@]}" \
            >"$build/$name.log" 2>&1); then
        echo "FAIL $name (see $build/$name.log)"; tail -n 40 "$build/$name.log"
        status=1
    else
        grep -E '^(stat::number_of_executed_units|Done)' "$build/$name.log" || true
        echo "ok $name"
    fi
done
exit $status
