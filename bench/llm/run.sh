#!/usr/bin/env bash
# bench/llm/run.sh [TOTAL]: requests per second through the LLM client
# (src/core/llm_client.c) against tests/mock_llm.py on loopback at 0 ms
# latency with 1, 8 and 64 calls in flight, plus the client's own CPU time
# per request.  The mock is a Python ThreadingHTTPServer: at 0 ms latency
# it, not the client, bounds requests per second; client_cpu_per_request
# is the in-process overhead (request body, curl, answer parsing).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
total=${1:-2000}
out=$top/bench/out
mkdir -p "$out"
cc -O2 -Wall -Wextra -I"$top/src/core" $(pkg-config --cflags json-c) \
    -o "$out/bench_llm" "$top/bench/llm/bench_llm.c" "$top/src/core/llm_client.c" "$top/src/core/llm_client_answer.c" \
    "$top/src/core/llm_call.c" "$top/src/core/llm_request.c" "$top/src/core/llm_ratelimit.c" "$top/src/core/llm_chat.c" \
    -lcurl -ljson-c -lm

tmp=$(mktemp -d)
mock_pid=
trap '[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
python3 "$top/tests/mock_llm.py" --port-file "$tmp/port" --latency 0 --max-lifetime 600 >/dev/null &
mock_pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { echo "mock did not start" >&2; exit 1; }
url="http://127.0.0.1:$(head -1 "$tmp/port")"

echo "# $(date -u +%FT%TZ) $(nproc) cores, libcurl $(curl-config --version | cut -d' ' -f2), total=$total, mock latency 0 ms"
for n in 1 8 64; do
    "$out/bench_llm" "$url" "$total" "$n"
done
