#!/usr/bin/env bash
# Installs what pqmcp needs on Debian 12 and provides OpenSSL >= 3.5 in a cached
# prefix built from Debian's own source package for the next release (trixie).
#
#   scripts/bootstrap.sh            install packages (if missing) and OpenSSL (if missing)
#   scripts/bootstrap.sh --prefix   print the OpenSSL prefix only (after a bootstrap)
#
# Environment:
#   PQMCP_DEPS        cache directory (default: $HOME/.cache/pqmcp)
#   PQMCP_SKIP_APT=1  do not touch apt packages (for machines set up by hand)
#   PQMCP_EXTRA_PACKAGES="a b"  Debian packages a target needs beyond these
#                     (make fuzz: clang-16 and its libFuzzer runtime)
#
# Idempotent: a second run with everything present takes well under a second.
set -euo pipefail

DEPS="${PQMCP_DEPS:-$HOME/.cache/pqmcp}"
CURRENT="$DEPS/openssl"          # symlink to the verified openssl-<version> prefix
SUITE_NEXT="trixie"
PACKAGES=(
  build-essential cmake ninja-build pkg-config git dpkg-dev perl
  libboost1.81-all-dev libboost-json1.81-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libre2-dev libvalijson-dev libsqlite3-dev libicu-dev libexpected-dev libseccomp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libhiredis-dev libpq-dev redis-server postgresql haproxy libjemalloc-dev libcjose-dev libjansson-dev
  chromium
  clang-format clang-tidy python3 curl ccache
)

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

if [[ "${1:-}" == "--prefix" ]]; then
  [[ -e "$CURRENT" ]] || die "no OpenSSL prefix at $CURRENT; run scripts/bootstrap.sh"
  readlink -f "$CURRENT"
  exit 0
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  [[ "${PQMCP_SKIP_APT:-0}" == 1 ]] && return 0
  local missing=()
  local p
  local wanted=("${PACKAGES[@]}")
  # shellcheck disable=SC2206  # a space-separated list by design
  [[ -n "${PQMCP_EXTRA_PACKAGES:-}" ]] && wanted+=(${PQMCP_EXTRA_PACKAGES})
  for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  # Node.js and npm run the MCP interop tests (the official SDK and servers);
  # a machine that already has a newer node keeps it.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
  fi
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# A prefix is good when its openssl runs, is >= 3.5 and offers ML-KEM-768.
verify_prefix() {
  local prefix="$1" bin="$1/bin/openssl" ver
  [[ -x "$bin" ]] || return 1
  ver=$(LD_LIBRARY_PATH="$prefix/lib" "$bin" version 2>/dev/null | awk '{print $2}') || return 1
  [[ -n "$ver" ]] || return 1
  dpkg --compare-versions "$ver" ge 3.5.0 || return 1
  LD_LIBRARY_PATH="$prefix/lib" "$bin" list -kem-algorithms 2>/dev/null | grep -q 'ML-KEM-768' || return 1
  return 0
}

# The machine's Debian archive, read from its own apt configuration (deb822
# .sources files or one-line sources.list): prints "URI KEYRING", where KEYRING
# is the entry's own Signed-By file (Debian's archive keyring if it names none).
# Never written into the repo.
debian_archive() {
  local f line
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    line=$(awk '
      BEGIN { RS=""; FS="\n" }
      {
        u=""; s=""; c=""; k="";
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)       { u=$i; sub(/^URIs:[ \t]*/, "", u) }
          if ($i ~ /^Suites:/)     { s=$i }
          if ($i ~ /^Components:/) { c=$i }
          if ($i ~ /^Signed-By:/)  { k=$i; sub(/^Signed-By:[ \t]*/, "", k) }
        }
        if (u != "" && s ~ /(bookworm|stable)([ \t]|$)/ && c ~ /main/) {
          split(u, a, " "); print a[1] " " k; exit
        }
      }' "$f")
    [[ -n "$line" ]] && { echo "$line"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    # deb [opt=v opt2=v2 ...] URI SUITE COMPONENTS...
    line=$(awk '$1 == "deb" {
             k = ""; i = 2;
             if ($2 ~ /^\[/) {
               for (; i <= NF; i++) {
                 if ($i ~ /^\[?signed-by=/) { k = $i; sub(/^\[?signed-by=/, "", k); sub(/\]$/, "", k) }
                 if ($i ~ /\]$/) { i++; break }
               }
             }
             if ($(i + 1) ~ /^(bookworm|stable)$/) { print $i " " k; exit }
           }' "$f")
    [[ -n "$line" ]] && { echo "$line"; return 0; }
  done
  return 1
}

build_openssl() {
  local uri aptopts versions v dsc srcdir ver prefix work
  WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/pqmcp-openssl.XXXXXX")
  work="$WORKDIR"
  trap 'rm -rf "$WORKDIR"' EXIT
  local archive keyring
  archive=$(debian_archive) || die "cannot find a Debian archive in the apt configuration"
  uri=${archive%% *}
  keyring=${archive#* }
  [[ "$keyring" == "$archive" || -z "$keyring" ]] && keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
  {
    echo "deb-src [signed-by=$keyring] $uri $SUITE_NEXT main"
    echo "deb-src [signed-by=$keyring] $uri $SUITE_NEXT-updates main"
  } > "$work/sources.list"
  # A private apt state: the machine's own lists and caches stay untouched.
  aptopts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
           -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
           -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
  log "reading the $SUITE_NEXT source index (signed Release file verified by apt)"
  apt-get -q "${aptopts[@]}" update >&2 || die "apt-get update for $SUITE_NEXT sources failed"
  mapfile -t versions < <(apt-cache "${aptopts[@]}" showsrc openssl | awk '/^Version:/ {print $2}' \
                           | sort -u | sort -r -V)
  [[ ${#versions[@]} -gt 0 ]] || die "no openssl source package listed for $SUITE_NEXT"
  for v in "${versions[@]}"; do
    case "$v" in 3.5.*|3.6.*) ;; *) log "skipping openssl $v (not 3.5.x/3.6.x)"; continue ;; esac
    log "fetching openssl source $v"
    rm -rf "${work:?}/src" && mkdir -p "$work/src"
    if (cd "$work/src" && apt-get -q "${aptopts[@]}" source --download-only "openssl=$v" >&2); then
      dsc=$(ls "$work/src"/*.dsc)
      break
    fi
    log "openssl $v could not be downloaded; trying the next listed version"
    dsc=""
  done
  [[ -n "${dsc:-}" ]] || die "no openssl 3.5.x/3.6.x source package could be downloaded"
  (cd "$work/src" && dpkg-source --no-check -x "$dsc" openssl >&2) || die "dpkg-source failed"
  srcdir="$work/src/openssl"
  ver=$(awk -F'=' '/^MAJOR/ {ma=$2} /^MINOR/ {mi=$2} /^PATCH/ {pa=$2} END {print ma"."mi"."pa}' \
          "$srcdir/VERSION.dat")
  prefix="$DEPS/openssl-$ver"
  log "building OpenSSL $ver into $prefix (takes several minutes on 2 cores)"
  rm -rf "$prefix"
  (
    cd "$srcdir"
    ./Configure linux-"$(uname -m)" shared no-tests no-docs \
      --prefix="$prefix" --openssldir="$prefix/ssl" --libdir=lib \
      "-Wl,-rpath,$prefix/lib" >&2
    make -j"$(nproc)" >"$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; exit 1; }
    make install_sw install_ssldirs >"$work/install.log" 2>&1 || { tail -50 "$work/install.log" >&2; exit 1; }
  ) || die "OpenSSL build failed"
  verify_prefix "$prefix" || die "built OpenSSL at $prefix does not verify"
  ln -sfn "openssl-$ver" "$CURRENT"
  log "OpenSSL $ver ready at $prefix"
}

main() {
  install_packages
  mkdir -p "$DEPS"
  if [[ -e "$CURRENT" ]] && verify_prefix "$(readlink -f "$CURRENT")"; then
    return 0
  fi
  # Reuse any verified prefix already in the cache, newest first.
  local p
  for p in $(ls -d "$DEPS"/openssl-* 2>/dev/null | sort -r -V); do
    if verify_prefix "$p"; then
      ln -sfn "$(basename "$p")" "$CURRENT"
      log "reusing $p"
      return 0
    fi
  done
  build_openssl
}

main "$@"
