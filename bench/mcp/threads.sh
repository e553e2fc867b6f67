#!/usr/bin/env bash
# serve --threads 1 against --threads 2 of the same build, side by side in
# one run, alternating rounds: tools/call demo__echo over HTTPS (CLIENTS
# bench_mcp clients at once, default 2, each its own session with CONC in
# flight over as many connections, default 4) and full
# PQ handshakes (two `openssl s_time -new` at once). Besides the wall-clock
# rates it reads the gateway's own CPU time from /proc (utime + stime), so
# the cost per request and per handshake is known even though the clients
# share the machine with it. Each client warms up with 200 calls first; they
# are counted (the CPU time covers them). thread_cpu_s: each of the gateway's
# threads (in thread id order: the request threads and the audit writer).
#   [CLIENTS=2 CONC=4] [SERVE_FLAGS='--policy FILE'] bench/mcp/threads.sh [BUILD_DIR] [REQUESTS_PER_CLIENT] [ROUNDS] [HANDSHAKE_SECONDS]
# (HANDSHAKE_SECONDS 0: tools/call only; SERVE_FLAGS: more `serve` flags for both gateways)
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
N=${2:-20000}
CLIENTS=${CLIENTS:-2}  # bench_mcp processes at once, each its own session
CONC=${CONC:-4}        # in flight per client (and its connections)
ROUNDS=${3:-3}
HS_SECONDS=${4:-10}
PQMCP="$BUILD/pqmcp"
BENCH="$BUILD/bench/mcp/bench_mcp"
OPENSSL=${PQMCP_OPENSSL_BIN:-$(scripts/bootstrap.sh --prefix)/bin/openssl}
TICK=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

start() {  # $1 threads
  "$PQMCP" serve --demo --listen 127.0.0.1:0 --identity "$work/gw-$1" --log-level warn \
    --threads "$1" ${SERVE_FLAGS:-} >"$work/ready-$1" 2>"$work/log-$1" &
  echo $! >"$work/pid-$1"
  for _ in $(seq 100); do grep -q 'ready on' "$work/ready-$1" 2>/dev/null && break; sleep 0.1; done
}
cpu() { awk '{print $14 + $15}' "/proc/$(cat "$work/pid-$1")/stat"; }
# Each thread's CPU ticks (request threads and the audit writer), in tid order.
thread_ticks() { cat /proc/"$(cat "$work/pid-$1")"/task/*/stat | awk '{printf "%d ", $14 + $15}'; }
now() { date +%s.%N; }
url() { grep -o 'https://[^ ]*/mcp' "$work/ready-$1" | head -1; }
pin() { grep -o 'peer pq1[a-z2-7]*' "$work/ready-$1" | cut -d' ' -f2; }

start 1
start 2
for r in $(seq "$ROUNDS"); do
  for t in 1 2; do
    c0=$(cpu $t); w0=$(now); pids=(); tt0=$(thread_ticks $t)
    for c in $(seq "$CLIENTS"); do
      "$BENCH" http "$(url $t)" --pin "$(pin $t)" --identity "$work/client-$c" --requests "$N" \
        --warmup 200 --concurrency "$CONC" --tool demo__echo --label "threads=$t round $r client $c" \
        >"$work/calls-$t-$c" &
      pids+=($!)
    done
    wait "${pids[@]}"
    w1=$(now); c1=$(cpu $t); tt1=$(thread_ticks $t)
    # Seconds of CPU per thread this round (is every request thread used?).
    per_thread=$(paste <(tr ' ' '\n' <<<"$tt0") <(tr ' ' '\n' <<<"$tt1") |
      awk -v tick="$TICK" 'NF == 2 { printf "%s%.2f", (n++ ? "," : ""), ($2 - $1) / tick }')
    awk -v clients="$CLIENTS" -v conc="$CONC" -v t="$t" -v r="$r" -v n="$((CLIENTS * (N + 200)))" -v w="$(echo "$w1 - $w0" | bc)" \
        -v cpu="$(((c1 - c0)))" -v tick="$TICK" -v per="$per_thread" 'BEGIN {
      printf "{\"part\":\"tools/call\",\"clients\":%d,\"in_flight_each\":%d,\"threads\":%d,\"round\":%d,\"requests\":%d,\"wall_s\":%.3f,\"per_s\":%.0f,\"gateway_cpu_s\":%.2f,\"cpu_ms_per_1000\":%.1f,\"thread_cpu_s\":[%s]}\n",
        clients, conc, t, r, n, w, n / w, cpu / tick, 1000 * (cpu / tick) / n * 1000, per }'
  done
  if [ "$HS_SECONDS" = 0 ]; then
    continue  # tools/call only
  fi
  for t in 1 2; do
    port=$(url $t | sed 's|.*:\([0-9]*\)/mcp|\1|')
    c0=$(cpu $t); pids=()
    for c in a b; do
      "$OPENSSL" s_time -connect "127.0.0.1:$port" -new -time "$HS_SECONDS" >"$work/hs-$t-$c" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}" || true  # s_time's exit status says nothing about the count
    c1=$(cpu $t)
    # "N connections in T real seconds": the handshakes, over the longest T.
    read -r total secs < <(cat "$work/hs-$t-a" "$work/hs-$t-b" |
      awk '/connections in [0-9.]+ real seconds/ {n += $1; if ($4 > t) t = $4} END {print n + 0, t + 0}')
    awk -v t="$t" -v r="$r" -v n="$total" -v s="$secs" -v cpu="$((c1 - c0))" -v tick="$TICK" 'BEGIN {
      printf "{\"part\":\"handshake\",\"threads\":%d,\"round\":%d,\"handshakes\":%d,\"per_s\":%.0f,\"gateway_cpu_s\":%.2f,\"cpu_ms_per_1000\":%.1f}\n",
        t, r, n, (s > 0 ? n / s : 0), cpu / tick, (n > 0 ? 1000 * (cpu / tick) / n * 1000 : 0) }'
  done
done
