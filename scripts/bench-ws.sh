#!/usr/bin/env bash
# WebSocket benchmark: ordertrack's /ws/orders against, in the same run, a Node
# `ws` broadcast server (tests/bench/ws_peer.js) fed the same events. Measures
#   e2e     write sent -> push frame arrived at a subscribed socket, at a fixed
#           rate (ordertrack: PATCH /orders/:id/status; peer: POST /publish)
#   fanout  one event to N sockets: trigger sent -> the last socket received it
#   idle    server RSS (all its processes, minus the baseline before connecting)
#           per idle connection, with M sockets spread over 127.0.0.x sources
# and prints the numbers and the ratios. Not a test: numbers depend on the machine.
#   scripts/bench-ws.sh [rate=1000] [fanout_conns=10000] [idle_conns=100000] [e2e_seconds=10]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rate=${1:-1000}; fan_n=${2:-10000}; idle_n=${3:-100000}; e2e_s=${4:-10}
workers=2      # e2e and fanout: one worker per core, both servers
idle_workers=6 # 20,000 fds per process: 100k sockets need >= 6 server processes
idle_procs=6   # ... and >= 6 client processes, one 127.0.0.x source each
command -v node >/dev/null || { echo "bench-ws: node missing" >&2; exit 1; }
make -s build/ordertrack bench-tools
[ -f tests/bench/node_modules/ws/package.json ] ||
  npm install --prefix tests/bench --no-package-lock --no-audit --no-fund --silent
scripts/services.sh

tmp=$(mktemp -d)
db=ot_bench_ws_$$
pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
pids=() # everything this script started and has not yet reaped
forget() { local p keep=(); for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
# Long steps run in the background and are waited for: bash runs a trap only
# between foreground commands, but `wait` returns at once on a signal.
run() { # out-file command... -> the command's stdout in out-file; warns on failure
  local out=$1 p rc=0; shift
  "$@" >"$out" & p=$!; pids+=("$p")
  wait "$p" || rc=$?
  forget "$p"
  [ "$rc" -eq 0 ] || echo "bench-ws: $(basename "$1") $2 exited $rc (incomplete or lossy run; see above)" >&2
  cat "$out"
}
cleanup() {
  stop_all
  "${pg[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${pg[@]}" -d postgres -c "CREATE DATABASE $db"
url=postgresql://postgres@127.0.0.1:5432/$db
build/ordertrack migrate --database-url "$url" 2>/dev/null
new_user() { # email [--admin] -> id
  build/ordertrack user add --database-url "$url" --email "$1" --name Bench --password bench-password-1 "${@:2}" \
    2>/dev/null | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])'
}
admin_id=$(new_user admin@bench.example --admin)
cust_id=$(new_user customer@bench.example)
secret=bench-secret-0123456789abcdef0123456789
mint() { # sub role -> HS256 JWT valid for 2 h
  python3 - "$1" "$2" "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": sys.argv[1], "role": sys.argv[2], "iat": int(time.time()), "exp": int(time.time()) + 7200}).encode())
print(h + "." + p + "." + b(hmac.new(sys.argv[3].encode(), (h + "." + p).encode(), hashlib.sha256).digest()))
PY
}
admin_tok=$(mint "$admin_id" ADMIN)
cust_tok=$(mint "$cust_id" CUSTOMER)

start_ot() { # port workers
  # Every abuse limit off (on by default since this was written: with them,
  # most creations and handshakes were answered 429 and no run completed).
  JWT_SECRET=$secret build/ordertrack serve --listen 127.0.0.1:"$1" --workers "$2" --log-level warn \
    --rate-ip 0 --rate-user 0 --max-conns-per-ip 0 --ws-max-per-ip 0 --ws-max-per-user 0 \
    --database-url "$url" 2>>"$tmp/ot.log" &
  ot_pid=$!; pids+=("$ot_pid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "bench-ws: ordertrack did not start:" >&2; cat "$tmp/ot.log" >&2; exit 1
}
start_peer() { # port workers
  node tests/bench/ws_peer.js --port "$1" --workers "$2" >"$tmp/peer.out" 2>>"$tmp/peer.log" &
  peer_pid=$!; pids+=("$peer_pid")
  for _ in $(seq 100); do grep -q 'peer ready' "$tmp/peer.out" && return 0; sleep 0.1; done
  echo "bench-ws: peer did not start:" >&2; cat "$tmp/peer.log" >&2; exit 1
}
rss_kb() { # pid -> VmRSS of it and its children, in kB
  local p kids=() total=0
  mapfile -t kids < <(pgrep -P "$1" || true)
  for p in "$1" "${kids[@]}"; do
    total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; } # name line -> value

ws_load=build/bench/ws_load
ot_port=18184; peer_port=18185
load0=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the 2 cores moves every number: say how busy it was

# ---- (1) e2e latency at a fixed rate, one admin socket subscribed to everything
start_ot $ot_port $workers
start_peer $peer_port $workers
run "$tmp/e2e_ot" $ws_load e2e --target ordertrack --port $ot_port --ws-token "$admin_tok" --http-token "$admin_tok" \
  --rate "$rate" --duration "$e2e_s" --timeout 200
run "$tmp/e2e_peer" $ws_load e2e --target peer --port $peer_port --rate "$rate" --duration "$e2e_s" --timeout 60
e2e_ot=$(cat "$tmp/e2e_ot"); e2e_peer=$(cat "$tmp/e2e_peer")

# ---- (2) fanout of one event to N sockets (the customer's own orders; the peer: everyone)
# (server CPU per round: every thread of every server process, from /proc/*/task/*/schedstat)
fan_procs=2
tree() { echo "$1$(pgrep -P "$1" | sed 's/^/,/' | tr -d '\n')"; } # pid -> pid,child,...
run "$tmp/fan_ot" $ws_load fanout --target ordertrack --port $ot_port --ws-token "$cust_tok" --http-token "$cust_tok" \
  --conns "$fan_n" --procs $fan_procs --src-base 20 --rounds 7 --timeout 120 --cpu-pids "$(tree "$ot_pid")"
run "$tmp/fan_peer" $ws_load fanout --target peer --port $peer_port --conns "$fan_n" --procs $fan_procs \
  --src-base 30 --rounds 7 --timeout 120 --cpu-pids "$(tree "$peer_pid")"
fan_ot=$(cat "$tmp/fan_ot"); fan_peer=$(cat "$tmp/fan_peer")
stop_all

# ---- (3) RSS of M idle authenticated sockets, fresh servers
idle() { # name pid port src-base [token] -> "open delta_kb base_kb secs" in $tmp/idle.res
  local base line now t lp rc=0
  sleep 1; base=$(rss_kb "$2")
  $ws_load idle --target "$1" --port "$3" --ws-token "${5:--}" --conns "$idle_n" --procs $idle_procs \
    --src-base "$4" --hold 6 --timeout 200 >"$tmp/idle.out" &
  lp=$!; pids+=("$lp")
  for t in $(seq 1800); do grep -q '^READY' "$tmp/idle.out" && break; sleep 0.1; done
  line=$(grep '^READY' "$tmp/idle.out" || echo "READY open=0 secs=0")
  sleep 3 # let the last handshakes' buffers go
  now=$(rss_kb "$2")
  wait "$lp" || rc=$?
  forget "$lp"
  [ "$rc" -eq 0 ] || echo "bench-ws: idle $1 exited $rc (not every socket opened)" >&2
  echo "$(field open "$line") $((now - base)) $base $(field secs "$line")" >"$tmp/idle.res"
}
start_ot 18186 $idle_workers
idle ordertrack "$ot_pid" 18186 40 "$cust_tok"
read -r idle_ot_open idle_ot_kb idle_ot_base idle_ot_secs <"$tmp/idle.res"
stop_all
start_peer 18187 $idle_workers
idle peer "$peer_pid" 18187 50
read -r idle_peer_open idle_peer_kb idle_peer_base idle_peer_secs <"$tmp/idle.res"
stop_all

# ---- report
echo
printf '%-34s %14s %14s %10s\n' "" ordertrack "peer (ws)" ratio
row() { printf '%-34s %14s %14s %10s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN {if (a > 0) printf "%.2f", b / a; else print "-"}')"; }
row "e2e p50 (us) @ ${rate}/s" "$(field p50_us "$e2e_ot")" "$(field p50_us "$e2e_peer")"
row "e2e p99 (us)" "$(field p99_us "$e2e_ot")" "$(field p99_us "$e2e_peer")"
row "e2e p999 (us)" "$(field p999_us "$e2e_ot")" "$(field p999_us "$e2e_peer")"
row "  HTTP answer p50 (us)" "$(field http_p50_us "$e2e_ot")" "$(field http_p50_us "$e2e_peer")"
row "  HTTP answer p99 (us)" "$(field http_p99_us "$e2e_ot")" "$(field http_p99_us "$e2e_peer")"
row "  push - answer p50 (us)" "$(field push_minus_http_p50_us "$e2e_ot")" "$(field push_minus_http_p50_us "$e2e_peer")"
row "fanout to $fan_n, last (ms, median)" "$(field last_ms_median "$fan_ot")" "$(field last_ms_median "$fan_peer")"
row "fanout first (ms, median)" "$(field first_ms_median "$fan_ot")" "$(field first_ms_median "$fan_peer")"
row "fanout server CPU (ms, median)" "$(field server_cpu_ms_median "$fan_ot")" "$(field server_cpu_ms_median "$fan_peer")"
per() { awk -v k="$1" -v n="$2" 'BEGIN {if (n > 0) printf "%.2f", k / n; else print "-"}'; }
row "idle RSS per conn (KB)" "$(per "$idle_ot_kb" "$idle_ot_open")" "$(per "$idle_peer_kb" "$idle_peer_open")"
echo "idle: ordertrack $idle_ot_open sockets (+${idle_ot_kb} kB over ${idle_ot_base} kB, connected in ${idle_ot_secs}s);" \
  "peer $idle_peer_open sockets (+${idle_peer_kb} kB over ${idle_peer_base} kB, connected in ${idle_peer_secs}s)"
echo "load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio = peer/ordertrack (above 1: ordertrack is better). e2e and fanout: $workers processes each;" \
  "idle: $idle_workers processes each, $idle_procs client processes"
