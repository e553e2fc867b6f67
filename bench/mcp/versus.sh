#!/usr/bin/env bash
# Two builds' gateways side by side, alternating rounds: tools/call
# demo__echo over HTTPS (one `bench_mcp http` client, CONC in flight, after
# 2,000 warm-up calls) against `serve --threads THREADS`, with the gateway's
# CPU time per 1,000 calls from /proc (utime + stime); then full PQ
# handshakes with `openssl s_time -new` for HANDSHAKE_SECONDS. The client
# (bench_mcp, openssl) is the same for both: only `pqmcp serve` differs.
#   [CONC=8 THREADS=1] bench/mcp/versus.sh BASE_BUILD NEW_BUILD [REQUESTS] [ROUNDS] [HANDSHAKE_SECONDS]
set -euo pipefail
BASE="$(cd "$1" && pwd)"
NEW="$(cd "$2" && pwd)"
REQUESTS=${3:-40000}
ROUNDS=${4:-5}
HS_SECONDS=${5:-8}
CONC=${CONC:-8}
THREADS=${THREADS:-1}
BENCH="$NEW/bench/mcp/bench_mcp"
OPENSSL="${PQMCP_OPENSSL_BIN:-$HOME/.cache/pqmcp/openssl-3.5.7/bin/openssl}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)

start() {  # BUILD: sets PID, URL, PIN, PORT
    rm -rf "$work/gw"
    "$1/pqmcp" serve --demo --listen 127.0.0.1:0 --identity "$work/gw" --log-level warn \
        --threads "$THREADS" >"$work/ready" 2>"$work/log" &
    PID=$!
    for _ in $(seq 100); do grep -q 'ready on' "$work/ready" 2>/dev/null && break; sleep 0.1; done
    URL=$(grep -o 'https://[^ ]*/mcp' "$work/ready" | head -1)
    PIN=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready" | cut -d' ' -f2)
    PORT=${URL#https://127.0.0.1:}
    PORT=${PORT%/mcp}
    [[ -n "$URL" && -n "$PIN" ]] || { cat "$work/log" >&2; exit 1; }
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

for round in $(seq "$ROUNDS"); do
    for which in base new; do
        build=$BASE
        [[ $which == new ]] && build=$NEW
        start "$build"
        "$BENCH" http "$URL" --pin "$PIN" --identity "$work/client" --requests 2000 \
            --concurrency "$CONC" --tool demo__echo --label warm-up >/dev/null
        before=$(cpu_ticks "$PID")
        out=$("$BENCH" http "$URL" --pin "$PIN" --identity "$work/client" --requests "$REQUESTS" \
            --concurrency "$CONC" --tool demo__echo --label "$which")
        after=$(cpu_ticks "$PID")
        stop
        handshakes=0
        if [[ "$HS_SECONDS" != 0 ]]; then
            start "$build"
            handshakes=$("$OPENSSL" s_time -connect "127.0.0.1:$PORT" -new -time "$HS_SECONDS" \
                2>/dev/null | awk '/real seconds/ {print $1; exit}')
            stop
        fi
        python3 -c '
import json, sys
d = json.loads(sys.argv[1])
cpu_ms = (int(sys.argv[3]) - int(sys.argv[2])) * 1000 / int(sys.argv[4]) / (int(sys.argv[5]) / 1000)
print(json.dumps({"round": int(sys.argv[6]), "build": sys.argv[7], "rps": round(d["rps"]),
                  "p50_us": round(d["p50_us"]), "cpu_ms_per_1000": round(cpu_ms, 1),
                  "handshakes": int(sys.argv[8]), "handshake_seconds": int(sys.argv[9])}))
' "$out" "$before" "$after" "$ticks" "$REQUESTS" "$round" "$which" "${handshakes:-0}" "$HS_SECONDS"
    done
done
