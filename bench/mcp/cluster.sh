#!/usr/bin/env bash
# The cost of a tier's shared state, side by side in one run, alternating
# rounds, tools/call demo__echo under a policy whose rule has a quota (so
# every call is counted):
#   local    one replica, the quota counted in the process (today's default)
#   redis    one replica, the quota counted in Redis (cluster.redis)
#   +ack     redis, and answers wait for their audit commit (audit.acknowledge: committed)
#   +ship    redis, and the audit shipped to PostgreSQL (cluster.postgres; pins there too)
#   tier     one replica with everything a tier has: Redis, PostgreSQL (pins
#            and audit shipping), audit.acknowledge: committed, and HAProxy in
#            TCP mode in front of it
#   2x       two such replicas, one client on each (directly), their CPU added
# Rates are wall clock (the clients share the two cores); CPU per 1,000
# calls is the gateways' own (utime + stime from /proc, HAProxy's not
# included), so the cost per call is known whatever the clients take.
#   [CLIENTS=2 CONC=4] bench/mcp/cluster.sh [BUILD_DIR] [REQUESTS_PER_CLIENT] [ROUNDS]
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
N=${2:-20000}
ROUNDS=${3:-3}
CLIENTS=${CLIENTS:-2}
CONC=${CONC:-4}
PQMCP="$BUILD/pqmcp"
BENCH="$BUILD/bench/mcp/bench_mcp"
HERE="$(cd "$(dirname "$0")" && pwd)"
ENGINES="$HERE/../../tests/cluster/engines.sh"
TICK=$(getconf CLK_TCK)
work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  "$ENGINES" stop "$work/engines" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

eval "$("$ENGINES" start "$work/engines" | sed 's/^/export /; s/=\(.*\)$/="\1"/')"
cat >"$work/policy.yaml" <<POLICY
version: 1
default: allow
rules:
  - id: counted
    match: { tool: demo__echo }
    quota: { per: identity, limit: 1000000000, window: 1h }
    effect: allow
POLICY
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {  # $1 name, then serve's extra flags
  local name=$1
  shift
  local port
  port=$(free_port)
  "$PQMCP" serve --demo --listen "127.0.0.1:$port" --identity "$work/id" --log-level warn \
    --threads 1 --policy "$work/policy.yaml" "$@" >"$work/ready-$name" 2>"$work/log-$name" &
  echo $! >"$work/pid-$name"
  for _ in $(seq 100); do grep -q 'ready on' "$work/ready-$name" 2>/dev/null && break; sleep 0.1; done
  grep -q 'ready on' "$work/ready-$name" || { cat "$work/log-$name" >&2; exit 1; }
  echo "$port" >"$work/port-$name"
}
cpu() { awk '{print $14 + $15}' "/proc/$(cat "$work/pid-$1")/stat"; }
now() { date +%s.%N; }
pin() { grep -o 'peer pq1[a-z2-7]*' "$work/ready-$1" | cut -d' ' -f2; }

tier=(--redis "$PQMCP_TEST_REDIS" --postgres "$PQMCP_TEST_POSTGRES" --audit-acknowledge committed)
start local --replica local
start redis --replica redis --redis "$PQMCP_TEST_REDIS"
start ack --replica ack --redis "$PQMCP_TEST_REDIS" --audit-acknowledge committed
start ship --replica ship --redis "$PQMCP_TEST_REDIS" --postgres "$PQMCP_TEST_POSTGRES"
start tier --replica tier "${tier[@]}"
start tier-a --replica tier-a "${tier[@]}"
start tier-b --replica tier-b "${tier[@]}"
front=$(free_port)
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 2000
defaults
  mode tcp
  timeout connect 1s
  timeout client 60s
  timeout server 60s
frontend mcp
  bind 127.0.0.1:$front
  default_backend replicas
backend replicas
  balance source
  server tier 127.0.0.1:$(cat "$work/port-tier") check
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$front") 2>/dev/null && break; sleep 0.1; done

run() {  # $1 label, $2 "gateway names whose CPU counts", then one port per client
  local label=$1 names=$2
  shift 2
  local ports=("$@") c0=0 c1=0 n pids=()
  for g in $names; do c0=$((c0 + $(cpu "$g"))); done
  local w0
  w0=$(now)
  for c in $(seq "$CLIENTS"); do
    local port=${ports[$(((c - 1) % ${#ports[@]}))]}
    "$BENCH" http "https://127.0.0.1:$port/mcp" --pin "$(pin local)" --identity "$work/client-$c" \
      --requests "$N" --warmup 200 --concurrency "$CONC" --tool demo__echo \
      --label "$label round $r client $c" >"$work/calls-$label-$c" &
    pids+=($!)
  done
  wait "${pids[@]}"
  local w1
  w1=$(now)
  for g in $names; do c1=$((c1 + $(cpu "$g"))); done
  n=$((CLIENTS * (N + 200)))
  awk -v label="$label" -v r="$r" -v n="$n" -v w="$(echo "$w1 - $w0" | bc)" -v cpu="$((c1 - c0))" \
      -v tick="$TICK" -v clients="$CLIENTS" -v conc="$CONC" 'BEGIN {
    printf "{\"part\":\"cluster\",\"setup\":\"%s\",\"round\":%d,\"clients\":%d,\"in_flight_each\":%d,\"requests\":%d,\"wall_s\":%.3f,\"per_s\":%.0f,\"gateway_cpu_s\":%.2f,\"cpu_ms_per_1000\":%.1f}\n",
      label, r, clients, conc, n, w, n / w, cpu / tick, 1000 * (cpu / tick) / n * 1000 }'
  # Every call answered? (bench_mcp reports errors in its own JSON line.)
  if grep -q '"errors":[1-9]' "$work"/calls-"$label"-*; then
    echo "cluster.sh: $label: calls failed" >&2
    cat "$work"/calls-"$label"-* >&2
    exit 1
  fi
}

for r in $(seq "$ROUNDS"); do
  run local "local" "$(cat "$work/port-local")"
  run redis "redis" "$(cat "$work/port-redis")"
  run +ack "ack" "$(cat "$work/port-ack")"
  run +ship "ship" "$(cat "$work/port-ship")"
  run tier "tier" "$front"
  run 2x "tier-a tier-b" "$(cat "$work/port-tier-a")" "$(cat "$work/port-tier-b")"
done
