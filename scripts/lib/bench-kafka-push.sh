#!/usr/bin/env bash
# The push phase of scripts/bench-kafka.sh (docs/BENCHMARKS.md "Kafka relay"),
# run from it (PHASES=push runs only this): PATCH -> WebSocket push latency in
# Kafka mode against the broker's floor, RUNS times, each run:
#  - floor: build/bench/kafka_floor, librdkafka alone on the same broker, the
#    relay's producer settings and the feed's consumer settings in one process,
#    RATE messages/s (2 each, like the relay), produce -> consume p50/p99;
#  - push: two servers on one database and one broker, one worker each (what
#    `--workers 2` forks, with the connections placed by hand instead of by
#    SO_REUSEPORT's hash): A holds the relay lock and takes every PATCH; B's
#    relay waits for the lock, its Kafka feed is up and its LISTEN closed, so
#    its sockets get every event from Kafka only. build/bench/ws_load e2e: one
#    admin socket on B, PATCH /orders/:id/status to A open-loop at RATE/s over
#    ~RATE*SECONDS/4 orders (each moved through its four statuses); latency =
#    PATCH sent -> push read, and HTTP answer read -> push read (the answer
#    goes out after COMMIT: the nearest client-side mark of the commit). The
#    first second is not counted; a single push missing fails the run.
#    The database commits with synchronous_commit off.
#   scripts/lib/bench-kafka-push.sh BROKER [runs=2]
#   PUSH_RATE=1000 PUSH_SECONDS=10 (counted: PUSH_RATE*PUSH_SECONDS updates)
#   PUSH_PORTS="PA PB" (default: two ports nobody listens on)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
broker=${1:?usage: bench-kafka-push.sh BROKER [runs]}
runs=${2:-2}
rate=${PUSH_RATE:-1000}
secs=${PUSH_SECONDS:-10}
make -s build/ordertrack build/bench/ws_load build/bench/kafka_floor

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
read -r port_a port_b <<<"${PUSH_PORTS:-$(free_port) $(free_port)}"
[ "$port_a" != "$port_b" ] || { echo "bench-kafka-push: PUSH_PORTS must differ" >&2; exit 2; }
. "$root/scripts/lib/benchdb.sh"
bench_db ot_bench_kpush_$$
pid_b=""
cleanup() {
  [ -z "$pid_b" ] || { kill "$pid_b" 2>/dev/null && wait "$pid_b" 2>/dev/null || true; }
  bench_db_cleanup
}
trap cleanup EXIT
build/ordertrack user promote bench@example.com --database-url "$url" >/dev/null 2>&1
# As in the relay's live phase: the rate is not the disk's fsync rate (on a
# shared box a synchronous commit took 50-350 ms at the median and 1,000/s was
# out of reach), and what is measured starts at the commit.
"${pg[@]}" -d postgres -c "ALTER DATABASE $db SET synchronous_commit = off"

secret=bench-secret-0123456789abcdef0123456789
prefix=benchpush$$.
serve() { # port log
  # shellcheck disable=SC2086
  JWT_SECRET=$secret DATABASE_URL=$url KAFKA_BROKERS=$broker ORDERTRACK_KAFKA_TOPIC_PREFIX=$prefix \
    ORDERTRACK_KAFKA_PARTITIONS=6 build/ordertrack serve --listen 127.0.0.1:"$1" --workers 1 --rate-ip 0 --rate-user 0 --pg-pool 16 \
    --log-level warn ${SERVER_ARGS:-} >"$2" 2>&1 &
}
metric() { # port name -> the sum of its samples
  { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } | awk -v n="$2" '$1 ~ "^"n"([{]|$)" {s += $2} END {print s + 0}'
}
wait_metric() { # port name value what
  local i
  for i in $(seq 300); do
    [ "$(metric "$1" "$2")" = "$3" ] && return 0
    sleep 0.1
  done
  echo "bench-kafka-push: $4 (after 30 s $2 = $(metric "$1" "$2") on :$1)" >&2
  exit 1
}

serve "$port_a" "$tmp/a.log"; ot_pid=$!
wait_metric "$port_a" ordertrack_relay_active 1 "server A does not hold the relay lock"
wait_metric "$port_a" ordertrack_kafka_up 1 "server A's producer is not up"
serve "$port_b" "$tmp/b.log"; pid_b=$!
wait_metric "$port_b" ordertrack_kafka_feed_up 1 "server B's Kafka feed is not up"
wait_metric "$port_b" ordertrack_events_listening 0 "server B still listens to PostgreSQL"
[ "$(metric "$port_b" ordertrack_relay_active)" = 0 ] || { echo "bench-kafka-push: B holds the relay lock" >&2; exit 1; }
token=$(curl -fsS -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"bench-password-1"}' \
  "http://127.0.0.1:$port_a/auth/login" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
results=()
for run in $(seq 1 "$runs"); do
  echo "---- push run $run of $runs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  floor=$(build/bench/kafka_floor --brokers "$broker" --topic "${prefix}floor$run" --partitions 6 --rate "$rate" \
    --count $((rate * secs)) --warmup 1)
  echo "$floor"
  fresh0=$(metric "$port_b" ordertrack_kafka_feed_fresh_total)
  recv0=$(metric "$port_b" ordertrack_events_received_total)
  rc=0
  push=$(build/bench/ws_load e2e --target ordertrack --port "$port_a" --ws-port "$port_b" --ws-token "$token" \
    --http-token "$token" --rate "$rate" --duration "$secs" --warmup 1 --http-conns 128 --max-lost 0 --timeout 300) || rc=$?
  echo "$push"
  fresh=$(($(metric "$port_b" ordertrack_kafka_feed_fresh_total) - fresh0))
  recv=$(($(metric "$port_b" ordertrack_events_received_total) - recv0))
  [ "$(metric "$port_b" ordertrack_events_listening)" = 0 ] ||
    { echo "bench-kafka-push: B reopened LISTEN during the run: not every push came from Kafka" >&2; exit 1; }
  [ "$rc" -eq 0 ] || { echo "bench-kafka-push: ws_load exited $rc (a push missing, or HTTP errors)" >&2; exit 1; }
  fp99=$(field p99_us "$floor")
  line="run $run: floor p50 $(ms "$(field p50_us "$floor")") p99 $(ms "$fp99") ms;"
  line+=" push (answer -> push) p50 $(ms "$(field push_minus_http_p50_us "$push")") p99 $(ms "$(field push_minus_http_p99_us "$push")") ms,"
  line+=" (PATCH sent -> push) p50 $(ms "$(field p50_us "$push")") p99 $(ms "$(field p99_us "$push")") ms;"
  line+=" answer-push p99 - floor p99 = $(ms $(($(field push_minus_http_p99_us "$push") - fp99))) ms (target <= 2);"
  line+=" $(field n "$push") pushes at $(field achieved "$push")/s ($(field late "$push") sends late);"
  line+=" B delivered $recv events, $fresh of them first from Kafka (the rest from its tail query, after a gap), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$line"
  results+=("$line")
done
echo "---- push phase, $rate updates/s:"
printf '%s\n' "${results[@]}"
