#!/usr/bin/env bash
# The identity and version subcommands, run as a user would.
#   test_cli_identity.sh PQMCP OPENSSL
set -euo pipefail
PQMCP="$1"
OPENSSL="$2"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
check() {  # check NAME COMMAND...
  local name="$1"; shift
  if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
expect_rc() {  # expect_rc RC OUTFILE COMMAND...
  local want="$1" out="$2"; shift 2
  set +e; "$@" >"$out" 2>&1; local rc=$?; set -e
  [[ $rc -eq $want ]] || { echo "  exit $rc, wanted $want: $(cat "$out")"; return 1; }
}

id=$("$PQMCP" keygen --out "$T/gw" --name localhost --name 127.0.0.1)
check "keygen prints a pq1 peer id" grep -Eq '^pq1[a-z2-7]{52}$' <<<"$id"
check "identity.key is mode 600" test "$(stat -c %a "$T/gw/identity.key")" = 600
check "id DIR matches keygen" test "$("$PQMCP" id "$T/gw")" = "$id"
check "id CERT matches keygen" test "$("$PQMCP" id "$T/gw/identity.crt")" = "$id"
check "key is PKCS#8 PEM" grep -q -- '-----BEGIN PRIVATE KEY-----' "$T/gw/identity.key"

"$OPENSSL" x509 -in "$T/gw/identity.crt" -noout -text >"$T/x509.txt"
check "certificate key is ML-DSA-65" grep -q 'Public Key Algorithm: ML-DSA-65' "$T/x509.txt"
check "certificate signed with ML-DSA-65" grep -q 'Signature Algorithm: ML-DSA-65' "$T/x509.txt"
check "CN is the peer id" grep -q "Subject: CN=$id" "$T/x509.txt"
check "SAN carries the names" grep -q 'DNS:localhost, IP Address:127.0.0.1' "$T/x509.txt"
check "self-signed certificate verifies as its own anchor" \
  "$OPENSSL" verify -CAfile "$T/gw/identity.crt" "$T/gw/identity.crt"

check "keygen refuses to overwrite" expect_rc 1 "$T/out" "$PQMCP" keygen --out "$T/gw"
check "  and says how to force" grep -q -- '--force' "$T/out"
check "the old identity is intact" test "$("$PQMCP" id "$T/gw")" = "$id"
id2=$("$PQMCP" keygen --out "$T/gw" --force --alg ml-dsa-87)
check "--force replaces it" test "$("$PQMCP" id "$T/gw")" = "$id2"
"$OPENSSL" x509 -in "$T/gw/identity.crt" -noout -text >"$T/x509b.txt"
check "--alg ml-dsa-87" grep -q 'Public Key Algorithm: ML-DSA-87' "$T/x509b.txt"
check "--alg rsa is a usage error" expect_rc 2 "$T/out" "$PQMCP" keygen --out "$T/x" --alg rsa
check "id of a missing path fails" expect_rc 1 "$T/out" "$PQMCP" id "$T/none"

check "peers add by id" "$PQMCP" peers add --file "$T/known" "$id" gateway
check "peers add by directory" "$PQMCP" peers add --file "$T/known" "$T/gw" gateway-new
check "peers add refuses a duplicate name" expect_rc 1 "$T/out" "$PQMCP" peers add --file "$T/known" "$id2" gateway
"$PQMCP" peers list --file "$T/known" >"$T/list"
check "peers list shows both" test "$(grep -c '^pq1' "$T/list")" -eq 2
printf '%s ok 2026-11-01\nnot-an-id x 2026-11-01\n' "$id" >"$T/bad"
check "malformed known_peers fails" expect_rc 1 "$T/out" "$PQMCP" peers list --file "$T/bad"
check "  with the line number" grep -q "$T/bad:2:" "$T/out"

"$PQMCP" version --json >"$T/version.json"
check "version --json has the fields" python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert set(["pqmcp", "openssl", "kems", "signatures", "tls_groups"]) <= set(v), v.keys()
assert v["openssl"]["version"].startswith("OpenSSL 3.")
assert "ML-KEM-768" in v["kems"], v["kems"]
assert "ML-DSA-65" in v["signatures"], v["signatures"]
assert "X25519MLKEM768" in v["tls_groups"], v["tls_groups"]
assert "/.cache/" in v["openssl"]["library"] or "openssl-" in v["openssl"]["library"], v["openssl"]
a = v["allocator"]
assert a["name"] in ("jemalloc", "system"), a
assert ("libjemalloc" in a["library"]) == (a["name"] == "jemalloc"), a
' "$T/version.json"
check "version (text)" expect_rc 0 "$T/out" "$PQMCP" version

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
