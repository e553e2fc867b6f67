#!/usr/bin/env bash
# Two builds of the gateway side by side in one run, the same client (the
# second build's bench_mcp), alternating rounds: tools/call demo__echo over
# HTTPS to `serve --demo`, 1 and 8 in flight. For a change on the request
# path: build the commit before it in another tree, then
#   bench/mcp/ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [REQUESTS] [ROUNDS]
set -euo pipefail
OLD="$(cd "$1" && pwd)/pqmcp"
NEW="$(cd "$2" && pwd)/pqmcp"
BENCH="$(cd "$2" && pwd)/bench/mcp/bench_mcp"
N=${3:-20000}
ROUNDS=${4:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf $work' EXIT
start() {  # $1 binary, $2 tag, $3 extra
  "$1" serve --demo --listen 127.0.0.1:0 --identity "$work/gw-$2" --log-level warn $3 >"$work/ready-$2" 2>"$work/log-$2" &
  for _ in $(seq 100); do grep -q 'ready on' "$work/ready-$2" 2>/dev/null && break; sleep 0.1; done
}
start "$OLD" old ""
start "$NEW" new ""
URL_OLD=$(grep -o 'https://[^ ]*/mcp' "$work/ready-old" | head -1); PIN_OLD=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready-old" | cut -d' ' -f2)
URL_NEW=$(grep -o 'https://[^ ]*/mcp' "$work/ready-new" | head -1); PIN_NEW=$(grep -o 'peer pq1[a-z2-7]*' "$work/ready-new" | cut -d' ' -f2)
for r in $(seq "$ROUNDS"); do
  for conc in 1 8; do
    "$BENCH" http "$URL_OLD" --pin "$PIN_OLD" --identity "$work/client" --requests "$N" --concurrency "$conc" --tool demo__echo --label "before c=$conc round $r"
    "$BENCH" http "$URL_NEW" --pin "$PIN_NEW" --identity "$work/client" --requests "$N" --concurrency "$conc" --tool demo__echo --label "after c=$conc round $r"
  done
done
