#!/usr/bin/env bash
# Kafka relay throughput and latency (docs/BENCHMARKS.md "Kafka relay"): a
# throw-away database with a pre-filled outbox of N events (default 200,000:
# N/2 orders created and accepted), then, RUNS times (default 2), alternately:
#  - the real binary (1 worker) relays the whole outbox from cursor 0 to a
#    fresh topic prefix: events/s from the first published event to the N-th;
#    then a live phase: LIVE status changes (default 3000, one transaction
#    each, one client's round trip apart) while the relay is caught up, and the commit ->
#    delivery report latency of those, from the server's
#    ordertrack_relay_publish_latency_seconds buckets (difference of two
#    scrapes; p50/p99 interpolated inside a bucket like histogram_quantile);
#  - the same N messages (key, value, to order.events and to the type topic,
#    like the relay) produced by `kcat -P` with the same producer settings
#    (idempotent, acks=all, linger 5 ms, murmur2_random, librdkafka defaults
#    otherwise: the relay sets no batch option either) into the topics the
#    relay created: the baseline of that run.
# Prints each run's events/s for both and the ratio. Not a test.
#   KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 OT_KAFKA_DIR=... scripts/bench-kafka.sh [events=200000] [runs=2]
#   LIVE=3000 (0: no live phase); SERVER_ARGS="--sink-page-events 500" to try a setting;
#   REF_BIN=/path/to/ordertrack: each run also times that build's relay first
#   (e.g. one of the previous commit), so a change is compared in the same run.
#   PHASES=relay,push (default): push is scripts/lib/bench-kafka-push.sh, run
#   first, RUNS times: PATCH -> WebSocket push latency in Kafka mode against the
#   broker's floor (librdkafka alone); PHASES=push runs only that.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
n=${1:-200000}
runs=${2:-2}
live=${LIVE:-3000}
orders=$((n / 2))
[ "$live" -le "$orders" ] || { echo "LIVE must be at most events/2" >&2; exit 2; }
make -s build/ordertrack
scripts/services.sh
scripts/kafka.sh start >/dev/null
broker=127.0.0.1:${KAFKA_PORT:-9092}
phases=,${PHASES:-relay,push},
[[ $phases != *,push,* ]] || scripts/lib/bench-kafka-push.sh "$broker" "$runs"
[[ $phases == *,relay,* ]] || exit 0

# A port nobody listens on: the server binds with SO_REUSEPORT, so on a fixed
# port another benchmark's server would silently share our scrapes
# (OT_BENCH_PORT: one of your own instead).
port=${OT_BENCH_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
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

# kcat's input: the first n events, as the relay publishes them.
for t in events created updated; do
  where=""
  [ "$t" = events ] || where="WHERE type = 'order.$t'"
  "${pg[@]}" -d "$db" -tAc "SELECT oe.order_id || E'\t' || ot_event_json(oe) FROM order_events oe $where ORDER BY oe.seq" \
    >"$tmp/$t.tsv"
done

secret=bench-secret-0123456789abcdef0123456789
metric() { # sum of a metric family's samples matching the awk pattern $1
  { curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null || true; } | awk -v pat="$1" '$0 ~ pat {s += $2} END {print s + 0}'
}
published() { metric '^ordertrack_relay_published_total\\{'; }
latency_scrape() { # le -> count, summed over workers
  curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^ordertrack_relay_publish_latency_seconds_bucket\{/ {
    match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); c[le] += $2 }
    END { for (k in c) print k, c[k] }'
}
# p50 and p99 of the difference of two scrapes, linear inside the bucket.
quantiles() {
  python3 - "$1" "$2" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        le, c = line.split()
        d[float("inf") if le == "+Inf" else float(le)] = float(c)
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
les = sorted(b)
cum = [b[l] - a.get(l, 0) for l in les]
total = cum[-1] if cum else 0
if total <= 0:
    print("no events"); sys.exit()
def q(p):
    rank = p * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in zip(les, cum):
        if c >= rank:
            if le == float("inf"):
                return "> %gs" % prev_le
            frac = (rank - prev_c) / (c - prev_c) if c > prev_c else 1
            return "%.1f ms" % (1000 * (prev_le + (le - prev_le) * frac))
        prev_le, prev_c = le, c
print("p50 %s, p99 %s (%d events)" % (q(0.5), q(0.99), total))
PY
}

# Starts `$1 serve` relaying from cursor 0 to prefix $2 and times the first n
# events; sets relay_rate and leaves the server running (ot_pid).
relay_from_zero() {
  "${pg[@]}" -d "$db" -c "DELETE FROM ot_sink_cursors WHERE name = 'kafka-relay'" >/dev/null
  # shellcheck disable=SC2086
  JWT_SECRET=$secret DATABASE_URL=$url KAFKA_BROKERS=$broker ORDERTRACK_KAFKA_TOPIC_PREFIX=$2 \
    ORDERTRACK_KAFKA_PARTITIONS=6 "$1" serve --listen 127.0.0.1:$port --workers 1 \
    --log-level warn ${SERVER_ARGS:-} >"$tmp/server.log" 2>&1 &
  ot_pid=$!
  local t_start="" t_end p p_start=0
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
  echo "relay ($1): $n events (2 messages each) in $(python3 -c "print(round($t_end - $t_start, 2))") s: $relay_rate events/s"
}

kopts=(-b "$broker" -K $'\t' -X enable.idempotence=true -X acks=all -X linger.ms=5 -X partitioner=murmur2_random)
ratios=()
ref_ratios=()
for run in $(seq 1 "$runs"); do
  echo "---- run $run of $runs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ -n "${REF_BIN:-}" ]; then
    # The reference build first, to topics of its own.
    relay_from_zero "$REF_BIN" "bench$$r${run}ref."
    ref_rate=$relay_rate
    kill "$ot_pid"; wait "$ot_pid" 2>/dev/null || true; ot_pid=""
  fi
  prefix=bench$$r$run.
  relay_from_zero build/ordertrack "$prefix"

  # ---- live: the relay caught up, status changes committed one by one
  if [ "$live" -gt 0 ]; then
    total=$("${pg[@]}" -d "$db" -tAc "SELECT count(*) FROM order_events")
    while [ "$(published)" -lt "$total" ]; do sleep 0.05; done
    latency_scrape >"$tmp/lat0"
    t0=$(date +%s.%N)
    # The orders still ACCEPTED, a different slice each run; \gexec runs each
    # row as its own statement, so each change commits on its own, one client
    # round trip apart. synchronous_commit off: the commit rate is not the
    # disk's fsync rate.
    "${pg[@]}" -d "$db" >/dev/null <<SQL
SET synchronous_commit = off;
SELECT format('SELECT ot_update_status(%L, %L, NULL, %L)', id, 'PREPARED', '$uid')
  FROM orders WHERE status = 'ACCEPTED' ORDER BY id LIMIT $live \gexec
SQL
    t1=$(date +%s.%N)
    total=$((total + live))
    while [ "$(published)" -lt "$total" ]; do
      kill -0 "$ot_pid" 2>/dev/null || { echo "server died" >&2; exit 1; }
      sleep 0.05
    done
    latency_scrape >"$tmp/lat1"
    echo "live: $live status changes at $(python3 -c "print(round($live / ($t1 - $t0)))")/s, commit -> delivery report: $(quantiles "$tmp/lat0" "$tmp/lat1")"
  fi
  kill "$ot_pid"; wait "$ot_pid" 2>/dev/null || true; ot_pid=""

  # ---- kcat -P, the same messages, the same producer settings, into the
  # relay's topics (created by it through the admin API: the same partitions
  # and settings; a broker may refuse auto-creation).
  t0=$(date +%s.%N)
  kcat -P "${kopts[@]}" -t "${prefix}order.events" -l "$tmp/events.tsv"
  kcat -P "${kopts[@]}" -t "${prefix}order.created" -l "$tmp/created.tsv"
  kcat -P "${kopts[@]}" -t "${prefix}order.updated" -l "$tmp/updated.tsv"
  t1=$(date +%s.%N)
  kcat_rate=$(python3 -c "print(round($n / ($t1 - $t0)))")
  echo "kcat -P: $n events (2 messages each) in $(python3 -c "print(round($t1 - $t0, 2))") s: $kcat_rate events/s"
  ratio=$(python3 -c "print(round($relay_rate / $kcat_rate, 2))")
  ratios+=("$ratio")
  echo "relay / kcat: $ratio (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ -n "${REF_BIN:-}" ]; then
    ref_ratios+=("$(python3 -c "print(round($ref_rate / $kcat_rate, 2))")")
    echo "reference relay / kcat: ${ref_ratios[-1]}; this build / reference: $(python3 -c "print(round($relay_rate / $ref_rate, 2))")"
  fi
done
echo "---- relay / kcat per run: ${ratios[*]}"
[ -z "${REF_BIN:-}" ] || echo "---- reference relay / kcat per run: ${ref_ratios[*]}"
