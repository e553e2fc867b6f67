#!/usr/bin/env bash
# OpenAPI upstreams (make bench; docs/benchmarks.md):
#   1. loading a description of 1,000 operations (generated: bench/openapi/gen_spec.py)
#      against the 20 of the Petstore, side by side: wall time and peak memory of
#      `pqmcp openapi inspect`, rounds alternating; and the gateway's own load time (its log);
#   2. tools/list of those 1,000 tools through `pqmcp connect` (the official SDK);
#   3. tools/call getPetById through the gateway (HTTPS to serve -> openapi upstream ->
#      Prism) against the same GET straight to Prism, side by side, 1 and 8 in flight.
#   bench/openapi/openapi.sh [BUILD_DIR] [REQUESTS] [ROUNDS]
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
N=${2:-2000}
ROUNDS=${3:-3}
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PQMCP="$BUILD/pqmcp"
BENCH="$BUILD/bench/mcp/bench_mcp"
EXAMPLES="$ROOT/tests/interop/node_modules/@readme/oas-examples"
PRISM="$ROOT/tests/interop/node_modules/@stoplight/prism-cli/dist/index.js"
[[ -f "$PRISM" ]] || { echo "openapi: run make interop-deps for Prism" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

python3 "$HERE/gen_spec.py" 1000 >"$work/big.json"
PET="$EXAMPLES/3.0/json/petstore.json"

echo "== loading: pqmcp openapi inspect, 1,000 operations ($(wc -c <"$work/big.json") bytes) against the Petstore"
for r in $(seq "$ROUNDS"); do
  for spec in "$PET" "$work/big.json"; do
    /usr/bin/time -f "%e %M" -o "$work/time" "$PQMCP" openapi inspect "$spec" --max-tools 2000 --json >"$work/out.json"
    read -r secs kib <"$work/time"
    tools=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["tools"])' "$work/out.json")
    echo "{\"part\":\"load\",\"round\":$r,\"spec\":\"$(basename "$spec")\",\"tools\":$tools,\"seconds\":$secs,\"max_rss_kib\":$kib}"
  done
done

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
node "$PRISM" mock "$PET" -p "$PORT" -h 127.0.0.1 >"$work/prism.log" 2>&1 &
for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
cat >"$work/gw.yaml" <<YAML
threads: 1
upstreams:
  - name: pets
    openapi:
      spec: $PET
      base_url: http://127.0.0.1:$PORT
      auth: { type: api_key, in: header, name: api_key, value: bench-key }
  - name: big
    openapi: { spec: $work/big.json, base_url: "http://127.0.0.1:9", max_tools: 1000 }
YAML
"$PQMCP" serve --config "$work/gw.yaml" --listen 127.0.0.1:0 --identity "$work/gw" --log-level info \
  >"$work/ready" 2>"$work/gw.log" &
for _ in $(seq 200); do grep -q 'ready on' "$work/ready" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'https://[^ ]*/mcp' "$work/ready" | head -1)
PIN=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready" | cut -d' ' -f2)
grep -o 'upstream big: [0-9]* tools from .*' "$work/gw.log" | sed 's/^/gateway: /'

echo "== tools/list of 1,003 tools (1,000 + the Petstore's 19... all upstreams) through pqmcp connect"
node "$HERE/list.mjs" "$PQMCP" "$URL" "$PIN" "$work/client" "$ROUNDS"

echo "== tools/call getPetById: through the gateway against straight to Prism ($N calls)"
for r in $(seq "$ROUNDS"); do
  for c in 1 8; do
    "$BENCH" http "$URL" --pin "$PIN" --identity "$work/client" --requests "$N" --concurrency "$c" \
      --tool pets__getPetById --arguments '{"petId":7}' --label "gateway c=$c round $r"
    node "$HERE/direct.mjs" "http://127.0.0.1:$PORT/pet/7" "$N" "$c" "prism c=$c round $r" "api_key: bench-key"
  done
done
