#!/usr/bin/env bash
# The push phase of scripts/bench-kafka.sh (docs/BENCHMARKS.md "Kafka relay"),
# run from it (PHASES=push runs only this): PATCH -> WebSocket push latency in
# Kafka mode against the broker's floor, RUNS times, each run:
#  - floor: build/bench/kafka_floor, librdkafka alone on the same broker, the
#    relay's producer settings and the feed's consumer settings in one process,
#    RATE messages/s (2 each, like the relay), produce -> consume p50/p99;
#    once alone, once more during the timed PATCHes below (same seconds, same
#    machine load: on a shared box the floor's p99 alone moves 15-400 ms from
#    one run to the next);
#  - push: two servers on one database and one broker. A (2 workers) takes
#    every PATCH; one of its workers holds the relay lock and publishes. B (1
#    worker: a worker of a `--workers 3` server, with the sockets placed by
#    hand instead of by SO_REUSEPORT's hash) does not hold the lock, its Kafka
#    feed is up and its LISTEN closed (both checked), so it learns of every
#    commit from Kafka only; an event that arrives behind a gap in seq (as
#    messages of different partitions do) is read from PostgreSQL by B's
#    reader's tail query 2 ms later, as is what its 1 s idle poll finds before
#    Kafka brings it: both counted as not "first from Kafka".
#    build/bench/ws_load e2e: one admin socket on B, PATCH /orders/:id/status
#    to A open-loop at RATE/s over ~RATE*SECONDS/4 orders (each moved through
#    its four statuses, 128 connections; timed once every creation has been
#    pushed, so no backlog of the setup is timed); latency = PATCH sent -> push read,
#    and HTTP answer read -> push read (the answer goes out after COMMIT: the
#    nearest client-side mark of the commit). The
#    first second is not counted; a single push missing fails the run.
#    The database commits with synchronous_commit off.
#   scripts/lib/bench-kafka-push.sh BROKER [runs=2]
#   PUSH_RATE=1000 PUSH_SECONDS=10 (counted: PUSH_RATE*PUSH_SECONDS updates)
#   PUSH_PORTS="PA PB" (default: two ports nobody listens on)
#   PUSH_A_WORKERS=2: 1 makes every commit the relay holder's own (no NOTIFY
#   hop between the PATCH and the relay)
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
pid_b="" load_pid=""
cleanup() {
  local p
  for p in $load_pid $pid_b; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
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
serve() { # port workers log
  # shellcheck disable=SC2086
  JWT_SECRET=$secret DATABASE_URL=$url KAFKA_BROKERS=$broker ORDERTRACK_KAFKA_TOPIC_PREFIX=$prefix \
    ORDERTRACK_KAFKA_PARTITIONS=6 build/ordertrack serve --listen 127.0.0.1:"$1" --workers "$2" --rate-ip 0 --rate-user 0 --pg-pool 16 \
    --log-level warn ${SERVER_ARGS:-} >"$3" 2>&1 &
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

serve "$port_a" "${PUSH_A_WORKERS:-2}" "$tmp/a.log"; ot_pid=$!
wait_metric "$port_a" ordertrack_relay_active 1 "server A does not hold the relay lock"
wait_metric "$port_a" ordertrack_kafka_up 1 "server A's producer is not up"
serve "$port_b" 1 "$tmp/b.log"; pid_b=$!
wait_metric "$port_b" ordertrack_kafka_feed_up 1 "server B's Kafka feed is not up"
wait_metric "$port_b" ordertrack_events_listening 0 "server B still listens to PostgreSQL"
[ "$(metric "$port_b" ordertrack_relay_active)" = 0 ] || { echo "bench-kafka-push: B holds the relay lock" >&2; exit 1; }
token=$(curl -fsS -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"bench-password-1"}' \
  "http://127.0.0.1:$port_a/auth/login" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')

floor() { # topic
  build/bench/kafka_floor --brokers "$broker" --topic "$1" --partitions 6 --rate "$rate" --count $((rate * secs)) --warmup 1
}
# A's ordertrack_relay_publish_latency_seconds (the event's timestamp -> both
# delivery reports) over the timed PATCHes: le and count per line.
buckets() { # port
  curl -fsS "http://127.0.0.1:$1/metrics" | awk '/^ordertrack_relay_publish_latency_seconds_bucket\{/ {
    match($0, /le="[^"]*"/); c[substr($0, RSTART + 4, RLENGTH - 5)] += $2 } END { for (k in c) print k, c[k] }'
}
relay_quantiles() { # before-file, after on stdin -> "p50 <= X s p99 <= Y s" (the buckets' upper bounds)
  sort -g | awk -v before="$1" 'BEGIN { while ((getline l < before) > 0) { split(l, f, " "); b[f[1]] = f[2] } }
    { le[NR] = $1; n[NR] = $2 - b[$1] } END { t = n[NR]; if (t <= 0) { print "no events"; exit }
      for (q = 50; q <= 99; q += 49) { for (i = 1; n[i] < t * q / 100; i++); printf "p%d <= %s s ", q, le[i] } }'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
results=()
for run in $(seq 1 "$runs"); do
  echo "---- push run $run of $runs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  floor=$(floor "${prefix}floor$run")
  echo "$floor"
  fresh0=$(metric "$port_b" ordertrack_kafka_feed_fresh_total)
  recv0=$(metric "$port_b" ordertrack_events_received_total)
  rc=0
  build/bench/ws_load e2e --target ordertrack --port "$port_a" --ws-port "$port_b" --ws-token "$token" \
    --http-token "$token" --rate "$rate" --duration "$secs" --warmup 1 --http-conns 128 --max-lost 0 --settle 1 --timeout 300 \
    >"$tmp/push.out" 2>"$tmp/push.err" &
  load_pid=$!
  # The floor again, in the same seconds as the timed PATCHes (which start
  # once every order's creation has been pushed): the same machine load for
  # both p99s.
  for _ in $(seq 2400); do
    grep -q 'settled' "$tmp/push.err" && break
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.1
  done
  buckets "$port_a" >"$tmp/lat0"
  during=$(floor "${prefix}floor${run}during")
  wait "$load_pid" || rc=$?
  relay=$(buckets "$port_a" | relay_quantiles "$tmp/lat0")
  cat "$tmp/push.err" >&2
  push=$(cat "$tmp/push.out")
  echo "$during"
  echo "$push"
  fresh=$(($(metric "$port_b" ordertrack_kafka_feed_fresh_total) - fresh0))
  recv=$(($(metric "$port_b" ordertrack_events_received_total) - recv0))
  [ "$(metric "$port_b" ordertrack_events_listening)" = 0 ] ||
    { echo "bench-kafka-push: B reopened LISTEN during the run: not every push came from Kafka" >&2; exit 1; }
  [ "$rc" -eq 0 ] || { echo "bench-kafka-push: ws_load exited $rc (a push missing, or HTTP errors)" >&2; exit 1; }
  fp99=$(field p99_us "$floor")
  dp99=$(field p99_us "$during")
  line="run $run: floor alone p50 $(ms "$(field p50_us "$floor")") p99 $(ms "$fp99") ms,"
  line+=" during the PATCHes p50 $(ms "$(field p50_us "$during")") p99 $(ms "$dp99") ms;"
  line+=" push (answer -> push) p50 $(ms "$(field push_minus_http_p50_us "$push")") p99 $(ms "$(field push_minus_http_p99_us "$push")") ms,"
  line+=" (PATCH sent -> push) p50 $(ms "$(field p50_us "$push")") p99 $(ms "$(field p99_us "$push")") ms;"
  line+=" push p99 (from the answer) - floor p99: $(ms $(($(field push_minus_http_p99_us "$push") - fp99))) ms alone,"
  line+=" $(ms $(($(field push_minus_http_p99_us "$push") - dp99))) ms during (target <= 2);"
  line+=" $(field n "$push") pushes at $(field achieved "$push")/s ($(field late "$push") sends late);"
  line+=" A's relay, commit -> delivery report: ${relay% };"
  line+=" B delivered $recv events, $fresh of them first from Kafka (the rest its own tail query read from PostgreSQL first), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$line"
  results+=("$line")
done
echo "---- push phase, $rate updates/s:"
printf '%s\n' "${results[@]}"
