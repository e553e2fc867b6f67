#!/usr/bin/env bash
# The TLS subcommands as a user runs them, against OpenSSL 3.5's own tools:
#   pqmcp tls-serve  <- openssl s_client -groups X25519MLKEM768
#   pqmcp probe      -> openssl s_server -groups ...
#   pqmcp selftest
#   test_cli_tls.sh PQMCP OPENSSL
set -euo pipefail
PQMCP="$1"
OPENSSL="$2"
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
check() {
  local name="$1"; shift
  if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
# wait_for FILE REGEX: up to 15 s for a line to appear (a readiness poll, bounded).
wait_for() {
  local i
  for i in $(seq 1 150); do
    grep -Eq "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "  timed out waiting for /$2/ in $1:"; cat "$1"; return 1
}

# --- tls-serve, reached by openssl s_client ---------------------------------
"$PQMCP" tls-serve --listen 127.0.0.1:0 --identity "$T/srv" --max-connections 2 >"$T/serve.out" 2>&1 &
pids+=($!)
wait_for "$T/serve.out" 'listening on 127\.0\.0\.1:[0-9]+'
port=$(grep -Eo 'listening on 127\.0\.0\.1:[0-9]+' "$T/serve.out" | grep -Eo '[0-9]+$')
check "tls-serve created its identity" test -f "$T/srv/identity.key"
check "tls-serve prints its peer id" grep -q "peer id $("$PQMCP" id "$T/srv")" "$T/serve.out"

# -ign_eof keeps s_client reading after its stdin ends, until `timeout` ends it.
echo hello-pq | timeout 4 "$OPENSSL" s_client -connect "127.0.0.1:$port" -groups X25519MLKEM768 \
  -CAfile "$T/srv/identity.crt" -verify_return_error -ign_eof >"$T/s_client.out" 2>&1 || true
check "s_client negotiated X25519MLKEM768" grep -q 'Negotiated TLS1.3 group: X25519MLKEM768' "$T/s_client.out"
check "s_client saw an ML-DSA-65 signature" grep -Eqi 'Peer signature type: (mldsa65|ML-DSA-65)' "$T/s_client.out"
check "s_client verified the certificate" grep -q 'Verification: OK' "$T/s_client.out"
check "echo came back" grep -q 'hello-pq' "$T/s_client.out"

timeout 20 "$OPENSSL" s_client -connect "127.0.0.1:$port" -groups X25519 </dev/null >"$T/s_client2.out" 2>&1 || true
check "classical-only s_client refused with handshake failure" grep -qi 'handshake failure' "$T/s_client2.out"
wait_for "$T/serve.out" '"error"'
check "tls-serve logged both handshakes as JSON" test "$(grep -c '^{"remote"' "$T/serve.out")" -eq 2
check "  the first with the hybrid group" grep -q '"group":"X25519MLKEM768"' "$T/serve.out"

# --- tls-serve --pin: a client without a certificate is refused ---------------
"$PQMCP" keygen --out "$T/client" >/dev/null
"$PQMCP" tls-serve --listen 127.0.0.1:0 --identity "$T/srv" --pin "$("$PQMCP" id "$T/client")" \
  --max-connections 2 >"$T/serve2.out" 2>&1 &
pids+=($!)
wait_for "$T/serve2.out" 'listening on 127\.0\.0\.1:[0-9]+'
port2=$(grep -Eo 'listening on 127\.0\.0\.1:[0-9]+' "$T/serve2.out" | grep -Eo '[0-9]+$')
echo x | timeout 4 "$OPENSSL" s_client -connect "127.0.0.1:$port2" -groups X25519MLKEM768 \
  -CAfile "$T/srv/identity.crt" -ign_eof >"$T/s_client3.out" 2>&1 || true
wait_for "$T/serve2.out" '"error"'
check "--pin implies client authentication: no certificate, no connection" \
  grep -qi 'certificate required\|peer did not return a certificate' "$T/serve2.out"
echo x | timeout 4 "$OPENSSL" s_client -connect "127.0.0.1:$port2" -groups X25519MLKEM768 \
  -CAfile "$T/srv/identity.crt" -cert "$T/client/identity.crt" -key "$T/client/identity.key" \
  -ign_eof >"$T/s_client4.out" 2>&1 || true
wait_for "$T/serve2.out" '"peer_id":"pq1'
check "  and the pinned client (an ML-DSA-65 certificate) is accepted" \
  grep -q "\"peer_id\":\"$("$PQMCP" id "$T/client")\"" "$T/serve2.out"

# --- probe against openssl s_server -----------------------------------------
"$OPENSSL" req -x509 -newkey mldsa65 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" \
  -subj /CN=localhost -days 2 >/dev/null 2>&1
# s_server quits when its stdin reaches EOF: give it a FIFO that stays open.
mkfifo "$T/stdin"
exec 3<>"$T/stdin"
probe_against() {  # probe_against GROUPS -> JSON on stdout (exit code kept in $T/rc)
  "$OPENSSL" s_server -accept 127.0.0.1:0 -cert "$T/cert.pem" -key "$T/key.pem" -tls1_3 \
    -groups "$1" -naccept 2 <&3 >"$T/s_server.out" 2>&1 &
  local sp=$!
  pids+=($sp)
  wait_for "$T/s_server.out" 'ACCEPT .*:[0-9]+' >&2
  local p
  p=$(grep -Eo 'ACCEPT .*:[0-9]+' "$T/s_server.out" | grep -Eo '[0-9]+$')
  set +e
  "$PQMCP" probe "127.0.0.1:$p" --json --timeout 10
  echo $? >"$T/rc"
  set -e
  kill "$sp" 2>/dev/null || true
}
probe_against X25519MLKEM768 >"$T/p1.json"
check "probe: X25519MLKEM768 only is quantum-safe" grep -q '"verdict":"quantum-safe"' "$T/p1.json"
check "  exit 0" test "$(cat "$T/rc")" -eq 0
check "  group reported" grep -q '"group":"X25519MLKEM768"' "$T/p1.json"
check "  signature reported (the certificate's ML-DSA-65)" grep -Eqi '"signature":"(mldsa65|ML-DSA-65)"' "$T/p1.json"
check "  accepts_classical false" grep -q '"accepts_classical":false' "$T/p1.json"
probe_against X25519MLKEM768:X25519 >"$T/p2.json"
check "probe: hybrid plus X25519 is hybrid-optional" grep -q '"verdict":"hybrid-optional"' "$T/p2.json"
check "  exit 3" test "$(cat "$T/rc")" -eq 3
probe_against X25519 >"$T/p3.json"
check "probe: X25519 only is classical" grep -q '"verdict":"classical"' "$T/p3.json"

set +e
"$PQMCP" probe 127.0.0.1:1 --timeout 2 >"$T/p4.out" 2>&1
rc=$?
set -e
check "probe of a closed port fails with exit 1" test "$rc" -eq 1
check "  and says it could not connect" grep -qi 'connect' "$T/p4.out"
set +e
"$PQMCP" probe no-port-here >"$T/p5.out" 2>&1
rc=$?
set -e
check "probe without a port is a usage error" test "$rc" -eq 2

# --- selftest -----------------------------------------------------------------
"$PQMCP" selftest >"$T/selftest.out" 2>&1
check "selftest passes" grep -q 'selftest: ok' "$T/selftest.out"
check "  pq-hybrid negotiated X25519MLKEM768" grep -Eq '^pq-hybrid +X25519MLKEM768 +mldsa65' "$T/selftest.out"
check "  pq-strict negotiated MLKEM1024" grep -Eq '^pq-strict +MLKEM1024 +mldsa87' "$T/selftest.out"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
