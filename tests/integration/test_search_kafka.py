"""The search indexer in Kafka mode (src/app/search_feed.c): with KAFKA_BROKERS
and ELASTICSEARCH_URL it reads <prefix>order.events as consumer group
<prefix>ordertrack-search, against the real broker and the real node of
test_kafka.py and test_search_indexer.py (same ports and fixtures). What the
group has committed is read with the broker's own tool (scripts/kafka.sh
offsets), not through the client under test."""

import os
import subprocess
import time
import uuid

import pytest

from conftest import ROOT, make_token, mk_user, request, scaled
from test_ws_scale import api_create
from test_kafka import KAFKA_CONTROLLER_PORT, KAFKA_DIR, KAFKA_PORT, broker, kafka_env  # noqa: F401 (fixture)
from test_search_indexer import (ES_PORT, NO_LIMITS, Proxy, es, es_env, es_node,  # noqa: F401 (fixture)
                                 events_since, expect_in_step, gauge, set_cursor, wait_cursor, wait_for, workload)


def committed(group):
    """{partition: committed offset} of group on the broker."""
    env = dict(os.environ, KAFKA_PORT=str(KAFKA_PORT), KAFKA_CONTROLLER_PORT=str(KAFKA_CONTROLLER_PORT),
               OT_KAFKA_DIR=KAFKA_DIR)
    r = subprocess.run([os.path.join(ROOT, "scripts", "kafka.sh"), "offsets", group], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        topic, part, off = line.split()
        out[int(part)] = int(off)
    return out


FLOOR = [0]


@pytest.fixture
def pfx(es_node, broker, db):
    """(index prefix, topic prefix); the relay's and the indexer's cursors at
    the end of the outbox, so earlier tests' events are neither published to
    these topics nor indexed here."""
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        FLOOR[0] = cur.fetchone()[0]
        cur.execute("INSERT INTO ot_sink_cursors (name, seq) VALUES ('kafka-relay', %s) "
                    "ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq", (FLOOR[0],))
    set_cursor(db, FLOOR[0])
    p = "ot-k%s" % uuid.uuid4().hex[:10]
    yield p, "t%s." % uuid.uuid4().hex[:10]
    es("DELETE", "/%s-events-000001" % p)
    es("DELETE", "/%s-orders-000001" % p)
    for t in ("", "-orders"):  # the events and the orders templates
        es("DELETE", "/_index_template/%s%s" % (p, t))


def env_for(pfx, url=None, **extra):
    e = kafka_env(pfx[1])
    e.update(es_env(pfx[0], **({"url": url} if url else {})))
    e.update({k: str(v) for k, v in extra.items()})
    return e


def feed_up(srv, db):
    """Until the consumer is in its group and one event came through Kafka
    (a new topic's first messages wait for its leaders: meanwhile the
    indexer may read PostgreSQL); returns (consumed, filled) then."""
    wait_for("the search consumer in its group", lambda: gauge(srv.port, "ordertrack_search_feed_up") == 1, 40)
    user = mk_user(db)
    api_create(srv.port, make_token(user))
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0], timeout=30)
    wait_for("the first event through Kafka",
             lambda: gauge(srv.port, "ordertrack_search_feed_consumed_total") >= len(rows), 30)
    return (gauge(srv.port, "ordertrack_search_feed_consumed_total"),
            gauge(srv.port, "ordertrack_search_feed_filled_total"))


def test_in_kafka_mode_the_indexer_reads_group_ordertrack_search_and_commits_only_what_is_indexed(server, db, pfx):
    srv = server(workers=2, args=NO_LIMITS, env=env_for(pfx))
    consumed, filled = feed_up(srv, db)
    workload(srv.port, db, n=4)
    rows = events_since(db, FLOOR[0])
    assert len(rows) == 13
    wait_cursor(db, rows[-1][0])
    expect_in_step(db, pfx[0], FLOOR[0])
    # Kafka brought every event once, none was refused. (A partition more
    # than 100 ms behind another on a loaded machine has its gap read from
    # PostgreSQL meanwhile: rare, and work only.)
    assert gauge(srv.port, "ordertrack_search_feed_consumed_total") - consumed == 12
    assert gauge(srv.port, "ordertrack_search_feed_filled_total") - filled <= 2
    assert gauge(srv.port, "ordertrack_search_feed_rejected_total") == 0
    # Worker 0 runs the indexer; SO_REUSEPORT picks who answers.
    ready = wait_for("worker 0's /readyz", lambda: next((b for st, _, b in [request(srv.port, "GET", "/readyz")]
                                                          if st == 200 and "kafka-search" in b), None))
    assert ready["kafka-search"] == "up" and ready["elasticsearch"] == "up"
    # Committed: every message of the topic (offsets count from 0), within
    # the commit interval of the acknowledgement.
    group = pfx[1] + "ordertrack-search"
    wait_for("offsets committed", lambda: sum(committed(group).values()) == 13, 30)
    # The lag gauge follows on librdkafka's next statistics (every second,
    # slower under ASan): committed everything, every partition shows 0.
    def lag_lines():
        ls = [l for l in metrics_text_lines(srv.port)
              if l.startswith("ordertrack_kafka_consumer_lag{") and 'group="%s"' % group in l]
        return ls if ls and all(l.rsplit(" ", 1)[1] == "0" for l in ls) else None
    wait_for("the group's lag at 0 in /metrics", lag_lines, 15)


def metrics_text_lines(port):
    from test_kafka import metrics_text
    return metrics_text(port).splitlines()


def test_the_search_consumer_killed_mid_batch_resumes_from_its_committed_offsets(server, db, pfx):
    """Offsets move only behind the index: a member killed with a batch it
    could not index restarts from the last indexed message, and Kafka (not a
    PostgreSQL read) brings the rest again."""
    proxy = Proxy(ES_PORT)
    env = env_for(pfx, url="http://127.0.0.1:%d" % proxy.port, ORDERTRACK_ES_TIMEOUT_MS=1000)
    srv = server(workers=1, args=NO_LIMITS, env=env)
    consumed, _ = feed_up(srv, db)
    group = pfx[1] + "ordertrack-search"
    workload(srv.port, db, n=2)
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0])
    wait_for("7 offsets committed", lambda: sum(committed(group).values()) == 7, 30)
    proxy.down()  # the next batch cannot be indexed
    workload(srv.port, db, n=3)
    wait_for("the 9 new messages consumed",
             lambda: gauge(srv.port, "ordertrack_search_feed_consumed_total") - consumed == 15, 20)
    time.sleep(scaled(2.5))  # > the 1 s commit interval: nothing unindexed may be committed
    assert sum(committed(group).values()) == 7
    srv.kill()
    proxy.up()
    srv2 = server(workers=1, args=NO_LIMITS, env=env_for(pfx))
    rows = events_since(db, FLOOR[0])
    assert len(rows) == 16
    wait_cursor(db, rows[-1][0], timeout=40)
    expect_in_step(db, pfx[0], FLOOR[0])
    # The 9 came again from the committed offsets, not the first 7 (a gap
    # between partitions' first fetches may still be read from PostgreSQL
    # on a loaded machine: work, not a change of position).
    wait_for("the 9 through Kafka", lambda: gauge(srv2.port, "ordertrack_search_feed_consumed_total") >= 9, 20)
    assert gauge(srv2.port, "ordertrack_search_feed_consumed_total") == 9
    wait_for("16 offsets committed", lambda: sum(committed(group).values()) == 16, 30)
    proxy.down()


def test_an_order_the_relay_parked_is_indexed_from_postgresql_in_seq_order(server, db, pfx):
    """Kafka never carries a parked order's events (the relay parks what the
    broker refuses: here larger than --kafka-max-message-bytes); the gap it
    leaves in the stream is read from PostgreSQL, so the index still gets
    every seq and freshness covers them."""
    from test_kafka import big_order
    srv = server(workers=1, args=NO_LIMITS, env=env_for(pfx, ORDERTRACK_KAFKA_MAX_MESSAGE_BYTES=2000))
    consumed, filled = feed_up(srv, db)
    big, _ = big_order(srv, db, workload_before=2)
    workload(srv.port, db, n=1)  # after it, through Kafka
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0], timeout=30)
    expect_in_step(db, pfx[0], FLOOR[0])
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM relay_parked WHERE order_id = %s", (big["id"],))
        assert cur.fetchone()[0] == 2
        # The relay tests count every parked row of the shared database.
        cur.execute("DELETE FROM relay_parked WHERE order_id = %s", (big["id"],))
    # At least the two parked events came from PostgreSQL (a fill reads a
    # page: later events Kafka brings too may come with it, as duplicates).
    assert gauge(srv.port, "ordertrack_search_feed_filled_total") - filled >= 2
    assert gauge(srv.port, "ordertrack_search_feed_consumed_total") - consumed == len(rows) - 1 - 2


def test_the_gap_wait_before_postgresql_is_read_is_the_flag(server, db, pfx):
    """--kafka-search-gap-ms: a seq Kafka does not bring (a parked order's)
    is read from PostgreSQL only once that wait is over, not at the 100 ms
    default (the stall bound, set far off, does not read it either)."""
    from test_kafka import big_order
    srv = server(workers=1, args=NO_LIMITS, env=env_for(pfx, ORDERTRACK_KAFKA_MAX_MESSAGE_BYTES=2000,
                                                        ORDERTRACK_KAFKA_SEARCH_GAP_MS=2500,
                                                        ORDERTRACK_KAFKA_SEARCH_STALL_SECONDS=600))
    consumed, filled = feed_up(srv, db)
    big_order(srv, db, workload_before=0)
    workload(srv.port, db, n=1)  # behind the parked two: the gap shows
    wait_for("the event after the gap", lambda: gauge(srv.port, "ordertrack_search_feed_consumed_total") > consumed, 20)
    time.sleep(1.0)  # well inside the 2.5 s, which began before the event was counted
    assert gauge(srv.port, "ordertrack_search_feed_filled_total") == filled
    wait_for("the parked two from PostgreSQL",
             lambda: gauge(srv.port, "ordertrack_search_feed_filled_total") - filled >= 2, 15)
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0], timeout=30)
    expect_in_step(db, pfx[0], FLOOR[0])
    with db.cursor() as cur:
        cur.execute("DELETE FROM relay_parked WHERE order_id IN (SELECT order_id FROM order_events WHERE seq > %s)",
                    (FLOOR[0],))


def test_a_full_indexer_pauses_the_partitions_and_resumes_where_it_stopped(server, db, pfx):
    """With Elasticsearch away and batches of 2, the indexer fills at once:
    the consumer pauses its partitions (librdkafka drops its prefetch) and,
    once there is room, fetches again from the next message: every event
    indexed in order, none consumed twice."""
    proxy = Proxy(ES_PORT)
    env = env_for(pfx, url="http://127.0.0.1:%d" % proxy.port, ORDERTRACK_ES_TIMEOUT_MS=1000,
                  ORDERTRACK_ES_BULK_MAX_EVENTS=2)
    srv = server(workers=1, args=NO_LIMITS, env=env)
    consumed, filled = feed_up(srv, db)
    proxy.down()
    workload(srv.port, db, n=10)
    wait_for("a pause", lambda: gauge(srv.port, "ordertrack_search_feed_pauses_total") >= 1, 20)
    proxy.up()
    rows = events_since(db, FLOOR[0])
    assert len(rows) == 31
    wait_cursor(db, rows[-1][0], timeout=60)
    expect_in_step(db, pfx[0], FLOOR[0])
    # Resumed, the consumer gets every message again from where it paused
    # (librdkafka's prefetch was dropped, not skipped).
    # Exactly once each: a resume that fetched from an older offset would
    # count more. (A gap the first fetch after a resume is slow to fill,
    # over 500 ms, is read from PostgreSQL: work, not a duplicate of Kafka.)
    wait_for("every message after the resume",
             lambda: gauge(srv.port, "ordertrack_search_feed_consumed_total") - consumed >= 30, 30)
    assert gauge(srv.port, "ordertrack_search_feed_consumed_total") - consumed == 30
    assert gauge(srv.port, "ordertrack_search_feed_rejected_total") == 0
    proxy.down()
