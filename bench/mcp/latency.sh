#!/usr/bin/env bash
# One call in flight through each given pqmcp binary, alternating rounds:
# `connect -> serve --demo` (the binary's own gateway and bridge), the same
# binary's demo server over stdio directly, and HTTPS straight to its
# gateway. Prints the p50 of each and the bridge's p50 over the direct
# server's of the same round (the goal of issue 13 part 2: at most 100 µs).
#   bench/mcp/latency.sh ROUNDS REQUESTS PQMCP_BINARY...
#   bench/mcp/latency.sh 4 20000 /tmp/base-pqmcp build/pqmcp
set -euo pipefail
ROUNDS=${1:?ROUNDS}
N=${2:?REQUESTS}
shift 2
[[ $# -ge 1 ]] || { echo "latency: name at least one pqmcp binary" >&2; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
BENCH="${BENCH:-$HERE/../../build/bench/mcp/bench_mcp}"
[[ -x "$BENCH" ]] || { echo "latency: build first (make build), or set BENCH" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
p50() { grep -o '"p50_us":[0-9.E+-]*' | cut -d: -f2; }
for r in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    rm -rf "$work/gw" "$work/ready"
    "$bin" serve --demo --listen 127.0.0.1:0 --identity "$work/gw" --log-level warn \
      >"$work/ready" 2>"$work/log" &
    gw=$!
    for _ in $(seq 100); do grep -q 'ready on' "$work/ready" 2>/dev/null && break; sleep 0.1; done
    url=$(grep -o 'https://[^ ]*/mcp' "$work/ready" | head -1)
    pin=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready" | cut -d' ' -f2)
    [[ -n "$url" && -n "$pin" ]] || { cat "$work/log" >&2; exit 1; }
    c=$("$BENCH" stdio --requests "$N" --concurrency 1 --tool demo__echo -- \
      "$bin" connect "$url" --identity "$work/client" --pin "$pin" 2>/dev/null | p50)
    d=$("$BENCH" stdio --requests "$N" --concurrency 1 --tool echo -- "$bin" demo-server 2>/dev/null | p50)
    h=$("$BENCH" http "$url" --pin "$pin" --identity "$work/client" --requests "$N" \
      --concurrency 1 --tool demo__echo 2>/dev/null | p50)
    kill "$gw"
    wait "$gw" 2>/dev/null || true
    awk -v r="$r" -v b="$bin" -v c="$c" -v d="$d" -v h="$h" 'BEGIN {
      printf "{\"round\":%d,\"binary\":\"%s\",\"connect_p50_us\":%.1f,\"direct_p50_us\":%.1f,\"over_direct_us\":%.1f,\"https_p50_us\":%.1f}\n", r, b, c, d, c - d, h }'
  done
done
