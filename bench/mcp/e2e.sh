#!/usr/bin/env bash
# MCP end to end, side by side in one run (make bench; docs/benchmarks.md):
#   1. an MCP client -> pqmcp connect -> PQ TLS -> pqmcp serve -> the built-in demo server
#   2. the same demo server called directly over stdio (pqmcp demo-server)
#   3. supergateway (stateful Streamable HTTP, plain) in front of pqmcp demo-server
#   4. (for reference) HTTPS straight to pqmcp serve, no stdio bridge
# then the same gateway with and without the policy of examples/policies/demo.yaml,
# and with and without the audit trail,
# then the gateway's memory with 1,000 sessions idle and active.
#
#   bench/mcp/e2e.sh BUILD_DIR [REQUESTS]     (E2E_PART=rps, policy, audit or memory runs one part)
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
REQUESTS="${2:-3000}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PQMCP="$BUILD/pqmcp"
BENCH="$BUILD/bench/mcp/bench_mcp"
SUPERGATEWAY="$ROOT/tests/interop/node_modules/supergateway/dist/index.js"
[[ -x "$PQMCP" && -x "$BENCH" ]] || { echo "e2e: build first (make build)" >&2; exit 1; }
[[ -f "$SUPERGATEWAY" ]] || { echo "e2e: run make interop-deps for supergateway" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/pqmcp-e2e.XXXXXX")"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a gateway with the demo upstream; sets URL, PIN, GW_PID.
start_gateway() {
    local config="$1"
    "$PQMCP" serve --demo --listen 127.0.0.1:0 --identity "$work/gw" --log-level warn \
        ${config:+--config "$config"} >"$work/ready" 2>"$work/gw.log" &
    GW_PID=$!
    pids+=("$GW_PID")
    for _ in $(seq 100); do
        grep -q 'ready on' "$work/ready" 2>/dev/null && break
        sleep 0.1
    done
    URL=$(grep -o 'https://[^ ]*/mcp' "$work/ready" | head -1)
    PIN=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready" | cut -d' ' -f2)
    [[ -n "$URL" && -n "$PIN" ]] || { cat "$work/gw.log" >&2; exit 1; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [[ "${E2E_PART:-all}" == all || "${E2E_PART:-all}" == rps ]]; then
echo "== tools/call echo: $REQUESTS requests after 200 warm-up, per concurrency"
start_gateway ""
SG_PORT=$(free_port)
node "$SUPERGATEWAY" --stdio "$PQMCP demo-server" --outputTransport streamableHttp \
    --port "$SG_PORT" --stateful --logLevel none >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$SG_PORT") 2>/dev/null && break; sleep 0.1; done

for conc in 1 8; do
    "$BENCH" stdio --requests "$REQUESTS" --concurrency "$conc" --tool demo__echo \
        --label "client->connect->serve->demo" -- \
        "$PQMCP" connect "$URL" --identity "$work/client" --pin "$PIN"
    "$BENCH" stdio --requests "$REQUESTS" --concurrency "$conc" --tool echo \
        --label "client->demo-server (stdio, direct)" -- "$PQMCP" demo-server
    "$BENCH" http "http://127.0.0.1:$SG_PORT/mcp" --requests "$REQUESTS" --concurrency "$conc" \
        --tool echo --label "client->supergateway->demo-server"
    "$BENCH" http "$URL" --pin "$PIN" --identity "$work/client" --requests "$REQUESTS" \
        --concurrency "$conc" --tool demo__echo --label "client->https->serve->demo"
done
kill "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null || true
fi
[[ "${E2E_PART:-all}" == rps ]] && exit 0

if [[ "${E2E_PART:-all}" == all || "${E2E_PART:-all}" == policy ]]; then
echo
echo "== the policy's cost: tools/call demo__echo over HTTPS to serve --demo, policy off and on"
# Two gateways side by side; the same client alternates between them.
start_gateway ""
OFF_URL=$URL OFF_PIN=$PIN OFF_PID=$GW_PID
"$PQMCP" serve --demo --listen 127.0.0.1:0 --identity "$work/gw-policy" --log-level warn \
    --policy "$ROOT/examples/policies/demo.yaml" >"$work/ready-policy" 2>"$work/gw-policy.log" &
pids+=($!)
ON_PID=$!
for _ in $(seq 100); do grep -q 'ready on' "$work/ready-policy" 2>/dev/null && break; sleep 0.1; done
ON_URL=$(grep -o 'https://[^ ]*/mcp' "$work/ready-policy" | head -1)
ON_PIN=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready-policy" | cut -d' ' -f2)
for conc in 1 8; do
    for round in 1 2; do
        "$BENCH" http "$OFF_URL" --pin "$OFF_PIN" --identity "$work/client" --requests "$REQUESTS" \
            --concurrency "$conc" --tool demo__echo --label "policy off (round $round)"
        "$BENCH" http "$ON_URL" --pin "$ON_PIN" --identity "$work/client" --requests "$REQUESTS" \
            --concurrency "$conc" --tool demo__echo --label "policy on: demo.yaml, schema check, behaviour (round $round)"
    done
done
kill "$OFF_PID" "$ON_PID" 2>/dev/null; wait "$OFF_PID" "$ON_PID" 2>/dev/null || true
fi
[[ "${E2E_PART:-all}" == policy ]] && exit 0

# Starts a second gateway with extra flags; sets URL2, PIN2, PID2.
start_second() {
    local name="$1"
    shift
    "$PQMCP" serve --demo --listen 127.0.0.1:0 --identity "$work/$name" --log-level warn "$@" \
        >"$work/ready-$name" 2>"$work/$name.log" &
    PID2=$!
    pids+=("$PID2")
    for _ in $(seq 100); do grep -q 'ready on' "$work/ready-$name" 2>/dev/null && break; sleep 0.1; done
    URL2=$(grep -o 'https://[^ ]*/mcp' "$work/ready-$name" | head -1)
    PIN2=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready-$name" | cut -d' ' -f2)
    [[ -n "$URL2" && -n "$PIN2" ]] || { cat "$work/$name.log" >&2; exit 1; }
}

if [[ "${E2E_PART:-all}" == all || "${E2E_PART:-all}" == audit ]]; then
echo
echo "== the audit trail's cost: tools/call demo__echo over HTTPS to serve --demo, audit off and on"
start_second gw-noaudit --no-audit
OFF_URL=$URL2 OFF_PIN=$PIN2 OFF_PID=$PID2
start_second gw-audit
ON_URL=$URL2 ON_PIN=$PIN2 ON_PID=$PID2
for conc in 1 8; do
    for round in 1 2; do
        "$BENCH" http "$OFF_URL" --pin "$OFF_PIN" --identity "$work/client" --requests "$REQUESTS" \
            --concurrency "$conc" --tool demo__echo --label "audit off (round $round)"
        "$BENCH" http "$ON_URL" --pin "$ON_PIN" --identity "$work/client" --requests "$REQUESTS" \
            --concurrency "$conc" --tool demo__echo --label "audit on: digest of arguments (round $round)"
    done
done
kill "$OFF_PID" "$ON_PID" 2>/dev/null; wait "$OFF_PID" "$ON_PID" 2>/dev/null || true
"$PQMCP" audit verify "$work/gw-audit/audit.db" | head -1
fi
[[ "${E2E_PART:-all}" == audit ]] && exit 0

echo
echo "== memory: 1,000 sessions held open (gateway RSS, demo upstream in-process)"
cat >"$work/gw.yaml" <<YAML
limits: { max_sessions: 2100, max_connections: 4096, max_streams_per_session: 4 }
timeouts: { keep_alive: 1s }
YAML
start_gateway "$work/gw.yaml"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
sleep 0.5
base=$(rss)
coproc SESSIONS { "$BENCH" sessions "$URL" --pin "$PIN" --identity "$work/client" --count 1000 \
                    --tool demo__echo; }
read -r idle_line <&"${SESSIONS[0]}"
sleep 1
idle=$(rss)
echo next >&"${SESSIONS[1]}"
read -r active_line <&"${SESSIONS[0]}"
sleep 7   # their POST keep-alive connections closed (keep_alive: 1s), the heap trimmed
active=$(rss)
echo next >&"${SESSIONS[1]}"
read -r summary <&"${SESSIONS[0]}"
wait "$SESSIONS_PID" || true
echo "gateway RSS: empty ${base} KiB; + ${idle_line#idle } idle sessions ${idle} KiB; + ${active_line#active } active sessions (GET stream open, one call answered) ${active} KiB"
awk -v b="$base" -v i="$idle" -v a="$active" 'BEGIN {
    printf "per idle session: %.1f KiB; per active session: %.1f KiB\n", (i - b) / 1000, (a - i) / 1000 }'
echo "sessions: $summary"
