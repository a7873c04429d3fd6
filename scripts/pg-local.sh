#!/usr/bin/env bash
# A private PostgreSQL cluster for `make run`, under var/pg of the checkout:
# no TCP (listen_addresses=''), a unix socket in var/pg/run on port 5433, trust
# auth for user postgres, database "ordertrack".
#   scripts/pg-local.sh start|stop|status|url
# initdb and postgres refuse to run as root; as root they run as the
# `postgres` system user, which then owns var/pg.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=$root/var/pg
data=$base/data
run=$base/run
log=$base/postgres.log
port=5433
db=ordertrack

pgbin=${PG_BIN:-}
if [ -z "$pgbin" ]; then
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  pgbin=/usr/lib/postgresql/${v:-15}/bin
fi
[ -x "$pgbin/initdb" ] || { echo "pg-local: no initdb in $pgbin (scripts/setup-deps.sh)" >&2; exit 1; }

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "pg-local: running as root needs the postgres system user" >&2; exit 1; }
  as_pg=(runuser -u postgres --)
fi
pg() { "${as_pg[@]}" "$@"; }

# The postgres user must be able to reach var/pg: give every ancestor that
# stops it the search (x) bit only -- never read or write.
make_reachable() {
  local d="" part
  local -a parts
  IFS=/ read -ra parts <<<"${base#/}"
  # Top-down: a directory only looks unreachable when one above it is.
  for part in "${parts[@]}"; do
    d=$d/$part
    if ! runuser -u postgres -- test -x "$d"; then
      echo "pg-local: chmod o+x $d so the postgres user can reach $base" >&2
      chmod o+x "$d"
    fi
  done
}

is_running() { pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

psql_local() { "$pgbin/psql" -X -q -h "$run" -p "$port" -U postgres "$@"; }

start() {
  mkdir -p "$base"
  if [ ${#as_pg[@]} -gt 0 ]; then
    chown postgres: "$base"
    make_reachable
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    pg mkdir -p "$data" "$run"
    pg "$pgbin/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
    # The socket directory is passed at start (-k): an absolute path written
    # here would go stale when the checkout moves.
    printf "listen_addresses = ''\nport = %d\n" "$port" | pg tee -a "$data/postgresql.conf" >/dev/null
  fi
  pg mkdir -p "$run"
  if ! is_running; then
    # unix socket path limit is 107 bytes (sun_path); say so instead of a cryptic failure.
    if [ $(( ${#run} + 16 )) -gt 107 ]; then
      echo "pg-local: socket path $run/.s.PGSQL.$port is too long for a unix socket" >&2
      exit 1
    fi
    pg "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 30 -o "-k '$run'" start >/dev/null ||
      { echo "pg-local: postgres failed to start; see $log" >&2; tail -n 20 "$log" >&2 || true; exit 1; }
  fi
  if [ -z "$(psql_local -d postgres -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    psql_local -d postgres -c "CREATE DATABASE $db"
  fi
}

stop() {
  is_running || return 0
  pg "$pgbin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null
}

status() {
  if is_running; then echo "running: $(url)"; else echo "stopped"; return 3; fi
}

url() { echo "postgresql:///$db?host=$run&port=$port&user=postgres"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
