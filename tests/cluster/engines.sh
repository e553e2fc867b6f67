#!/usr/bin/env bash
# Starts the real shared stores a tier of replicas uses, in DIR, on unix
# sockets only (nothing listens on a port), and stops them:
#
#   tests/cluster/engines.sh start DIR   starts redis-server and PostgreSQL 15,
#                                        prints  PQMCP_TEST_REDIS=unix:///...  and
#                                        PQMCP_TEST_POSTGRES=postgresql:///...
#   tests/cluster/engines.sh stop DIR    stops both (and removes PostgreSQL's directory)
#   tests/cluster/engines.sh redis-stop DIR / redis-start DIR
#
# PostgreSQL refuses to run as root: as root, its cluster belongs to the
# postgres user Debian's package created and runs as that user, in a
# directory of its own under /tmp (DIR's parents may be closed to it), named
# in DIR/pg-home.
set -euo pipefail

cmd="${1:?usage: engines.sh start|stop|redis-start|redis-stop DIR}"
dir="${2:?usage: engines.sh start|stop DIR}"
pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"

die() { printf 'engines: %s\n' "$*" >&2; exit 1; }

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

redis_start() {
  command -v redis-server >/dev/null || die "redis-server is not installed (scripts/bootstrap.sh)"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --dir "$dir" --dbfilename redis.rdb --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 100); do
    [[ -S "$dir/redis.sock" ]] && return 0
    sleep 0.05
  done
  die "redis-server did not start (see $dir/redis.log)"
}

redis_stop() {
  if [[ -f "$dir/redis.pid" ]]; then
    local pid
    pid="$(cat "$dir/redis.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    rm -f "$dir/redis.pid" "$dir/redis.sock"
  fi
}

pg_home() {
  if [[ ! -f "$dir/pg-home" ]]; then
    if [[ $(id -u) -eq 0 ]]; then
      local home
      home=$(mktemp -d /tmp/pqmcp-pg-XXXXXX)
      chown postgres: "$home"
      echo "$home" >"$dir/pg-home"
    else
      mkdir -p "$dir/pg"
      echo "$dir/pg" >"$dir/pg-home"
    fi
  fi
  cat "$dir/pg-home"
}

pg_start() {
  [[ -x "$pgbin/initdb" ]] || die "PostgreSQL is not installed (scripts/bootstrap.sh)"
  local home
  home=$(pg_home)
  if [[ ! -f "$home/data/PG_VERSION" ]]; then
    as_pg "$pgbin/initdb" -D "$home/data" -U pqmcp -A trust --no-sync >"$dir/pg-initdb.log" 2>&1 ||
      die "initdb failed (see $dir/pg-initdb.log)"
  fi
  as_pg "$pgbin/pg_ctl" -D "$home/data" -l "$home/log" -w -t 30 \
    -o "-c listen_addresses='' -k $home -c fsync=off -c max_connections=200" start >/dev/null ||
    die "PostgreSQL did not start (see $home/log)"
  as_pg "$pgbin/createdb" -h "$home" -U pqmcp pqmcp 2>/dev/null || true
  echo "$home"
}

pg_stop() {
  [[ -f "$dir/pg-home" ]] || return 0
  local home
  home=$(cat "$dir/pg-home")
  if [[ -f "$home/data/postmaster.pid" ]]; then
    as_pg "$pgbin/pg_ctl" -D "$home/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if [[ "$home" == /tmp/pqmcp-pg-* ]]; then
    rm -rf "$home"
  fi
  rm -f "$dir/pg-home"
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    redis_start
    home=$(pg_start)
    echo "PQMCP_TEST_REDIS=unix://$dir/redis.sock"
    echo "PQMCP_TEST_POSTGRES=postgresql:///pqmcp?host=$home&user=pqmcp"
    ;;
  stop) redis_stop; pg_stop ;;
  redis-start) redis_start ;;
  redis-stop) redis_stop ;;
  *) die "unknown command $cmd" ;;
esac
