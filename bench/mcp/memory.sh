#!/usr/bin/env bash
# The gateway's memory with COUNT sessions at once (default 10,000), one
# thread: RSS (VmRSS of /proc/PID/status) empty, with COUNT idle sessions
# (initialize only, over one connection), then with COUNT more active ones
# (each its own TLS connection: initialize, its GET stream held open, one
# tools/call answered), read 7 s later once their POST connections closed.
#   bench/mcp/memory.sh [BUILD_DIR] [COUNT] [SERVE_ARGS...]
# (SERVE_ARGS: more options of `pqmcp serve`, e.g. --no-raw-public-keys)
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
COUNT=${2:-10000}
PQMCP="$BUILD/pqmcp"
BENCH="$BUILD/bench/mcp/bench_mcp"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# Two descriptors per active session in each process, and some room.
ulimit -n "$(ulimit -Hn)"
cat >"$work/gw.yaml" <<YAML
threads: 1
limits: { max_sessions: $((2 * COUNT + 100)), max_connections: $((2 * COUNT + 1000)), max_streams_per_session: 4, max_sessions_per_identity: $((2 * COUNT + 100)), max_handshakes_per_address: $((2 * COUNT)) }
timeouts: { keep_alive: 1s }
YAML
"$PQMCP" serve --demo --listen 127.0.0.1:0 --identity "$work/gw" --log-level warn \
  --config "$work/gw.yaml" "${@:3}" >"$work/ready" 2>"$work/gw.log" &
GW_PID=$!
for _ in $(seq 100); do grep -q 'ready on' "$work/ready" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'https://[^ ]*/mcp' "$work/ready" | head -1)
PIN=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready" | cut -d' ' -f2)
[[ -n "$URL" && -n "$PIN" ]] || { cat "$work/gw.log" >&2; exit 1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
sleep 0.5
base=$(rss)
coproc SESSIONS { "$BENCH" sessions "$URL" --pin "$PIN" --identity "$work/client" --count "$COUNT" \
                    --tool demo__echo; }
read -r idle_line <&"${SESSIONS[0]}"
sleep 1
idle=$(rss)
echo next >&"${SESSIONS[1]}"
read -r active_line <&"${SESSIONS[0]}"
sleep 7
active=$(rss)
echo next >&"${SESSIONS[1]}"
read -r summary <&"${SESSIONS[0]}"
wait "$SESSIONS_PID" || true
awk -v b="$base" -v i="$idle" -v a="$active" -v n="$COUNT" -v s="$summary" 'BEGIN {
  printf "{\"part\":\"memory\",\"sessions\":%d,\"rss_empty_kib\":%d,\"rss_idle_kib\":%d,\"rss_active_kib\":%d,\"kib_per_idle\":%.1f,\"kib_per_active\":%.1f}\n",
    n, b, i, a, (i - b) / n, (a - i) / n
  print "sessions: " s > "/dev/stderr" }'
grep -i "error\|warn" "$work/gw.log" | head -5 >&2 || true
