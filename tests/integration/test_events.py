"""The event reader's delivery promises seen from WebSocket clients: a worker
that starts while a write is in flight still delivers that write once it
commits (issue 10, finding 4); events that reach the reader by Redis pub/sub
or NOTIFY are believed only when they are authentic."""

import json
import socket
import time

import psycopg2

from conftest import make_token, mk_user, scaled
from wsclient import WS

ITEMS = '[{"productId":"sku-ev","qty":1}]'
CREATE = "SELECT order_json, event_json FROM ot_create_order(%s::uuid, %s::jsonb, NULL, NULL)"


def create(cur, user):
    cur.execute(CREATE, (user, ITEMS))
    o, e = cur.fetchone()
    return json.loads(o)["id"], json.loads(e)["seq"]


def pushes_until(ws, oid, timeout):
    """Every pushed event until (and including) the one of order `oid`."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv_msg(max(0.0, deadline - time.monotonic()))
        if m.get("event") == "order.updated":
            got.append(m["data"])
            if m["data"]["orderId"] == oid:
                return got


def test_worker_started_during_an_uncommitted_write_delivers_it_when_it_commits(server, db, db_url):
    admin, a = mk_user(db, "ADMIN"), mk_user(db)
    tadmin = make_token(admin, "ADMIN")
    slow = psycopg2.connect(db_url)  # not autocommit: the write stays in flight
    try:
        with slow.cursor() as cur:
            inflight, s = create(cur, a)          # seq s taken, not committed
        with db.cursor() as cur:
            later, s1 = create(cur, a)            # s + 1 committed: max(seq) is above s
        assert s1 > s
        srv = server(workers=1)
        live = WS.connect(srv.port, tadmin)
        resumer = WS.connect(srv.port, tadmin)
        # A resume before the commit: whatever it replays, `s` must still come.
        resumer.send_json({"action": "resume", "since": s - 1})
        ack, _ = resumer.wait_for(lambda m: m.get("event") == "resumed", timeout=scaled(10))
        time.sleep(scaled(0.5))  # the reader has found its start and tailed at least once
        slow.commit()
        with db.cursor() as cur:
            probe, s2 = create(cur, a)
        for ws in (live, resumer):
            got = pushes_until(ws, probe, scaled(10))
            seqs = [g["seq"] for g in got]
            assert seqs == sorted(set(seqs)), seqs
            assert inflight in [g["orderId"] for g in got], \
                "the write in flight at start was lost: %r (s=%d)" % (seqs, s)
        resumer.shutdown()
        live.shutdown()
    finally:
        slow.close()
