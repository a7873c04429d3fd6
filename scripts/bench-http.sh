#!/usr/bin/env bash
# HTTP benchmark: wrk against ordertrack's GET /healthz and, in the same run with
# the same wrk settings, Debian's nginx answering a fixed 200 on another port.
# RUNS (default 3) alternated rounds nginx, ordertrack, nginx, ...; prints each
# round, the median req/s and p99 of each server and the ratio of the medians,
# with the load average before and after (the box is shared: read the ratio,
# not the absolute numbers). Not a test: numbers depend on the machine.
#   [RUNS=3] scripts/bench-http.sh [duration_s=10] [connections=100] [threads=2] [workers=2]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dur=${1:-10}; conns=${2:-100}; threads=${3:-2}; workers=${4:-2}
command -v wrk >/dev/null || { echo "bench-http: wrk missing (scripts/setup-deps.sh)" >&2; exit 1; }
[ -x /usr/sbin/nginx ] || { echo "bench-http: nginx missing (scripts/setup-deps.sh)" >&2; exit 1; }
make -s build/ordertrack

tmp=$(mktemp -d)
# Free ports, so two helpers' benchmarks on one box do not collide.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ot_port=$(free_port); ng_port=$(free_port)
runs=${RUNS:-3}
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
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ng_all=(); ot_all=(); ngp_all=(); otp_all=()
for i in $(seq "$runs"); do
  read -r r p < <(run "http://127.0.0.1:$ng_port/"); ng_all+=("$r"); ngp_all+=("$p")
  read -r r p < <(run "http://127.0.0.1:$ot_port/healthz"); ot_all+=("$r"); otp_all+=("$p")
  printf 'round %d: nginx %s req/s (p99 %s ms), ordertrack %s req/s (p99 %s ms)\n' "$i" "${ng_all[-1]}" "${ngp_all[-1]}" "${ot_all[-1]}" "${otp_all[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ng_rps=$(median "${ng_all[@]}"); ot_rps=$(median "${ot_all[@]}")
ng_p99=$(median "${ngp_all[@]}"); ot_p99=$(median "${otp_all[@]}")
ratio=$(awk -v a="$ot_rps" -v b="$ng_rps" 'BEGIN {printf "%.2f", a/b}')
printf '%-12s %12s %10s\n' server "median req/s" "p99_ms"
printf '%-12s %12s %10s\n' nginx "$ng_rps" "$ng_p99"
printf '%-12s %12s %10s\n' ordertrack "$ot_rps" "$ot_p99"
echo "ratio ordertrack/nginx req/s (medians of $runs alternated runs): $ratio  (wrk -t$threads -c$conns -d${dur}s, $workers workers each; load $load_before -> $(cut -d' ' -f1-3 /proc/loadavg))"
