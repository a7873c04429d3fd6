#!/usr/bin/env bash
# CPU per request, counted in instructions by valgrind's callgrind: the same
# binary and input give the same count whatever else the machine does, so
# this is the benchmark to compare builds on a shared box. Not a test.
#
# One worker (ordertrack --workers 1; nginx master_process off, one worker),
# REQS keep-alive requests on CONNS connections after a warm-up; counters are
# zeroed after the warm-up (callgrind_control -z) and dumped after the load,
# so start-up is never counted. Prints instructions per request and ratios:
#   /healthz            ordertrack vs nginx, access logs off and on (same run)
#   GET /orders/:id     JWT, PostgreSQL round trip, JSON answer (server side)
#   POST /orders        JWT, JSON body, one transaction, event delivery
#   scripts/bench-cpu.sh [conns=8] [reqs_per_conn=1000]
# Needs PostgreSQL on 127.0.0.1:5432 for the order rows (a throw-away database).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
conns=${1:-8}; per=${2:-1000}
total=$((conns * per))
for c in valgrind callgrind_control /usr/sbin/nginx psql; do
  command -v "$c" >/dev/null || { echo "bench-cpu: $c missing (scripts/setup-deps.sh)" >&2; exit 1; }
done
# OT_BIN=path measures another build (e.g. the previous commit's) the same way.
if [ -z "${OT_BIN:-}" ]; then
  make -s build/ordertrack
  OT_BIN=build/ordertrack
fi
scripts/services.sh >/dev/null

tmp=$(mktemp -d)
secret=bench-cpu-secret-0123456789abcdef-0123456789abcdef
db=ot_bench_cpu_$$
pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres -d postgres)
vg_pid=""
cleanup() {
  [ -n "$vg_pid" ] && kill "$vg_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  "${pg[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then echo "bench-cpu: callgrind files kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
"${pg[@]}" -c "CREATE DATABASE $db"
dburl=postgresql://postgres@127.0.0.1:5432/$db
"$OT_BIN" migrate --database-url "$dburl" >/dev/null 2>&1

wait_http() { # url
  for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "bench-cpu: $1 did not answer" >&2; return 1
}

# Counts the instructions of process $1 while "$@" (the load) runs; prints
# the total. The worker is the callgrind process that is not the master.
count() {
  local pid=$1; shift
  callgrind_control -z "$pid" >/dev/null 2>&1
  "$@"
  callgrind_control -d "$pid" >/dev/null 2>&1
  local f; f=$(ls -t "$tmp"/cg."$pid".* | head -1)
  awk '/^(summary|totals):/ {print $2; exit}' "$f"
}

# start_ot PORT LOGLEVEL -> sets vg_pid (master) and wpid (worker)
start_ot() {
  JWT_SECRET=$secret DATABASE_URL=$dburl valgrind --tool=callgrind --trace-children=yes \
    --compress-strings=no --callgrind-out-file="$tmp/cg.%p" "$OT_BIN" serve --listen 127.0.0.1:"$1" --workers 1 \
    --log-level "$2" --rate-ip 0 --rate-user 0 >/dev/null 2>"$tmp/ot-$1.log" &
  vg_pid=$!
  wait_http "http://127.0.0.1:$1/healthz"
  wpid=$(pgrep -P "$vg_pid" | head -1)
  [ -n "$wpid" ] || { echo "bench-cpu: no worker under $vg_pid" >&2; exit 1; }
}
stop_ot() { kill "$vg_pid"; wait "$vg_pid" 2>/dev/null || true; vg_pid=""; }

start_nginx() { # PORT ACCESS_LOG(on|off)
  local log="access_log off;"
  [ "$2" = on ] && log="access_log $tmp/access.log;"
  cat > "$tmp/nginx.conf" <<NGX
master_process off;
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 1024; use epoll; }
http {
  $log
  keepalive_requests 1000000;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server {
    listen 127.0.0.1:$1;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGX
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" /usr/sbin/nginx -c "$tmp/nginx.conf" -p "$tmp" \
    >/dev/null 2>"$tmp/nginx-valgrind.log" &
  vg_pid=$!
  wait_http "http://127.0.0.1:$1/"
  wpid=$vg_pid
}

load() { tests/bench/ka_client.py 127.0.0.1 "$@"; }
per_req() { awk -v a="$1" -v n="$total" 'BEGIN {printf "%d", a / n}'; }

port=18301
declare -A res
# ONLY=orders skips the /healthz pairs (quicker when profiling the handlers).
modes="off on"; [ "${ONLY:-}" = orders ] && modes=""
for logmode in $modes; do
  start_nginx $port $logmode
  load $port "$conns" 2 GET / # warm-up
  res[nginx_$logmode]=$(per_req "$(count "$wpid" load $port "$conns" "$per" GET /)")
  stop_ot
  port=$((port + 1))
  level=warn; [ $logmode = on ] && level=info
  start_ot $port $level
  load $port "$conns" 2 GET /healthz
  res[ot_$logmode]=$(per_req "$(count "$wpid" load $port "$conns" "$per" GET /healthz)")
  stop_ot
  port=$((port + 1))
done

# Orders: a real customer through the API (so the token is whatever the
# server issues), one order to read back, then the same body posted REQS times.
start_ot $port info
email=bench-$$@example.com
pass=bench-cpu-Passw0rd-$$-long
curl -sf -XPOST "http://127.0.0.1:$port/auth/register" -H 'Content-Type: application/json' \
  -d "{\"name\":\"Bench\",\"email\":\"$email\",\"password\":\"$pass\"}" >/dev/null
token=$(curl -sf -XPOST "http://127.0.0.1:$port/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$pass\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
printf '{"items":[{"productId":"espresso","qty":2},{"productId":"croissant","qty":1}]}' > "$tmp/body.json"
oid=$(curl -sf -XPOST "http://127.0.0.1:$port/orders" -H 'Content-Type: application/json' \
  -H "Authorization: Bearer $token" --data-binary @"$tmp/body.json" | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])')
load $port "$conns" 2 GET "/orders/$oid" "" "$token"
res[get]=$(per_req "$(count "$wpid" load $port "$conns" "$per" GET "/orders/$oid" "" "$token")")
load $port "$conns" 2 POST /orders "$tmp/body.json" "$token"
res[post]=$(per_req "$(count "$wpid" load $port "$conns" "$per" POST /orders "$tmp/body.json" "$token")")
stop_ot

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "instructions per request (callgrind, $total keep-alive requests on $conns connections, one worker)"
printf '%-44s %12s %10s %8s\n' request ordertrack nginx ratio
if [ -n "$modes" ]; then
printf '%-44s %12s %10s %8s\n' "GET /healthz, access log off" "${res[ot_off]}" "${res[nginx_off]}" "$(ratio "${res[ot_off]}" "${res[nginx_off]}")"
printf '%-44s %12s %10s %8s\n' "GET /healthz, access log on" "${res[ot_on]}" "${res[nginx_on]}" "$(ratio "${res[ot_on]}" "${res[nginx_on]}")"
fi
printf '%-44s %12s %10s %8s\n' "GET /orders/:id (access log on)" "${res[get]}" - -
printf '%-44s %12s %10s %8s\n' "POST /orders (access log on)" "${res[post]}" - -
