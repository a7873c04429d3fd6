#!/usr/bin/env bash
# Orders benchmark: wrk (Lua) against POST /orders and GET /orders/:id, and in the
# same run pgbench executing the same SQL transactions with the same client count,
# against the same PostgreSQL (synchronous_commit as configured: on by default).
# Prints tx/s, p99 and the ratio ordertrack/pgbench for each. Not a test.
#   scripts/bench-orders.sh [duration_s=10] [clients=32] [workers=2]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dur=${1:-10}; clients=${2:-32}; workers=${3:-2}
make -s build/ordertrack
scripts/services.sh

port=18183
. "$root/scripts/lib/benchdb.sh"
bench_db ot_bench_$$
echo "synchronous_commit: $("${pg[@]}" -d "$db" -tAc 'SHOW synchronous_commit')"
secret=bench-secret-0123456789abcdef0123456789
token=$(python3 - "$uid" "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": sys.argv[1], "role": "CUSTOMER", "iat": int(time.time()), "exp": int(time.time()) + 7200}).encode())
s = b(hmac.new(sys.argv[2].encode(), (h + "." + p).encode(), hashlib.sha256).digest())
print(h + "." + p + "." + s)
PY
)
# The per-IP and per-user limits (on by default) would answer most of wrk's
# requests 429: off, the benchmark measures the work.
JWT_SECRET=$secret build/ordertrack serve --listen 127.0.0.1:$port --workers "$workers" --log-level warn \
  --rate-ip 0 --rate-user 0 \
  --database-url "$url" 2>"$tmp/ot.log" &
ot_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
items='[{"productId":"p1","qty":1}]'
oid=$(curl -sf -XPOST "http://127.0.0.1:$port/orders" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "{\"items\":$items}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')

cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"items":$items}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
cat > "$tmp/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
# The same statements the server runs, prepared, one per transaction.
cat > "$tmp/create.sql" <<SQL
SELECT created, order_json, event_json FROM ot_create_order(:uid::uuid, '$items'::jsonb, NULL, :uid::uuid);
SQL
cat > "$tmp/get.sql" <<SQL
SELECT ot_order_json(o), o.user_id FROM orders o WHERE o.id = :oid::uuid;
SQL

wrk_run() { # lua url -> "rps p99_ms"
  local out; out=$(wrk -t2 -c"$clients" -d"${dur}s" --latency -s "$1" "$2")
  # A figure made of error answers is no figure: stop. Timeouts are the
  # GET tail docs/BENCHMARKS.md explains: reported, in the p99.
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench-orders: wrk saw error answers, no result:" >&2; grep Non-2xx <<<"$out" >&2; exit 1
  fi
  if grep -q "Socket errors" <<<"$out"; then echo "bench-orders: $(grep 'Socket errors' <<<"$out")" >&2; fi
  awk '/Requests\/sec/ {rps=$2} $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p=v} END {print rps, p}' <<<"$out"
}
pgb_run() { # script -> "tps p99_ms"
  rm -f "$tmp"/pgb*
  local out; out=$(cd "$tmp" && pgbench -n -M prepared -h 127.0.0.1 -U postgres -c "$clients" -j 2 -T "$dur" \
                     -D uid="$uid" -D oid="$oid" -l --log-prefix=pgb -f "$1" "$db" 2>&1)
  local tps; tps=$(awk '/^tps/ {print $3; exit}' <<<"$out")
  local p99; p99=$(cat "$tmp"/pgb* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", a[i]/1000}')
  echo "$tps $p99"
}
wrk -t2 -c"$clients" -d2s -s "$tmp/get.lua" "http://127.0.0.1:$port/orders/$oid" >/dev/null  # warm-up
read -r pc_tps pc_p99 < <(pgb_run "$tmp/create.sql")
read -r oc_rps oc_p99 < <(wrk_run "$tmp/post.lua" "http://127.0.0.1:$port/orders")
read -r pg_tps pg_p99 < <(pgb_run "$tmp/get.sql")
read -r og_rps og_p99 < <(wrk_run "$tmp/get.lua" "http://127.0.0.1:$port/orders/$oid")
printf '%-28s %10s %9s\n' "" "tx/s" "p99_ms"
printf '%-28s %10s %9s\n' "pgbench create (SQL only)" "$pc_tps" "$pc_p99"
printf '%-28s %10s %9s\n' "ordertrack POST /orders" "$oc_rps" "$oc_p99"
printf '%-28s %10s %9s\n' "pgbench get (SQL only)" "$pg_tps" "$pg_p99"
printf '%-28s %10s %9s\n' "ordertrack GET /orders/:id" "$og_rps" "$og_p99"
awk -v a="$oc_rps" -v b="$pc_tps" -v c="$og_rps" -v d="$pg_tps" -v n="$clients" -v w="$workers" \
  'BEGIN {printf "ratio create: %.2f   ratio get: %.2f   (%d clients, %d workers, %ds each)\n", a/b, c/d, n, w, '"$dur"'}'
