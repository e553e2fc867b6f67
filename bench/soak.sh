#!/usr/bin/env bash
# The soak (make bench; docs/benchmarks.md): 1,000 sessions over 10 minutes
# against one gateway, RSS sampled every 10 s; prints the figures (errors,
# RSS after warm-up and at the end, slope per hour). The same test runs for
# 60 s in make test.
#   bench/soak.sh BUILD_DIR [SECONDS] [SESSIONS]
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
SECONDS_="${2:-600}"
SESSIONS="${3:-1000}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
[[ -x "$BUILD/pqmcp" ]] || { echo "soak: build first (make build)" >&2; exit 1; }
report="$(mktemp "${TMPDIR:-/tmp}/pqmcp-soak.XXXXXX")"
trap 'rm -f "$report"' EXIT
cd "$ROOT/tests/security"
PQMCP_BIN="$BUILD/pqmcp" PQMCP_SOAK_SECONDS="$SECONDS_" PQMCP_SOAK_SESSIONS="$SESSIONS" \
    PQMCP_SOAK_SAMPLE_SECONDS=10 PQMCP_SOAK_REPORT="$report" \
    node --test --test-reporter=dot test_soak.mjs
cat "$report"
