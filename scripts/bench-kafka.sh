#!/usr/bin/env bash
# Kafka relay throughput (docs/BENCHMARKS.md "Kafka relay"): a throw-away
# database with a pre-filled outbox of N events (default 200,000: N/2 orders
# created and accepted), then the real binary (1 worker) relays the whole
# outbox from cursor 0 to a fresh topic prefix; the same messages (key, value,
# to order.events and to the type topic, like the relay) produced by
# `kcat -P` with the same producer settings (idempotent, acks=all, linger 5 ms)
# are the baseline. Prints events/s for both and the ratio. Not a test.
# The PATCH -> WebSocket push latency half of the issue's benchmark is not
# written yet.
#   KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 OT_KAFKA_DIR=... scripts/bench-kafka.sh [events=200000]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
n=${1:-200000}
orders=$((n / 2))
make -s build/ordertrack
scripts/services.sh
scripts/kafka.sh start >/dev/null
broker=127.0.0.1:${KAFKA_PORT:-9092}

port=18185
. "$root/scripts/lib/benchdb.sh"
bench_db ot_bench_kafka_$$

echo "filling the outbox: $orders orders, $n events"
t0=$(date +%s.%N)
"${pg[@]}" -d "$db" <<SQL
SET synchronous_commit = off;
DO \$\$
DECLARE oid uuid;
BEGIN
  FOR i IN 1..$orders LOOP
    SELECT (c.order_json::json->>'id')::uuid INTO oid
      FROM ot_create_order('$uid', '[{"productId":"sku-bench","qty":1}]', NULL, NULL) c;
    PERFORM ot_update_status(oid, 'ACCEPTED', NULL, '$uid');
    IF i % 1000 = 0 THEN COMMIT; END IF;
  END LOOP;
END \$\$;
SQL
echo "filled in $(python3 -c "import time;print(round(time.time()-$t0,1))") s"
"${pg[@]}" -d "$db" -tAc "SELECT count(*) FROM order_events" | grep -qx "$n" || { echo "outbox is not $n events" >&2; exit 1; }

# ---- the relay
prefix=bench$$.
secret=bench-secret-0123456789abcdef0123456789
JWT_SECRET=$secret DATABASE_URL=$url KAFKA_BROKERS=$broker ORDERTRACK_KAFKA_TOPIC_PREFIX=$prefix \
  ORDERTRACK_KAFKA_PARTITIONS=6 build/ordertrack serve --listen 127.0.0.1:$port --workers 1 \
  --log-level warn >"$tmp/server.log" 2>&1 &
ot_pid=$!
published() {
  { curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null || true; } |
    awk '/^ordertrack_relay_published_total\{/ {s += $2} END {print s + 0}'
}
t_start=""
while :; do
  p=$(published)
  if [ -z "$t_start" ] && [ "$p" -gt 0 ]; then t_start=$(date +%s.%N); p_start=$p; fi
  [ "$p" -ge "$n" ] && break
  kill -0 "$ot_pid" 2>/dev/null || { echo "server died" >&2; tail -20 "$tmp/server.log" >&2; exit 1; }
  sleep 0.05
done
t_end=$(date +%s.%N)
[ "$p_start" -lt "$n" ] || { echo "relay: all $n events published before the first sample: use more events" >&2; exit 1; }
relay_rate=$(python3 -c "print(round(($n - $p_start) / ($t_end - $t_start)))")
echo "relay: $n events (2 messages each) in $(python3 -c "print(round($t_end - $t_start, 2))") s: $relay_rate events/s"
kill "$ot_pid"; wait "$ot_pid" 2>/dev/null || true; ot_pid=""

# ---- kcat -P, the same messages, the same producer settings
"${pg[@]}" -d "$db" -tAc "SELECT oe.order_id || E'\t' || ot_event_json(oe) FROM order_events oe ORDER BY oe.seq" \
  >"$tmp/events.tsv"
"${pg[@]}" -d "$db" -tAc "SELECT oe.order_id || E'\t' || ot_event_json(oe) FROM order_events oe WHERE type = 'order.created' ORDER BY oe.seq" \
  >"$tmp/created.tsv"
"${pg[@]}" -d "$db" -tAc "SELECT oe.order_id || E'\t' || ot_event_json(oe) FROM order_events oe WHERE type = 'order.updated' ORDER BY oe.seq" \
  >"$tmp/updated.tsv"
# Into the relay's topics (created by it through the admin API: the same
# partitions and settings; a broker may refuse auto-creation).
kprefix=$prefix
kopts=(-b "$broker" -K $'\t' -X enable.idempotence=true -X acks=all -X linger.ms=5 -X partitioner=murmur2_random)
t0=$(date +%s.%N)
kcat -P "${kopts[@]}" -t "${kprefix}order.events" -l "$tmp/events.tsv"
kcat -P "${kopts[@]}" -t "${kprefix}order.created" -l "$tmp/created.tsv"
kcat -P "${kopts[@]}" -t "${kprefix}order.updated" -l "$tmp/updated.tsv"
t1=$(date +%s.%N)
kcat_rate=$(python3 -c "print(round($n / ($t1 - $t0)))")
echo "kcat -P: $n events (2 messages each) in $(python3 -c "print(round($t1 - $t0, 2))") s: $kcat_rate events/s"
echo "relay / kcat: $(python3 -c "print(round($relay_rate / $kcat_rate, 2))")"
