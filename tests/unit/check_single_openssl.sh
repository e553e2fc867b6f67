#!/usr/bin/env bash
# Every given binary must resolve libssl and libcrypto from the bootstrap prefix
# only: no Debian library that links OpenSSL 3.0 may pull a second copy into
# the same process.
#   check_single_openssl.sh PREFIX BINARY...
set -euo pipefail
prefix="$(readlink -f "$1")"
shift
status=0
for bin in "$@"; do
  libs=$(ldd "$bin" | awk '/lib(ssl|crypto)\.so/ {print $1 " " $3}')
  if [[ -z "$libs" ]]; then
    echo "FAIL $bin: links no libssl/libcrypto at all"; status=1; continue
  fi
  while read -r name path; do
    real=$(readlink -f "$path")
    if [[ "$real" != "$prefix"/lib/* ]]; then
      echo "FAIL $bin: $name resolves to $real, outside $prefix"; status=1
    fi
  done <<< "$libs"
  count=$(echo "$libs" | awk '{print $1}' | sort -u | wc -l)
  if [[ "$count" -ne 2 ]]; then
    echo "FAIL $bin: expected exactly libssl.so.3 and libcrypto.so.3, got: $libs"; status=1
  fi
  [[ $status -eq 0 ]] && echo "ok $bin: $(echo "$libs" | tr '\n' ' ')"
done
exit $status
