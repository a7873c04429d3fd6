#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 and Redis on 127.0.0.1:6379,
# starting (or, for PostgreSQL, creating) them when they are down. Works
# without systemd (containers, CI). Quiet when both already answer.
set -euo pipefail

PG_PORT=5432
REDIS_PORT=${OT_REDIS_PORT:-6379} # override only to test this script
WAIT_S=30

say() { echo "services: $*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

wait_for() { # name check-fn
  local i
  for ((i = 0; i < WAIT_S * 10; i++)); do
    "$2" && return 0
    sleep 0.1
  done
  die "$1 did not become ready within ${WAIT_S}s"
}

# The tests connect as postgres over TCP without a password. A stock Debian
# cluster asks for one (scram) on 127.0.0.1, so put trust lines for the
# loopback first; pg_hba.conf is matched top-down.
pg_trust_loopback() { # hba-file
  local hba=$1
  grep -q '^# ordertrack: trust loopback' "$hba" && return 0
  say "allowing passwordless local connections in $hba (development/CI cluster)"
  as_root sed -i '1i # ordertrack: trust loopback\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
}

start_pg() {
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$ver" ]; then
    ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$ver" ] || die "PostgreSQL is not installed (scripts/setup-deps.sh)"
  fi
  if [ ! -d "/etc/postgresql/$ver/main" ]; then
    say "creating PostgreSQL $ver cluster 'main' on port $PG_PORT"
    as_root pg_createcluster --port "$PG_PORT" "$ver" main >/dev/null
    pg_trust_loopback "/etc/postgresql/$ver/main/pg_hba.conf"
  fi
  say "starting PostgreSQL $ver/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
}

start_redis() {
  say "starting redis-server on 127.0.0.1:$REDIS_PORT"
  as_root mkdir -p /var/lib/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir /var/lib/redis >/dev/null
}

pg_up || { start_pg; wait_for PostgreSQL pg_up; }

# Up but refusing passwordless TCP logins (an apt-created cluster): fix auth once.
if ! psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -w -c 'SELECT 1' >/dev/null 2>&1; then
  hba=$(as_root runuser -u postgres -- psql -X -At -d postgres -p "$PG_PORT" -c 'SHOW hba_file' 2>/dev/null || true)
  [ -n "$hba" ] || die "cannot log in to PostgreSQL as postgres on 127.0.0.1:$PG_PORT"
  pg_trust_loopback "$hba"
  as_root runuser -u postgres -- psql -X -q -d postgres -p "$PG_PORT" -c 'SELECT pg_reload_conf()' >/dev/null
  psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -w -c 'SELECT 1' >/dev/null ||
    die "still cannot log in to PostgreSQL as postgres on 127.0.0.1:$PG_PORT"
fi

redis_up || { start_redis; wait_for Redis redis_up; }
