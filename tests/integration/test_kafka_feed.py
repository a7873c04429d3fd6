"""The push path fed from Kafka (app/kafka_feed.c) against the real broker of
test_kafka.py: a worker that does not hold the relay closes its LISTEN
connection and learns of other processes' commits from <prefix>order.events;
a duplicate or an unsealed message published by hand (kcat) never reaches a
dashboard twice or at all; with the broker stopped pushes go on from the
PostgreSQL tail and /readyz stays 200."""

import collections
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import make_token, mk_user, request, scaled
from test_events import create, pushes_until
from test_kafka import BROKER, ITEMS, NO_LIMITS, broker, check_history, rows, wait_published, consume, gauge, headers, kafka_env, kafka_sh, metrics_text, prefix, relay_active  # noqa: F401 (fixtures)
from wsclient import WS


def counter(port, name):
    return gauge(port, name)


def lag_series(port):
    """{(group, partition): lag} of ordertrack_kafka_consumer_lag."""
    out = {}
    for line in metrics_text(port).splitlines():
        m = re.match(r'ordertrack_kafka_consumer_lag\{worker="\d+",group="([^"]*)",partition="(\d+)"\} (\S+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def two_servers(server, prefix):
    """A holds the relay (it starts first), B only consumes; B's feed is up
    and its LISTEN closed."""
    env = kafka_env(prefix)
    a = server(workers=1, args=NO_LIMITS, env=env)
    deadline = time.monotonic() + scaled(15)
    while relay_active(a.port) != 1:
        assert time.monotonic() < deadline, "A never took the relay"
        time.sleep(0.2)
    # The dashboard of B does not read while the broker restarts (up to a
    # minute under ASan): no keep-alive ping may cut it meanwhile.
    b = server(workers=1, args=NO_LIMITS + ["--ws-ping-ms", "600000"], env=env)
    deadline = time.monotonic() + scaled(30)
    while not (gauge(b.port, "ordertrack_kafka_feed_up") == 1 and gauge(b.port, "ordertrack_events_listening") == 0):
        assert time.monotonic() < deadline, "B's feed never came up (or LISTEN stayed open)\n" + b.log_tail()
        time.sleep(0.3)
    assert relay_active(b.port) == 0
    return a, b


@pytest.fixture
def pair(server, db, prefix):
    """(a, b, dash, user): the two servers, an admin dashboard on B, and one
    event seen end to end (the relay's topics exist, B's group is reading)."""
    a, b = two_servers(server, prefix)
    u = mk_user(db)
    dash = WS.connect(b.port, make_token(mk_user(db, "ADMIN"), "ADMIN"))
    try:
        with db.cursor() as cur:
            oid, _ = create(cur, u)
        pushes_until(dash, oid, scaled(20))
        yield a, b, dash, u
    finally:
        dash.shutdown()


def test_pushes_come_through_kafka_to_a_worker_without_listen(db, prefix, pair):
    a, b, dash, u = pair
    fresh0 = counter(b.port, "ordertrack_kafka_feed_fresh_total")
    lat = []
    n = 10
    for _ in range(n):
        t0 = time.monotonic()
        with db.cursor() as cur:  # a commit of no server: only the relay's tail and Kafka carry it
            oid, _ = create(cur, u)
        pushes_until(dash, oid, scaled(5))
        lat.append(time.monotonic() - t0)
        time.sleep(0.05)
    fresh = counter(b.port, "ordertrack_kafka_feed_fresh_total") - fresh0
    # B's only other source is its 1 s idle tail: most events must have
    # come from Kafka first, and fast.
    assert fresh >= n - 2, (fresh, lat)
    assert sorted(lat)[n // 2] < scaled(0.5), lat
    assert gauge(b.port, "ordertrack_events_listening") == 0
    assert gauge(a.port, "ordertrack_events_listening") == 1, "the relay holder keeps LISTEN"
    st, _, body = request(b.port, "GET", "/readyz")
    assert st == 200 and body["kafka-feed"] == "up", body
    # Consumer lag from librdkafka's statistics, per group and partition:
    # every partition B read from has a series (one without a committed
    # offset has no known lag), and once its offsets are committed (only after
    # the hub had the events) nothing is left behind.
    used = sorted({str(m["partition"]) for m in consume(prefix + "order.events")})
    assert used
    deadline = time.monotonic() + scaled(10)
    while True:
        lag = lag_series(b.port)
        groups = {g for g, _ in lag}
        if len(groups) == 1 and set(used) <= {p for _, p in lag} and not any(lag.values()):
            break
        assert time.monotonic() < deadline, lag
        time.sleep(0.3)
    (group,) = groups
    assert group.startswith(prefix + "ordertrack-ws-"), group
    assert all(g != group for g, _ in lag_series(a.port)), "every process has a group of its own"


def test_a_duplicate_or_unsealed_message_published_by_hand_is_not_pushed(db, prefix, pair):
    a, b, dash, u = pair
    with db.cursor() as cur:
        dup_oid, _ = create(cur, u)
    pushes_until(dash, dup_oid, scaled(5))
    msgs = [m for m in consume(prefix + "order.events") if json.loads(m["payload"])["orderId"] == dup_oid]
    assert len(msgs) == 1, msgs
    m = msgs[0]
    h = headers(m)
    assert len(h.get("seal", "")) == 64, h
    dups0 = counter(b.port, "ordertrack_kafka_feed_duplicates_total")
    rej0 = counter(b.port, "ordertrack_kafka_feed_rejected_total")
    topic = prefix + "order.events"

    def produce(key, payload, hdrs):
        cmd = ["kcat", "-P", "-b", BROKER, "-t", topic, "-p", str(m["partition"]), "-K", "\t"]
        for k, v in hdrs.items():
            cmd += ["-H", "%s=%s" % (k, v)]
        subprocess.run(cmd, input="%s\t%s\n" % (key, payload), text=True, check=True, timeout=20)

    # The genuine message again (same seal, same eventId), twice.
    produce(m["key"], m["payload"], h)
    produce(m["key"], m["payload"], h)
    # A forgery: a later seq no row has yet, without a valid seal.
    forged = json.loads(m["payload"])
    forged.update(seq=forged["seq"] + 1000000, eventId="00000000-0000-4000-8000-000000000001")
    produce(m["key"], json.dumps(forged), dict(h, seal="0" * 64))
    produce(m["key"], json.dumps(forged), {"eventId": forged["eventId"], "type": forged["type"]})
    deadline = time.monotonic() + scaled(10)
    while (counter(b.port, "ordertrack_kafka_feed_duplicates_total") - dups0 < 2 or
           counter(b.port, "ordertrack_kafka_feed_rejected_total") - rej0 < 2):
        assert time.monotonic() < deadline, "B did not consume the hand-made messages"
        time.sleep(0.2)
    # The next push is the next genuine write: nothing of the above came through.
    with db.cursor() as cur:
        nxt, _ = create(cur, u)
    got = pushes_until(dash, nxt, scaled(5))
    assert [g["orderId"] for g in got] == [nxt], [(g["seq"], g["orderId"]) for g in got]
    assert counter(b.port, "ordertrack_kafka_feed_rejected_total") - rej0 == 2


def test_broker_stopped_pushes_continue_from_postgresql_and_kafka_resumes(db, prefix, pair):
    a, b, dash, u = pair
    kafka_sh("stop")
    try:
        deadline = time.monotonic() + scaled(20)
        while gauge(b.port, "ordertrack_events_listening") != 1:
            assert time.monotonic() < deadline, "B never fell back to LISTEN\n" + b.log_tail()
            time.sleep(0.2)
        assert gauge(b.port, "ordertrack_kafka_feed_up") == 0
        st, _, body = request(b.port, "GET", "/readyz")
        assert st == 200 and body["kafka-feed"] == "down", (st, body)
        lat = []
        for _ in range(5):  # writes through A's API: no 5xx, and B pushes them live
            t0 = time.monotonic()
            st, _, o = request(a.port, "POST", "/orders", {"items": [{"productId": "sku-1", "qty": 1}]},
                               token=make_token(u))
            assert st == 201, (st, o)
            pushes_until(dash, o["id"], scaled(5))
            lat.append(time.monotonic() - t0)
        # LISTEN, not the 1 s idle tail.
        assert sorted(lat)[2] < scaled(0.5), lat
    finally:
        kafka_sh("start")
    deadline = time.monotonic() + scaled(60)
    while not (gauge(b.port, "ordertrack_kafka_feed_up") == 1 and gauge(b.port, "ordertrack_events_listening") == 0):
        assert time.monotonic() < deadline, "B's feed did not come back\n" + b.log_tail()
        time.sleep(0.3)
    # Kafka carries pushes again once the relay's producer is back too
    # (its reconnect backoff is its own): every event arrives meanwhile.
    fresh0 = counter(b.port, "ordertrack_kafka_feed_fresh_total")
    deadline = time.monotonic() + scaled(30)
    while counter(b.port, "ordertrack_kafka_feed_fresh_total") == fresh0:
        assert time.monotonic() < deadline, "no push through Kafka after the broker returned"
        with db.cursor() as cur:
            oid, _ = create(cur, u)
        pushes_until(dash, oid, scaled(5))
        time.sleep(0.2)


# The outage: a minute. OT_KAFKA_OUTAGE_S shortens it for a local run.
OUTAGE_S = float(os.environ.get("OT_KAFKA_OUTAGE_S", "60"))


def test_broker_stopped_a_minute_under_load_no_5xx_pushes_go_on_nothing_lost_the_backlog_drains(db, prefix, pair):
    """Writes keep coming through A (the relay's holder) while the broker is
    down for OUTAGE_S: every write answers 2xx, B's dashboard keeps getting
    every event (from the PostgreSQL tail), each exactly once, and once the
    broker is back the outbox drains into Kafka complete and in order."""
    a, b, dash, u = pair
    tok, admin = make_token(u), make_token(mk_user(db, "ADMIN"), "ADMIN")
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        start_seq = cur.fetchone()[0]  # the fixture's event was read by the fixture
    statuses = collections.Counter()
    stop_writing, stop_reading = threading.Event(), threading.Event()
    pushed = collections.Counter()
    pushed_at = []

    def writer():
        while not stop_writing.is_set():
            st, _, o = request(a.port, "POST", "/orders", {"items": ITEMS}, token=tok, timeout=10)
            statuses[st] += 1
            if st == 201:
                st, _, _ = request(a.port, "PATCH", "/orders/%s/status" % o["id"], {"status": "ACCEPTED"},
                                   token=admin, timeout=10)
                statuses[st] += 1
            time.sleep(0.05)

    def reader():
        while not stop_reading.is_set():
            try:
                m = dash.recv_msg(1.0)
            except socket.timeout:
                continue
            if m.get("event") == "order.updated":
                pushed[m["data"]["eventId"]] += 1
                pushed_at.append(time.monotonic())

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        kafka_sh("stop")
        down_at = time.monotonic()
        try:
            time.sleep(OUTAGE_S / 2)
            st, _, body = request(b.port, "GET", "/readyz")
            assert st == 200 and body["kafka-feed"] == "down", (st, body)
            assert gauge(a.port, "ordertrack_relay_backlog_events") > 0
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        finally:
            kafka_sh("start")
            up_at = time.monotonic()
        time.sleep(3)
    finally:
        stop_writing.set()
        threads[0].join(30)
    want = {r[1] for r in rows(db) if r[0] > start_seq}
    deadline = time.monotonic() + scaled(60)
    while set(pushed) != want and time.monotonic() < deadline:
        time.sleep(0.2)
    stop_reading.set()
    threads[1].join(10)
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses[201] > 5 * OUTAGE_S, statuses  # the load went on (~10 orders/s)
    assert set(pushed) == want, "%d of %d events pushed" % (len(set(pushed) & want), len(want))
    assert max(pushed.values()) == 1, "an event pushed twice"
    # Pushes kept arriving through the outage, not only after it.
    during = [t for t in pushed_at if down_at + 5 < t < up_at]
    assert len(during) > 2 * OUTAGE_S, len(during)
    msgs = wait_published(db, prefix, timeout=180)
    check_history(db, msgs, exactly_once=False)
    deadline = time.monotonic() + scaled(30)
    while gauge(a.port, "ordertrack_relay_backlog_events") > 0:
        assert time.monotonic() < deadline, "the backlog did not drain"
        time.sleep(0.5)
