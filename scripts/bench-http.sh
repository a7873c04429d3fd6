#!/usr/bin/env bash
# HTTP benchmark: wrk against ordertrack's GET /healthz and, in the same run with
# the same wrk settings, Debian's nginx answering a fixed 200 on another port.
# Prints req/s, p99 latency and the ratio. Not a test: numbers depend on the machine.
#   scripts/bench-http.sh [duration_s=10] [connections=100] [threads=2] [workers=2]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dur=${1:-10}; conns=${2:-100}; threads=${3:-2}; workers=${4:-2}
command -v wrk >/dev/null || { echo "bench-http: wrk missing (scripts/setup-deps.sh)" >&2; exit 1; }
[ -x /usr/sbin/nginx ] || { echo "bench-http: nginx missing (scripts/setup-deps.sh)" >&2; exit 1; }
make -s build/ordertrack

tmp=$(mktemp -d)
ot_port=18181; ng_port=18182
cleanup() {
  [ -n "${ot_pid:-}" ] && kill "$ot_pid" 2>/dev/null && wait "$ot_pid" 2>/dev/null || true
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cat > "$tmp/nginx.conf" <<NGX
worker_processes $workers;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 4096; use epoll; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server {
    listen 127.0.0.1:$ng_port reuseport;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGX
/usr/sbin/nginx -c "$tmp/nginx.conf" -p "$tmp"

# Access logs off for both (nginx: access_log off; ordertrack: warn level).
JWT_SECRET=bench-secret-0123456789abcdef0123456789 build/ordertrack serve --listen 127.0.0.1:$ot_port \
  --workers "$workers" --log-level warn 2>"$tmp/ot.log" &
ot_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$ot_port/healthz" >/dev/null && curl -sf "http://127.0.0.1:$ng_port/" >/dev/null && break; sleep 0.1; done

run() { # url -> "rps p99_ms"
  local out; out=$(wrk -t"$threads" -c"$conns" -d"${dur}s" --latency "$1")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "$rps $p99"
}
wrk -t"$threads" -c"$conns" -d2s "http://127.0.0.1:$ot_port/healthz" >/dev/null   # warm-up
wrk -t"$threads" -c"$conns" -d2s "http://127.0.0.1:$ng_port/" >/dev/null
read -r ng_rps ng_p99 < <(run "http://127.0.0.1:$ng_port/")
read -r ot_rps ot_p99 < <(run "http://127.0.0.1:$ot_port/healthz")
ratio=$(awk -v a="$ot_rps" -v b="$ng_rps" 'BEGIN {printf "%.2f", a/b}')
printf '%-12s %12s %10s\n' server req/s p99_ms
printf '%-12s %12s %10s\n' nginx "$ng_rps" "$ng_p99"
printf '%-12s %12s %10s\n' ordertrack "$ot_rps" "$ot_p99"
echo "ratio ordertrack/nginx req/s: $ratio  (wrk -t$threads -c$conns -d${dur}s, $workers workers each)"
