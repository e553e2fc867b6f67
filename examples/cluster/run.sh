#!/usr/bin/env bash
# The tier of this directory on one machine, on loopback, to try it: Redis
# and PostgreSQL (on unix sockets, in a temporary directory), two replicas of
# `pqmcp serve --demo` sharing one identity, and HAProxy in front on
# 127.0.0.1:8443. Prints the `pqmcp connect` command; Ctrl-C stops it all.
#   examples/cluster/run.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
pqmcp="$(cd "${1:-$root/build}" && pwd)/pqmcp"
engines="$root/tests/cluster/engines.sh"
work=$(mktemp -d)
stop() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  "$engines" stop "$work/engines" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT INT TERM
eval "$("$engines" start "$work/engines" | sed 's/^/export /; s/=\(.*\)$/="\1"/')"
head -c 64 /dev/urandom >"$work/ticket.key"
chmod 600 "$work/ticket.key"
cat >"$work/policy.yaml" <<POLICY
version: 1
default: allow
rules:
  - id: ten-a-minute
    match: { tool: demo__echo }
    quota: { per: identity, limit: 10, window: 1m }
    effect: allow
POLICY
for name in gw-a:18443 gw-b:18444; do
  "$pqmcp" serve --demo --replica "${name%%:*}" --listen "127.0.0.1:${name##*:}" \
    --identity "$work/identity" --policy "$work/policy.yaml" --redis "$PQMCP_TEST_REDIS" \
    --postgres "$PQMCP_TEST_POSTGRES" --ticket-keys "$work/ticket.key" \
    --audit-acknowledge committed >"$work/${name%%:*}.out" 2>"$work/${name%%:*}.log" &
  for _ in $(seq 100); do grep -q 'ready on' "$work/${name%%:*}.out" 2>/dev/null && break; sleep 0.1; done
done
sed "s/10.0.0.11:8443/127.0.0.1:18443/; s/10.0.0.12:8443/127.0.0.1:18444/; s/0.0.0.0:8443/127.0.0.1:8443/" \
  "$here/haproxy.cfg" >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
peer=$(grep -o 'peer pq1[a-z2-7]*' "$work/gw-a.out" | cut -d' ' -f2)
cat <<TEXT
tier up: HAProxy on 127.0.0.1:8443 -> gw-a (127.0.0.1:18443), gw-b (127.0.0.1:18444)
connect with:
  $pqmcp connect https://127.0.0.1:8443/mcp --identity ~/.config/pqmcp/client --pin $peer
approvals:    $pqmcp tools list --state '$PQMCP_TEST_POSTGRES'
central audit: $pqmcp audit verify '$PQMCP_TEST_POSTGRES'
logs in $work; Ctrl-C stops everything
TEXT
wait
