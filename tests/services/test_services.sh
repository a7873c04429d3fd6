#!/usr/bin/env bash
# Checks scripts/kafka.sh and scripts/elasticsearch.sh end to end against the
# real services: start on free non-default ports with throw-away state, a
# message through Kafka with kcat, a nested document through Elasticsearch,
# start twice, stop twice, status after stop. One JVM at a time (the machine
# is small and shared). Needs Maven Central on the first run (the cache).
#   tests/services/test_services.sh        (make test-services)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

fail() { echo "test-services: FAIL: $*" >&2; exit 1; }
ok() { echo "test-services: ok: $*"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Four distinct free ports; fixed ones from the environment win.
pick() { local p; while :; do p=$(free_port); case " $* " in *" $p "*) ;; *) echo "$p"; return ;; esac; done; }
kp=${KAFKA_PORT:-$(pick)}
kcp=${KAFKA_CONTROLLER_PORT:-$(pick "$kp")}
ep=${ES_PORT:-$(pick "$kp" "$kcp")}
etp=${ES_TRANSPORT_PORT:-$(pick "$kp" "$kcp" "$ep")}

kdir=$(mktemp -d /tmp/ot-kafka-test.XXXXXX)
edir=$(mktemp -d /tmp/ot-es-test.XXXXXX)
kafka() { KAFKA_PORT=$kp KAFKA_CONTROLLER_PORT=$kcp OT_KAFKA_DIR=$kdir scripts/kafka.sh "$@"; }
es() { ES_PORT=$ep ES_TRANSPORT_PORT=$etp OT_ES_DIR=$edir scripts/elasticsearch.sh "$@"; }
cleanup() {
  kafka stop >/dev/null 2>&1 || true
  es stop >/dev/null 2>&1 || true
  rm -rf "$kdir" "$edir"
}
trap cleanup EXIT

status_rc() { # fn -> prints its status exit code
  local rc=0
  "$1" status >/dev/null || rc=$?
  echo "$rc"
}

pidof_state() { tr -dc 0-9 <"$1"; }

# ---------------------------------------------------------------- Kafka
[ "$(status_rc kafka)" = 3 ] || fail "kafka status before start should say not running (3)"
t0=$SECONDS
kafka start || fail "kafka start"
ok "kafka started on $kp in $((SECONDS - t0))s (includes the download on a cold cache)"
[ "$(status_rc kafka)" = 0 ] || fail "kafka status after start should be 0"
pid1=$(pidof_state "$kdir/kafka.pid")

t0=$SECONDS
kafka start || fail "second kafka start"
[ "$(pidof_state "$kdir/kafka.pid")" = "$pid1" ] || fail "second start replaced the broker"
((SECONDS - t0 <= 5)) || fail "second start took $((SECONDS - t0))s, should be a no-op"
ok "kafka start on a running broker is a no-op"

topic=ot_svc_$RANDOM$RANDOM
want="key-$RANDOM=value-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$want" | timeout 60 kcat -P -b "127.0.0.1:$kp" -t "$topic" -K = -X acks=all ||
  fail "kcat could not produce to $topic"
got=$(timeout 60 kcat -C -q -b "127.0.0.1:$kp" -t "$topic" -o beginning -c 1 -e -f '%k=%s\n') ||
  fail "kcat could not consume from $topic"
[ "$got" = "$want" ] || fail "consumed '$got', produced '$want'"
ok "kcat produced and consumed one keyed message on $topic"

kafka stop || fail "kafka stop"
pid_gone=1
kill -0 "$pid1" 2>/dev/null && pid_gone=0
[ "$pid_gone" = 1 ] || fail "broker pid $pid1 still alive after stop"
[ "$(status_rc kafka)" = 3 ] || fail "kafka status after stop should say not running (3)"
kafka stop || fail "kafka stop on a stopped broker should succeed"
if timeout 5 kcat -L -b "127.0.0.1:$kp" -m 2 >/dev/null 2>&1; then fail "port $kp still answers after stop"; fi
ok "kafka stop is idempotent and status reports it down"

# -------------------------------------------------------- Elasticsearch
url=http://127.0.0.1:$ep
jq_py() { # python-expression-over-d <json-on-stdin
  python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
req() { # method path [body]
  curl -sS -m 30 -X "$1" -H 'Content-Type: application/json' "$url$2" ${3:+--data-binary "$3"}
}

[ "$(status_rc es)" = 3 ] || fail "elasticsearch status before start should say not running (3)"
t0=$SECONDS
es start || fail "elasticsearch start"
ok "elasticsearch started on $ep in $((SECONDS - t0))s (includes the download on a cold cache)"
[ "$(status_rc es)" = 0 ] || fail "elasticsearch status after start should be 0"
epid1=$(pidof_state "$edir/run/es.pid")
t0=$SECONDS
es start || fail "second elasticsearch start"
[ "$(pidof_state "$edir/run/es.pid")" = "$epid1" ] || fail "second start replaced the node"
((SECONDS - t0 <= 5)) || fail "second start took $((SECONDS - t0))s, should be a no-op"
ok "elasticsearch start on a running node is a no-op"

idx=ot_svc_test
# One replica cannot be placed on a single node (yellow); none keeps it green.
r=$(req PUT "/$idx" '{"settings":{"number_of_shards":1,"number_of_replicas":0},
  "mappings":{"properties":{"orderId":{"type":"keyword"},"status":{"type":"keyword"},
  "timestamp":{"type":"date"},"totalCents":{"type":"long"},
  "items":{"type":"nested","properties":{"sku":{"type":"keyword"},"qty":{"type":"integer"}}}}}}')
[ "$(echo "$r" | jq_py 'd.get("acknowledged")')" = True ] || fail "create index: $r"
r=$(req GET "/$idx/_mapping")
[ "$(echo "$r" | jq_py "d['$idx']['mappings']['properties']['items']['type']")" = nested ] || fail "mapping: $r"

oid=ord-$RANDOM$RANDOM
r=$(req PUT "/$idx/_doc/$oid?refresh=true" "{\"orderId\":\"$oid\",\"status\":\"CREATED\",
  \"timestamp\":\"2026-01-02T03:04:05Z\",\"totalCents\":1250,
  \"items\":[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":2}]}")
[ "$(echo "$r" | jq_py 'd.get("result")')" = created ] || fail "index document: $r"

r=$(req POST "/$idx/_search" "{\"query\":{\"term\":{\"orderId\":\"$oid\"}}}")
[ "$(echo "$r" | jq_py 'd["hits"]["total"]["value"]')" = 1 ] || fail "term query: $r"
[ "$(echo "$r" | jq_py 'd["hits"]["hits"][0]["_source"]["orderId"]')" = "$oid" ] || fail "term query source: $r"
[ "$(echo "$r" | jq_py 'd["hits"]["hits"][0]["_source"]["items"][1]["qty"]')" = 2 ] || fail "term query items: $r"
ok "a term query returns the indexed document"

# nested keeps each item whole: sku A with qty 2 matches no single item (a
# plain object mapping would flatten the items and match).
nq() { # sku qty -> hit count
  req POST "/$idx/_search" "{\"query\":{\"nested\":{\"path\":\"items\",\"query\":{\"bool\":{\"filter\":[
    {\"term\":{\"items.sku\":\"$1\"}},{\"term\":{\"items.qty\":$2}}]}}}}}" | jq_py 'd["hits"]["total"]["value"]'
}
[ "$(nq B 2)" = 1 ] || fail "nested query for item B x2 should match"
[ "$(nq A 2)" = 0 ] || fail "nested query for item A x2 should not match (items flattened?)"
ok "nested queries match within one item only"

es stop || fail "elasticsearch stop"
kill -0 "$epid1" 2>/dev/null && fail "node pid $epid1 still alive after stop"
[ "$(status_rc es)" = 3 ] || fail "elasticsearch status after stop should say not running (3)"
es stop || fail "elasticsearch stop on a stopped node should succeed"
if curl -s -m 3 "$url/_cluster/health" >/dev/null 2>&1; then fail "port $ep still answers after stop"; fi
ok "elasticsearch stop is idempotent and status reports it down"

echo "test-services: all checks passed"
