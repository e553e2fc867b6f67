#!/usr/bin/env bash
# Gateway variants side by side in one run, alternating rounds: tools/call
# demo__echo over HTTPS to `serve --demo --threads 1`, one bench_mcp client
# with IN_FLIGHT calls in flight (default 8, over as many connections). For
# each variant: the wall-clock rate, the median latency and the gateway's
# own CPU per 1,000 calls (utime + stime of the process from /proc, its audit
# writer thread included), and each as a ratio to the first variant of the
# same round; and each thread's CPU per 1,000 calls (threads_cpu_ms_per_1000,
# in thread id order: the request thread, then the audit writer's).
#
#   [IN_FLIGHT=8] bench/mcp/variants.sh BUILD_DIR REQUESTS ROUNDS 'NAME[=FLAGS]' ...
#
# FLAGS are `serve` flags; "env:K=V" words among them are set in the
# gateway's environment instead (say env:LD_PRELOAD=/usr/lib/.../libjemalloc.so.2),
# "bin:PATH" runs another pqmcp binary (another build) for that variant, and
# "cli:WORD" words go to the bench_mcp client instead (cli:--revision cli:2026-07-28).
#   bench/mcp/variants.sh build 40000 3 defaults 'off=--no-audit --no-integrity'
# After the rounds, a line per variant with the median ratios and their range.
set -euo pipefail
BUILD="$(cd "${1:?BUILD_DIR}" && pwd)"
N=${2:-20000}
ROUNDS=${3:-3}
shift 3
[[ $# -ge 1 ]] || { echo "variants: name at least one variant" >&2; exit 2; }
IN_FLIGHT=${IN_FLIGHT:-8}
PQMCP="$BUILD/pqmcp"
BENCH="$BUILD/bench/mcp/bench_mcp"
TICK=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

names=()
for spec in "$@"; do
  name=${spec%%=*}
  flags=""
  [[ "$spec" == *=* ]] && flags=${spec#*=}
  envs=()
  args=()
  binary="$PQMCP"
  cli=()
  for word in $flags; do
    case "$word" in
      env:*) envs+=("${word#env:}") ;;
      bin:*) binary="${word#bin:}" ;;
      cli:*) cli+=("${word#cli:}") ;;
      *) args+=("$word") ;;
    esac
  done
  env "${envs[@]}" "$binary" serve --demo --listen 127.0.0.1:0 --identity "$work/gw-$name" \
    --log-level warn --threads 1 "${args[@]}" >"$work/ready-$name" 2>"$work/log-$name" &
  echo $! >"$work/pid-$name"
  echo "${cli[*]}" >"$work/cli-$name"
  for _ in $(seq 100); do grep -q 'ready on' "$work/ready-$name" 2>/dev/null && break; sleep 0.1; done
  grep -q 'ready on' "$work/ready-$name" || { cat "$work/log-$name" >&2; exit 1; }
  names+=("$name")
done

cpu() { awk '{print $14 + $15}' "/proc/$(cat "$work/pid-$1")/stat"; }
# Each of the gateway's threads' CPU ticks, in thread id order (with --threads 1:
# the request thread, then the audit writer's when the audit is on).
thread_ticks() { cat /proc/"$(cat "$work/pid-$1")"/task/*/stat | sort -n | awk '{printf "%d ", $14 + $15}'; }
url() { grep -o 'https://[^ ]*/mcp' "$work/ready-$1" | head -1; }
pin() { grep -o 'peer pq1[a-z2-7]*' "$work/ready-$1" | cut -d' ' -f2; }

for r in $(seq "$ROUNDS"); do
  base_rps=""
  base_cpu=""
  for name in "${names[@]}"; do
    c0=$(cpu "$name")
    t0=$(thread_ticks "$name")
    out=$("$BENCH" http "$(url "$name")" --pin "$(pin "$name")" --identity "$work/client" \
      --requests "$N" --concurrency "$IN_FLIGHT" --tool demo__echo --label "$name round $r" \
      $(cat "$work/cli-$name") | grep '^{')
    c1=$(cpu "$name")
    t1=$(thread_ticks "$name")
    # Per thread, ms of CPU per 1,000 calls (threads that started during the round: from 0).
    threads=$(awk -v a="$t0" -v b="$t1" -v t="$TICK" -v n="$((N + 200))" 'BEGIN {
      na = split(a, x, " "); nb = split(b, y, " "); out = ""
      for (i = 1; i <= nb; i++) { d = y[i] - (i <= na ? x[i] : 0); out = out (i > 1 ? "," : "") sprintf("%.2f", 1000 * 1000 * (d / t) / n) }
      printf "[%s]", out }')
    rps=$(sed -E 's/.*"rps":([0-9.eE+-]+).*/\1/' <<<"$out")
    p50=$(sed -E 's/.*"p50_us":([0-9.eE+-]+).*/\1/' <<<"$out")
    errors=$(sed -E 's/.*"errors":([0-9]+).*/\1/' <<<"$out")
    per=$(awk -v c="$((c1 - c0))" -v t="$TICK" -v n="$((N + 200))" 'BEGIN { printf "%.2f", 1000 * 1000 * (c / t) / n }')
    [[ -z "$base_rps" ]] && base_rps=$rps && base_cpu=$per
    awk -v name="$name" -v r="$r" -v rps="$rps" -v p50="$p50" -v per="$per" -v br="$base_rps" \
      -v bc="$base_cpu" -v e="$errors" -v f="$IN_FLIGHT" -v th="$threads" 'BEGIN {
      printf "{\"variant\":\"%s\",\"round\":%d,\"in_flight\":%d,\"rps\":%.0f,\"p50_us\":%.0f,\"cpu_ms_per_1000\":%.2f,\"rps_ratio\":%.3f,\"cpu_ratio\":%.3f,\"errors\":%d,\"threads_cpu_ms_per_1000\":%s}\n",
        name, r, f, rps, p50, per, rps / br, (bc > 0 ? per / bc : 0), e, th }' | tee -a "$work/rounds"
  done
done

# Per variant over the rounds: the median ratio to the first variant and how
# far the rounds spread (the machine is shared: read the median, and the range
# says how much to trust it).
field() { sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/"; }
summary() {  # $1 variant $2 field: "median min max" of that field over its rounds
  grep "\"variant\":\"$1\"" "$work/rounds" | field "$2" | sort -g |
    awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f", m, v[1], v[NR] }'
}
for name in "${names[@]}"; do
  read -r rm rlo rhi <<<"$(summary "$name" rps_ratio)"
  read -r cm clo chi <<<"$(summary "$name" cpu_ratio)"
  read -r pm _ _ <<<"$(summary "$name" cpu_ms_per_1000)"
  printf '{"variant":"%s","rounds":%d,"rps_ratio_median":%s,"rps_ratio_range":[%s,%s],"cpu_ratio_median":%s,"cpu_ratio_range":[%s,%s],"cpu_ms_per_1000_median":%s}\n' \
    "$name" "$ROUNDS" "$rm" "$rlo" "$rhi" "$cm" "$clo" "$chi" "$pm"
done
