#!/usr/bin/env bash
# Search at scale: /search/* latency under load (wrk, N connections) at
# 1,000,000 orders, on both backends in one run: a server with
# ELASTICSEARCH_URL (its indexer fills the node from the outbox first) and one
# on PostgreSQL alone, same database, same requests. Prints requests/s, p50
# and p99 per request and backend, and the ratio PostgreSQL p99 / Elasticsearch
# p99 (issue 14's target: the same order of magnitude). Not a test; takes
# 10-20 minutes (the catch-up of ~2.5 million events dominates).
#   scripts/bench-search-scale.sh [orders=1000000] [conns=8] [secs=10]
# OT_BENCH_KEEP=1 leaves the database, the indices and both servers up, to
# look at a query by hand. OT_BENCH_ES_SRV (18186) and OT_BENCH_PG_SRV (18187)
# are the two servers' ports, for running beside another bench.
# Elasticsearch: ES_PORT (9200) through scripts/elasticsearch.sh (started if
# it is not running, stopped again then).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
orders=${1:-1000000}; conns=${2:-8}; secs=${3:-10}
es_port=${ES_PORT:-9200}
es=http://127.0.0.1:$es_port
make -s build/ordertrack
scripts/services.sh
command -v wrk >/dev/null || { echo "bench-search-scale: wrk missing (scripts/setup-deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d); es_srv=${OT_BENCH_ES_SRV:-18186}; pg_srv=${OT_BENCH_PG_SRV:-18187}
db=ot_bench_scale_$$
prefix=ot-scale-$$
pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
secret=bench-secret-0123456789abcdef0123456789
es_started=; pids=()
cleanup() {
  if [ -n "${OT_BENCH_KEEP:-}" ]; then
    echo "kept (OT_BENCH_KEEP): database $db, indices $prefix-*, servers ${pids[*]} on $es_srv (Elasticsearch), $pg_srv"
    return
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  # By name: the node refuses wildcard DELETEs (destructive_requires_name),
  # and indices left behind slowed every later run on the node.
  local ix; ix=$(curl -s "$es/_cat/indices/$prefix-*?h=index" 2>/dev/null | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
  [ -n "$ix" ] && curl -s -XDELETE "$es/$ix" >/dev/null 2>&1 || true
  for t in "$prefix" "$prefix-orders"; do curl -s -XDELETE "$es/_index_template/$t" >/dev/null 2>&1 || true; done
  "${pg[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "$es_started" ] && ES_PORT=$es_port scripts/elasticsearch.sh stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if ! ES_PORT=$es_port scripts/elasticsearch.sh status >/dev/null 2>&1; then
  ES_PORT=$es_port ES_TRANSPORT_PORT=$((es_port + 100)) scripts/elasticsearch.sh start
  es_started=1
fi
"${pg[@]}" -d postgres -c "CREATE DATABASE $db"
url=postgresql://postgres@127.0.0.1:5432/$db
build/ordertrack migrate --database-url "$url" 2>/dev/null

# The data set: scripts/lib/search-data.sql.
t0=$(date +%s)
"${pg[@]}" -d "$db" -v orders="$orders" -f scripts/lib/search-data.sql
events=$("${pg[@]}" -d "$db" -tAc "SELECT count(*) FROM order_events")
max=$("${pg[@]}" -d "$db" -tAc "SELECT max(seq) FROM order_events")
echo "data: $orders orders, $events events, generated in $(( $(date +%s) - t0 )) s"

serve() { # port [extra args...]
  local p=$1; shift
  JWT_SECRET=$secret build/ordertrack serve --listen 127.0.0.1:$p --workers 2 --log-level warn \
    --database-url "$url" --rate-ip 0 --rate-user 0 "$@" 2>>"$tmp/ot-$p.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "bench-search-scale: server on $p did not start" >&2; cat "$tmp/ot-$p.log" >&2; exit 1
}

# The Elasticsearch backend, filled by its own indexer from the whole outbox.
t0=$(date +%s)
serve $es_srv --elasticsearch-url "$es" --es-index-prefix "$prefix" --es-bulk-max-events 2000
while [ "$("${pg[@]}" -d "$db" -tAc "SELECT coalesce((SELECT seq FROM ot_sink_cursors WHERE name = 'search'), 0)")" -lt "$max" ]; do
  sleep 2
done
curl -sf -XPOST "$es/$prefix-events,$prefix-orders/_refresh" >/dev/null
echo "indexed: $events events in $(( $(date +%s) - t0 )) s"
serve $pg_srv

# Each request kind as 200 variants (other days, customers, orders), taken in
# turn: the same request again and again would be served from Elasticsearch's
# shard request cache (aggregations) and measure nothing else.
/usr/bin/python3 - "$url" "$secret" "$tmp" <<'PY'
import base64, datetime, hashlib, hmac, json, random, sys, time, psycopg2
url, secret, tmp = sys.argv[1:4]
conn = psycopg2.connect(url); cur = conn.cursor(); rnd = random.Random(7)
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
def tok(sub, role):
    h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b(json.dumps({"sub": str(sub), "role": role, "iat": int(time.time()), "exp": int(time.time()) + 7200}).encode())
    return h + "." + p + "." + b(hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
cur.execute("INSERT INTO users (email, name, password_hash, role) VALUES ('scale-admin@example.com', 'Admin', 'x', 'ADMIN') RETURNING id")
admin = tok(cur.fetchone()[0], "ADMIN"); conn.commit()
cur.execute("SELECT id FROM users WHERE role = 'CUSTOMER' ORDER BY random() LIMIT 200"); custs = [tok(u, "CUSTOMER") for (u,) in cur.fetchall()]
cur.execute("SELECT id FROM orders ORDER BY random() LIMIT 200"); oids = [o for (o,) in cur.fetchall()]
cur.execute("SELECT min(created_at)::date, max(created_at)::date - 31 FROM orders"); d0, d1 = cur.fetchone()
def day(n=1):
    d = d0 + datetime.timedelta(days=rnd.randrange(max(1, (d1 - d0).days)))
    return "from=%sT00:00:00Z&to=%sT00:00:00Z" % (d, d + datetime.timedelta(days=n))
kinds = {
    "admin_first": [(admin, "/search/orders?limit=20")] * 200,
    "admin_shipped_day": [(admin, "/search/orders?status=SHIPPED&" + day()) for _ in range(200)],
    "cust_first": [(t, "/search/orders") for t in custs],
    "history": [(admin, "/search/orders/%s/history" % o) for o in oids],
    "analytics_day": [(admin, "/search/analytics?interval=hour&" + day()) for _ in range(200)],
    "analytics_cust_year": [(t, "/search/analytics?interval=day&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z") for t in custs],
    "analytics_30d": [(admin, "/search/analytics?interval=day&" + day(30)) for _ in range(200)],
}
for k, v in kinds.items():
    open("%s/%s.txt" % (tmp, k), "w").write("".join("%s %s\n" % (t, p) for t, p in v))
PY
cat > "$tmp/reqs.lua" <<'LUA'
local reqs, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local t, p = line:match("^(%S+) (%S+)$")
    reqs[#reqs + 1] = wrk.format("GET", p, { Authorization = "Bearer " .. t })
  end
  i = math.random(#reqs)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA
reqs=(
  "admin_first|admin first page"
  "admin_shipped_day|admin SHIPPED, a day (200 days)"
  "cust_first|customer first page (200)"
  "history|order history (200 orders)"
  "analytics_day|analytics a day hourly (200 days)"
  "analytics_cust_year|analytics customer year daily (200)"
  "analytics_30d|analytics 30 days daily (200 ranges)"
)
wrk_run() { # port kind -> "rps p50_ms p99_ms errors"
  local u="http://127.0.0.1:$1" f="$tmp/$2.txt" t p
  read -r t p < "$f"
  curl -sf -H "Authorization: Bearer $t" "$u$p" -o "$tmp/body.json" || { echo "0 0 0 curl-failed"; return; }
  wrk -t2 -c"$conns" -d2s -s "$tmp/reqs.lua" "$u" -- "$f" >/dev/null  # warm-up (the node's JIT)
  local out; out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$tmp/reqs.lua" "$u" -- "$f")
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print "socket:" $0}' <<<"$out" | tr '\n' ' ' | sed 's/ $//')
  awk -v e="${non2xx:-0}" 'function ms(v) { if (v ~ /us$/) {sub(/us/,"",v); return v/1000} if (v ~ /ms$/) {sub(/ms/,"",v); return v+0} sub(/s/,"",v); return v*1000 }
       /Requests\/sec/ {rps=$2} $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)} END {printf "%s %.1f %.1f %s\n", rps, p50, p99, e}' <<<"$out"
}
printf '%-40s %26s %26s %8s\n' "" "Elasticsearch rps/p50/p99" "PostgreSQL rps/p50/p99" "pg/es"
for r in "${reqs[@]}"; do
  IFS='|' read -r kind name <<<"$r"
  read -r er e50 e99 ee < <(wrk_run $es_srv "$kind")
  read -r pr p50 p99 pe < <(wrk_run $pg_srv "$kind")
  ratio=$(python3 -c "print(round($p99 / $e99, 2) if $e99 > 0 else 'n/a')")
  printf '%-40s %10s %7s %7s ms %10s %7s %7s ms %8s%s\n' "$name" "$er" "$e50" "$e99" "$pr" "$p50" "$p99" "$ratio" \
    "$([ "$ee" != 0 ] || [ "$pe" != 0 ] && echo "  (non-2xx: es $ee, pg $pe)")"
done
echo "($conns connections, ${secs} s each, 2 workers per server; load average $(cut -d' ' -f1-3 /proc/loadavg))"
