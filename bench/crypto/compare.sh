#!/usr/bin/env bash
# Runs the crypto micro-benchmarks (bench_crypto, through pqmcp's wrappers) and
# `openssl speed` from the SAME OpenSSL prefix, and prints a Markdown table:
# operation, wrapper ops/s, openssl speed ops/s, wrapper/openssl.
#
# usage: bench/crypto/compare.sh [path/to/bench_crypto]
#   bench_crypto defaults to $BENCH_CRYPTO, then build/bench/crypto/bench_crypto
#   (the `release` preset). Build it without sanitizers.
#   OpenSSL prefix: $PQMCP_OPENSSL_ROOT, else ~/.cache/pqmcp/openssl.
#   $BENCH_MIN_TIME (seconds per benchmark, default 0.5), $SPEED_SECONDS
#   (seconds per openssl speed operation, default 1) and $ROUNDS (default 2)
#   trade time for noise.
#
# Both sides report CPU time (bench_crypto's cpu_time, openssl speed's default
# user-time divisor). On a shared machine other processes skew whichever side
# runs while they do, so the two sides run interleaved, one algorithm family
# at a time, for $ROUNDS rounds, and each side's best rate is kept. Takes about
# two minutes on a 2-core machine.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${1:-${BENCH_CRYPTO:-$repo/build/bench/crypto/bench_crypto}}"
prefix="$(readlink -f "${PQMCP_OPENSSL_ROOT:-$HOME/.cache/pqmcp/openssl}")"
openssl="$prefix/bin/openssl"
min_time="${BENCH_MIN_TIME:-0.5}"
speed_seconds="${SPEED_SECONDS:-1}"
rounds="${ROUNDS:-2}"

die() { echo "compare.sh: $*" >&2; exit 1; }
[[ -x "$bench" ]] || die "no bench_crypto at $bench (build the bench_crypto target, or pass its path)"
[[ -x "$openssl" ]] || die "no openssl at $openssl (set PQMCP_OPENSSL_ROOT)"
command -v python3 >/dev/null || die "python3 is required"

# The comparison only means something if bench_crypto loads libcrypto from the
# same prefix as the openssl binary, and is not instrumented.
libs="$(ldd "$bench")"
linked="$(awk '/libcrypto\.so/ {print $3}' <<<"$libs")"
[[ -n "$linked" ]] || die "$bench does not link libcrypto dynamically"
[[ "$(readlink -f "$linked")" == "$prefix"/lib/* ]] ||
  die "$bench loads $linked, not libcrypto from $prefix"
if grep -q -E 'libasan|libubsan|libtsan' <<<"$libs"; then
  die "$bench is built with sanitizers; use a release build"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# family: bench_crypto filter;openssl speed algorithms
families=(
  '^ML-KEM-;ML-KEM-768 ML-KEM-1024'
  '^X25519/;X25519 ecdhx25519'
  '^RSA-3072-;rsa3072'
  '^ML-DSA-;ML-DSA-44 ML-DSA-65 ML-DSA-87'
  '^(Ed25519|ECDSA-P256)/;ed25519 ecdsap256'
)
echo "compare.sh: $bench (${min_time}s per benchmark) vs $openssl speed" \
  "(${speed_seconds}s per operation), $rounds rounds; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((round = 1; round <= rounds; round++)); do
  for i in "${!families[@]}"; do
    filter="${families[$i]%%;*}"
    read -r -a algs <<<"${families[$i]#*;}"
    echo "compare.sh: round $round: ${algs[*]}" >&2
    "$bench" --benchmark_format=json --benchmark_min_time="$min_time" \
      --benchmark_filter="$filter" >"$work/bench-$round-$i.json"
    "$openssl" speed -seconds "$speed_seconds" "${algs[@]}" \
      >"$work/speed-$round-$i.txt" 2>"$work/speed.err" ||
      { cat "$work/speed.err" >&2; die "openssl speed ${algs[*]} failed"; }
  done
done

python3 - "$work" "$("$openssl" version)" "$rounds" <<'PY'
import glob
import json
import os
import re
import sys

work, version, rounds = sys.argv[1:4]


def keep_best(table, key, value):
    table[key] = max(value, table.get(key, 0.0))


# --- bench_crypto: ops/s from CPU time per iteration -------------------------
scale = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}
wrapper = {}
for path in sorted(glob.glob(os.path.join(work, "bench-*.json"))):
    with open(path) as f:
        doc = json.load(f)
    for b in doc["benchmarks"]:
        if b.get("error_occurred"):
            print(f"bench_crypto: {b['name']}: {b.get('error_message')}", file=sys.stderr)
            continue
        name = "/".join(b["name"].split("/")[:2])  # drop "/min_time:..." suffixes
        keep_best(wrapper, name, scale[b["time_unit"]] / b["cpu_time"])

# --- openssl speed (human-readable output) ---------------------------------
speed = {}
num = r"([0-9.]+)"
for path in sorted(glob.glob(os.path.join(work, "speed-*.txt"))):
    section = None
    with open(path) as f:
        for line in f:
            if re.search(r"keygens/s\s+encaps/s", line):
                section = "kem"
                continue
            if re.search(r"keygens/s\s+sign/s", line):
                section = "sig"
                continue
            m = re.match(r"\s*rsa\s+(\d+) bits .*?" + r"\s+".join([num] * 4) + r"\s*$", line)
            if m:
                bits = m.group(1)
                for op, v in zip(("sign", "verify", "encrypt", "decrypt"), m.groups()[1:]):
                    keep_best(speed, f"rsa{bits}/{op}", float(v))
                continue
            m = re.match(r"\s*\d+ bits ecdsa \((\w+)\).*?" + num + r"\s+" + num + r"\s*$", line)
            if m:
                keep_best(speed, f"ecdsa-{m.group(1)}/sign", float(m.group(2)))
                keep_best(speed, f"ecdsa-{m.group(1)}/verify", float(m.group(3)))
                continue
            m = re.match(r"\s*\d+ bits ecdh \((\w+)\).*?" + num + r"\s*$", line)
            if m:
                keep_best(speed, f"ecdh-{m.group(1)}/derive", float(m.group(2)))
                continue
            m = re.match(r"\s*\d+ bits EdDSA \((\w+)\).*?" + num + r"\s+" + num + r"\s*$", line)
            if m:
                keep_best(speed, f"{m.group(1)}/sign", float(m.group(2)))
                keep_best(speed, f"{m.group(1)}/verify", float(m.group(3)))
                continue
            m = re.match(r"\s*(\S+)\s+[0-9.]+s\s+[0-9.]+s\s+[0-9.]+s\s+" + r"\s+".join([num] * 3) + r"\s*$", line)
            if m and section:
                ops = ("keygen", "encaps", "decaps") if section == "kem" else ("keygen", "sign", "verify")
                for op, v in zip(ops, m.groups()[1:]):
                    keep_best(speed, f"{m.group(1)}/{op}", float(v))

# operation (as printed), bench_crypto name, openssl speed key, note index
rows = [
    ("ML-KEM-768 keygen", "ML-KEM-768/keygen", "ML-KEM-768/keygen", None),
    ("ML-KEM-768 encaps", "ML-KEM-768/encaps", "ML-KEM-768/encaps", None),
    ("ML-KEM-768 decaps", "ML-KEM-768/decaps", "ML-KEM-768/decaps", None),
    ("ML-KEM-1024 keygen", "ML-KEM-1024/keygen", "ML-KEM-1024/keygen", None),
    ("ML-KEM-1024 encaps", "ML-KEM-1024/encaps", "ML-KEM-1024/encaps", None),
    ("ML-KEM-1024 decaps", "ML-KEM-1024/decaps", "ML-KEM-1024/decaps", None),
    ("X25519 keygen", "X25519/keygen", "X25519/keygen", 1),
    ("X25519 derive", "X25519/derive", "ecdh-X25519/derive", None),
    ("RSA-3072 keygen", "RSA-3072-OAEP/keygen", "rsa3072/keygen", 2),
    ("RSA-3072 OAEP encrypt", "RSA-3072-OAEP/encrypt", "rsa3072/encrypt", 3),
    ("RSA-3072 OAEP decrypt", "RSA-3072-OAEP/decrypt", "rsa3072/decrypt", 3),
    ("ML-DSA-44 sign", "ML-DSA-44/sign", "ML-DSA-44/sign", None),
    ("ML-DSA-44 verify", "ML-DSA-44/verify", "ML-DSA-44/verify", None),
    ("ML-DSA-65 sign", "ML-DSA-65/sign", "ML-DSA-65/sign", None),
    ("ML-DSA-65 verify", "ML-DSA-65/verify", "ML-DSA-65/verify", None),
    ("ML-DSA-87 sign", "ML-DSA-87/sign", "ML-DSA-87/sign", None),
    ("ML-DSA-87 verify", "ML-DSA-87/verify", "ML-DSA-87/verify", None),
    ("Ed25519 sign", "Ed25519/sign", "Ed25519/sign", None),
    ("Ed25519 verify", "Ed25519/verify", "Ed25519/verify", None),
    ("ECDSA P-256 sign", "ECDSA-P256/sign", "ecdsa-nistp256/sign", 4),
    ("ECDSA P-256 verify", "ECDSA-P256/verify", "ecdsa-nistp256/verify", 4),
    ("RSA-3072 PSS sign", "RSA-3072-PSS/sign", "rsa3072/sign", 5),
    ("RSA-3072 PSS verify", "RSA-3072-PSS/verify", "rsa3072/verify", 5),
]
notes = {
    1: "openssl speed: keygen of the X25519 DHKEM.",
    2: "RSA key generation time varies widely with the primes found; both sides run only a few keys.",
    3: "openssl speed encrypts/decrypts with PKCS#1 v1.5 padding; the wrapper uses OAEP with SHA-256.",
    4: "openssl speed signs a precomputed 20-byte digest; the wrapper hashes a 32-byte message with SHA-256 first.",
    5: "openssl speed signs a precomputed digest with PKCS#1 v1.5; the wrapper does SHA-256 + PSS (salt = 32).",
}


def fmt(v):
    return "n/a" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


print(f"Crypto micro-benchmarks, {version}; best of {rounds} interleaved rounds, CPU time")
print()
print("| operation | wrapper ops/s | openssl speed ops/s | wrapper/openssl |")
print("|---|---:|---:|---:|")
used = []
missing = False
for label, wkey, skey, note in rows:
    w = wrapper.get(wkey)
    s = speed.get(skey)
    missing |= w is None or s is None
    ratio = f"{w / s:.2f}" if w and s else "n/a"
    mark = ""
    if note:
        if note not in used:
            used.append(note)
        mark = f" [{used.index(note) + 1}]"
    print(f"| {label}{mark} | {fmt(w)} | {fmt(s)} | {ratio} |")
print()
for i, note in enumerate(used, 1):
    print(f"[{i}] {notes[note]}")
sys.exit(1 if missing else 0)
PY
