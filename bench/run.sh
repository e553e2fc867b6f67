#!/usr/bin/env bash
# make bench: every benchmark, each side by side with its baseline in the same run.
#   bench/run.sh BUILD_DIR
set -euo pipefail
BUILD="${1:-build}"
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${PQMCP_OPENSSL_ROOT:=$("$HERE/../scripts/bootstrap.sh" --prefix)}"
export PQMCP_OPENSSL_ROOT

echo "== crypto: pqmcp wrappers vs openssl speed (same OpenSSL prefix)"
"$HERE/crypto/compare.sh" "$BUILD/bench/crypto/bench_crypto"

echo
echo "== TLS 1.3 handshakes: PQ profiles vs classical, one process, loopback"
"$BUILD/bench/handshake/bench_handshake" --benchmark_counters_tabular=true

echo
echo "== pqmcp bench: key exchange, signatures, handshakes per profile (the user's own run; report in $BUILD/bench-report)"
"$BUILD/pqmcp" bench --out "$BUILD/bench-report"

echo
echo "== policy decisions: the example policy and 1,000 rules (p50/p99, allocations)"
"$BUILD/bench/policy/bench_policy" --benchmark_counters_tabular=true --benchmark_min_time=1

echo
echo "== tool integrity: scanner throughput; signing a 50-tool list vs serializing it"
"$BUILD/bench/integrity/bench_scanner" --benchmark_min_time=1
"$BUILD/bench/integrity/bench_signing" --benchmark_min_time=1

echo
echo "== audit trail: records/s through the writer (chain, group commit, checkpoints) vs plain SQLite; append()"
"$BUILD/bench/audit/bench_audit" --benchmark_min_time=1

echo
echo "== MCP end to end: connect -> serve -> demo vs demo-server direct vs supergateway"
"$HERE/mcp/e2e.sh" "$BUILD"

echo
echo "== the cost of one request: defaults against audit, integrity and the dashboard off (8 and 1 in flight)"
"$HERE/mcp/variants.sh" "$BUILD" 40000 3 defaults "off=--no-audit --no-integrity --dashboard off" "noaudit=--no-audit"
IN_FLIGHT=1 "$HERE/mcp/variants.sh" "$BUILD" 10000 3 defaults "off=--no-audit --no-integrity --dashboard off"
echo "== MCP 2026-07-28 against 2025-11-25: tools/call through serve, side by side"
IN_FLIGHT=8 "$HERE/mcp/variants.sh" "$BUILD" 30000 4 sessions "stateless=cli:--revision cli:2026-07-28"
IN_FLIGHT=1 "$HERE/mcp/variants.sh" "$BUILD" 20000 3 sessions "stateless=cli:--revision cli:2026-07-28"
echo "== parsing a body against reading the 2026-07-28 headers"
"$BUILD/bench/mcp/bench_parse" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

echo
echo "== metrics counted by every thread: a shard per thread against one lock per family (1, 2, 4 threads)"
"$BUILD/bench/observe/bench_metrics" --benchmark_min_time=0.5 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

echo
echo "== threads: serve --threads 1 vs 2 (tools/call and full PQ handshakes; gateway CPU per 1,000)"
PQMCP_OPENSSL_BIN="$PQMCP_OPENSSL_ROOT/bin/openssl" "$HERE/mcp/threads.sh" "$BUILD" 20000 3 10

echo
echo "== OAuth: tools/call with a JWT access token checked per request, against no OAuth"
"$HERE/mcp/oauth.sh" "$BUILD" 30000 5

echo
echo "== OpenAPI upstreams: loading 1,000 operations, listing them, tools/call through the gateway and straight to Prism"
"$HERE/openapi/openapi.sh" "$BUILD" 2000 3

echo
echo "== cluster: Redis counts, audit shipping, acknowledged answers, HAProxy, 2 replicas (CPU per call)"
"$HERE/mcp/cluster.sh" "$BUILD" 20000 3

echo
echo "== soak: 1,000 sessions over 10 minutes, RSS every 10 s (errors, growth, slope per hour)"
"$HERE/soak.sh" "$BUILD"
