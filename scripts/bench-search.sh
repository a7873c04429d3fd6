#!/usr/bin/env bash
# Search indexing benchmark: how fast the indexer (app/indexer.c) puts an
# outbox of N events into Elasticsearch, against Elasticsearch's own _bulk
# ceiling measured with curl on the same node, the same documents and the same
# batch size, one request in flight (what the indexer does). Not a test.
#   scripts/bench-search.sh [orders=20000] [batch=1000] [lag_rate=1000] [lag_secs=20] [rounds=2]
# Elasticsearch: ES_PORT (9200) through scripts/elasticsearch.sh (started if
# it is not running, stopped again then). Prints events/s of both, the ratio
# and the index lag (p50/p99) of live writes at lag_rate events/s.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
orders=${1:-20000}; batch=${2:-1000}; lag_rate=${3:-1000}; lag_secs=${4:-20}; rounds=${5:-2}
es_port=${ES_PORT:-9200}
es=http://127.0.0.1:$es_port
make -s build/ordertrack
scripts/services.sh

tmp=$(mktemp -d); port=18185
db=ot_bench_search_$$
prefix=ot-bench-$$
pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
es_started=
cleanup() {
  [ -n "${ot_pid:-}" ] && kill "$ot_pid" 2>/dev/null && wait "$ot_pid" 2>/dev/null || true
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
# The outbox: $orders orders by 100 customers, each CREATED then ACCEPTED then
# PREPARED (three events), one minute apart, in one transaction.
"${pg[@]}" -d "$db" <<SQL
INSERT INTO users (id, email, name, password_hash, role)
SELECT gen_random_uuid(), 'bench' || i || '@example.com', 'Bench ' || i, 'x', 'CUSTOMER' FROM generate_series(1, 100) i;
CREATE TEMP TABLE u AS SELECT id, row_number() OVER () AS n FROM users;
CREATE TEMP TABLE o AS
SELECT gen_random_uuid() AS id, (SELECT id FROM u WHERE n = 1 + i % 100) AS uid,
       timestamptz '2026-06-01' + i * interval '1 second' AS t FROM generate_series(1, $orders) i;
INSERT INTO orders (id, user_id, status, items, created_at, updated_at, version)
SELECT id, uid, 'PREPARED', '[{"productId":"sku-1","qty":2}]', t, t + interval '2 minutes', 3 FROM o;
INSERT INTO order_events (order_id, version, user_id, type, status, payload, actor, created_at)
SELECT o.id, v, o.uid, CASE v WHEN 1 THEN 'order.created' ELSE 'order.updated' END,
       (ARRAY['CREATED', 'ACCEPTED', 'PREPARED'])[v]::order_status,
       '{"items":[{"productId":"sku-1","qty":2}]}', o.uid, o.t + (v - 1) * interval '1 minute'
FROM o, generate_series(1, 3) v ORDER BY o.t, v;
SQL
events=$("${pg[@]}" -d "$db" -tAc "SELECT count(*) FROM order_events")
max=$("${pg[@]}" -d "$db" -tAc "SELECT max(seq) FROM order_events")
echo "events: $events (batch $batch, one _bulk in flight)"

# 1. The indexer: a server whose durable sink starts at 0 (the whole outbox),
# into indices of prefix $p.
start_indexer() {
"${pg[@]}" -d "$db" -c "DELETE FROM ot_sink_cursors WHERE name = 'search'"
JWT_SECRET=bench-secret-0123456789abcdef0123456789 build/ordertrack serve --listen 127.0.0.1:$port --workers 1 \
  --log-level warn --database-url "$url" --elasticsearch-url "$es" --es-index-prefix "$p" \
  --es-bulk-max-events "$batch" 2>"$tmp/ot.log" &
ot_pid=$!
}
now() { date +%s.%N; }
run_indexer() {
start_indexer
# One connection polling every 20 ms (a psql per poll would cost the 2 cores more than the indexer).
# CPU over the same span (utime+stime from /proc, all threads): Elasticsearch,
# the server, and the bench database's PostgreSQL backends (the server's pools).
es_pid=$(ss -ltnpH "sport = :$es_port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
read -r c0 t0 t1 cpu_ix < <(/usr/bin/python3 - "$url" "$max" "$ot_pid" "${es_pid:-0}" "$db" <<'PY'
import os, sys, time, psycopg2
conn = psycopg2.connect(sys.argv[1]); conn.autocommit = True; cur = conn.cursor(); top = int(sys.argv[2])
ot_pid, es_pid, db = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
HZ = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / HZ
    except (OSError, ValueError, IndexError):
        return 0.0
def tree(pid):  # the master and its workers
    try:
        kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
    except OSError:
        kids = []
    return {pid: cpu(pid), **{int(k): cpu(int(k)) for k in kids}}
def backends():
    cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (db,))
    return {p: cpu(p) for (p,) in cur.fetchall()}
def pos():
    cur.execute("SELECT coalesce((SELECT seq FROM ot_sink_cursors WHERE name = 'search'), 0)")
    return cur.fetchone()[0]
while pos() == 0:
    time.sleep(0.02)
t0 = time.time(); c0 = pos(); es0, ot0, pg0 = cpu(es_pid), tree(ot_pid), backends()
while pos() < top:
    time.sleep(0.02)
t1 = time.time(); es1, ot1, pg1 = cpu(es_pid), tree(ot_pid), backends()
pgc = sum(v - pg0.get(p, 0.0) for p, v in pg1.items())
otc = sum(v - ot0.get(p, 0.0) for p, v in ot1.items())
print(c0, t0, t1, "es=%.2f,ordertrack=%.2f,postgres=%.2f" % (es1 - es0, otc, pgc))
PY
)
ix_rate=$(python3 -c "print(round(($max - $c0) / ($t1 - $t0)))")
echo "round $round indexer: $((max - c0)) events in $(python3 -c "print(round($t1 - $t0, 2))") s = $ix_rate events/s (CPU s: $cpu_ix)"
}

# 1b. Index lag: new orders written at $lag_rate events/s for $lag_secs s (5
# per transaction, paced) while the same server indexes them; commit ->
# acknowledged by Elasticsearch per event, from the difference of the server's
# ordertrack_search_index_latency_seconds histogram before and after.
lag_phase() {
  /usr/bin/python3 - "$url" "$port" "$lag_rate" "$lag_secs" <<'PY'
import sys, time, urllib.request, psycopg2
url, port, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
NAME = "ordertrack_search_index_latency_seconds_bucket"
def hist():
    h = {}
    for l in urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port).read().decode().splitlines():
        if l.startswith(NAME + "{"):
            le = l.split('le="', 1)[1].split('"', 1)[0]
            k = float("inf") if le == "+Inf" else float(le)
            h[k] = h.get(k, 0) + float(l.rsplit(" ", 1)[1])
    return h
conn = psycopg2.connect(url); conn.autocommit = True; cur = conn.cursor()
cur.execute("SELECT id FROM users LIMIT 1"); uid = cur.fetchone()[0]
before = hist()
per_tx = 5; n = rate * secs // per_tx; t0 = time.monotonic(); late = 0
for i in range(n):
    due = t0 + i * per_tx / rate
    d = due - time.monotonic()
    if d > 0:
        time.sleep(d)
    elif d < -0.05:
        late += 1
    cur.execute("SELECT ot_create_order(%s, '[{\"productId\":\"sku-2\",\"qty\":1}]', NULL, %s) FROM generate_series(1, %s)",
                (uid, uid, per_tx))
wrote = time.monotonic() - t0
cur.execute("SELECT max(seq) FROM order_events"); top = cur.fetchone()[0]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    cur.execute("SELECT coalesce((SELECT seq FROM ot_sink_cursors WHERE name = 'search'), 0)")
    if cur.fetchone()[0] >= top:
        break
    time.sleep(0.05)
time.sleep(0.2)
after = hist()
les = sorted(after)
cum = [after[le] - before.get(le, 0) for le in les]
total = cum[-1]
def q(p):
    want = p * total
    lo, prev = 0.0, 0.0
    for le, c in zip(les, cum):
        if c >= want:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * ((want - prev) / (c - prev) if c > prev else 1.0)
        lo, prev = le, c
    return lo
print("index lag at %d events/s for %.1f s (%d events, %d writes late by > 50 ms): p50 %.0f ms, p99 %.0f ms"
      " (commit -> _bulk acknowledged, interpolated within histogram buckets)"
      % (n * per_tx / wrote, wrote, total, late, q(0.5) * 1000, q(0.99) * 1000))
PY
}

# 2. The ceiling: the documents the indexer wrote, read back, re-sent with curl
# into fresh indices of the same template in batches of the same size.
run_ceiling() {
rm -f "$tmp"/bulk-*.ndjson
curl -sf -XPOST "$es/$p-events,$p-orders/_refresh" >/dev/null
python3 - "$es" "$p" "$batch" "$tmp" "$max" <<'PY'
import json, sys, urllib.request
es, prefix, batch, tmp, top = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
def scan(index):
    # The outbox only, not the lag phase's orders.
    body = {"size": 10000, "sort": ["_doc"], "query": {"range": {"seq": {"lte": top}}}}
    req = urllib.request.Request("%s/%s/_search?scroll=1m" % (es, index), json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req))
    while r["hits"]["hits"]:
        yield from r["hits"]["hits"]
        req = urllib.request.Request("%s/_search/scroll" % es, json.dumps({"scroll": "1m", "scroll_id": r["_scroll_id"]}).encode(),
                                     {"Content-Type": "application/json"})
        r = json.load(urllib.request.urlopen(req))
events = {h["_source"]["orderId"] + ":%d" % h["_source"]["version"]: h for h in scan(prefix + "-events")}
orders = {h["_id"]: h["_source"] for h in scan(prefix + "-orders")}
lines, n, f = [], 0, 0
for key in sorted(events, key=lambda k: events[k]["_source"]["seq"]):
    h = events[key]; s = h["_source"]
    lines.append(json.dumps({"create": {"_index": prefix + "-events-ceil", "_id": h["_id"]}}))
    lines.append(json.dumps(s, separators=(",", ":")))
    o = dict(orders[s["orderId"]], status=s["status"], version=s["version"], seq=s["seq"])
    lines.append(json.dumps({"index": {"_index": prefix + "-orders-ceil", "_id": s["orderId"], "version": s["version"],
                                       "version_type": "external"}}))
    lines.append(json.dumps(o, separators=(",", ":")))
    n += 1
    if n % batch == 0:
        open("%s/bulk-%05d.ndjson" % (tmp, f), "w").write("\n".join(lines) + "\n"); lines = []; f += 1
if lines:
    open("%s/bulk-%05d.ndjson" % (tmp, f), "w").write("\n".join(lines) + "\n")
PY
es_cpu() { [ -n "$es_pid" ] && awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$es_pid/stat" || echo 0; }
e0=$(es_cpu)
t0=$(now)
for f in "$tmp"/bulk-*.ndjson; do
  curl -sf -XPOST "$es/_bulk" -H 'Content-Type: application/x-ndjson' --data-binary "@$f" -o "$tmp/answer.json"
  grep -q '"errors":false' "$tmp/answer.json" || { echo "bench-search: a ceiling _bulk had errors" >&2; head -c 400 "$tmp/answer.json" >&2; exit 1; }
done
t1=$(now)
e1=$(es_cpu)
ceil_rate=$(python3 -c "print(round($events / ($t1 - $t0)))")
echo "round $round curl _bulk ceiling: $events events in $(python3 -c "print(round($t1 - $t0, 2))") s = $ceil_rate events/s (CPU s: es=$(python3 -c "print(round($e1 - $e0, 2))"))"
ratio=$(python3 -c "print(round($ix_rate / $ceil_rate, 2))")
echo "round $round ratio indexer/ceiling: $ratio"
}

# Round 1 also warms the node's JVM (a fresh one spends CPU compiling for a
# minute): only the last round counts. The lag phase runs once, in the last
# round, after its catch-up.
for round in $(seq 1 "$rounds"); do
  p=$prefix-r$round
  run_indexer
  [ "$round" = "$rounds" ] && [ "$lag_secs" -gt 0 ] && lag_phase
  kill "$ot_pid"; wait "$ot_pid" 2>/dev/null || true; ot_pid=
  run_ceiling
done
echo "ratio indexer/ceiling (round $rounds of $rounds): $ratio"
