#!/usr/bin/env bash
# `make run`: a working server in one command.
# Without DATABASE_URL, a private PostgreSQL cluster under var/pg is started
# (and stopped again when the server exits). Then migrate, create the demo
# users, and run `ordertrack serve` in the foreground until Ctrl-C.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${OT_BIN:-$root/build/ordertrack}
[ -x "$bin" ] || { echo "run: $bin is missing; run make first" >&2; exit 1; }
listen=${ORDERTRACK_LISTEN:-127.0.0.1:8080}

ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD=admin-demo-123
CUSTOMER_EMAIL=customer@example.com CUSTOMER_PASSWORD=customer-demo-123

own_pg=0
server_pid=
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$own_pg" = 1 ]; then
    scripts/pg-local.sh stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  own_pg=1
  scripts/pg-local.sh start
  DATABASE_URL=$(scripts/pg-local.sh url)
fi
export DATABASE_URL

"$bin" migrate
# Idempotent: an existing email gets its name, role and password reset.
add_user() { # email name password [--admin]
  local out
  out=$("$bin" user add --email "$1" --name "$2" --password-stdin "${@:4}" <<<"$3" 2>&1 >/dev/null) ||
    { echo "$out" >&2; exit 1; }
}
add_user "$ADMIN_EMAIL" "Demo Admin" "$ADMIN_PASSWORD" --admin
add_user "$CUSTOMER_EMAIL" "Demo Customer" "$CUSTOMER_PASSWORD"

if [ -z "${JWT_SECRET:-}" ]; then
  mkdir -p var
  if [ ! -s var/jwt_secret ]; then
    (umask 077 && openssl rand -hex 32 >var/jwt_secret)
  fi
  JWT_SECRET=$(cat var/jwt_secret)
fi
export JWT_SECRET

cat >&2 <<MSG

  ordertrack on http://$listen/
    admin:    $ADMIN_EMAIL / $ADMIN_PASSWORD
    customer: $CUSTOMER_EMAIL / $CUSTOMER_PASSWORD
    database: $DATABASE_URL
  Ctrl-C stops it.

MSG

# Not exec: the EXIT trap must still stop the private cluster. A background
# job of a non-interactive shell ignores SIGINT, so Ctrl-C reaches the server
# as the SIGTERM forwarded here (its graceful shutdown).
"$bin" serve --listen "$listen" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null || true' INT TERM
set +e
while :; do
  wait "$server_pid"
  rc=$?
  # wait returns >128 when a trapped signal interrupted it; the server may still run.
  kill -0 "$server_pid" 2>/dev/null || break
done
server_pid=
exit "$rc"
