"""The search indexer (src/app/indexer.c) against a real Elasticsearch
(scripts/elasticsearch.sh starts one node once per session, ~30 s; the first
run downloads it). Its HTTP port is OT_ES_PORT (default 9200; transport the
port + 100), its state OT_ES_DIR (default: a directory of its own under /tmp).

Each test gets its own index prefix, and the indexer's cursor (sink "search")
is moved to the end of the outbox first, so earlier tests' events are not
its business. An Elasticsearch outage is a TCP proxy in this process that
stops forwarding: the real node, unreachable, without a 30 s restart."""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import ROOT, make_token, mk_user, request, scaled
from test_kafka import gauge, metrics_text
from test_ws_scale import NO_LIMITS, api_create, api_patch

ES_PORT = int(os.environ.get("OT_ES_PORT", "9200"))
ES_DIR = os.environ.get("OT_ES_DIR", "/tmp/ot-es-test-%d" % ES_PORT)
ES = "http://127.0.0.1:%d" % ES_PORT


def es_sh(cmd, check=True):
    env = dict(os.environ, ES_PORT=str(ES_PORT), ES_TRANSPORT_PORT=str(ES_PORT + 100), OT_ES_DIR=ES_DIR)
    r = subprocess.run([os.path.join(ROOT, "scripts", "elasticsearch.sh"), cmd], env=env, capture_output=True,
                       text=True, timeout=600)
    if check:
        assert r.returncode == 0, "scripts/elasticsearch.sh %s failed:\n%s%s" % (cmd, r.stdout, r.stderr)
    return r.returncode


@pytest.fixture(scope="session")
def es_node():
    """Started once per session; stopped at the end unless it ran before."""
    was_up = es_sh("status", check=False) == 0
    es_sh("start")
    yield ES
    if not was_up:
        es_sh("stop", check=False)


def es(method, path, body=None, ndjson=False):
    """(status, parsed body) of one request to the node."""
    data = None
    headers = {}
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
    req = urllib.request.Request(ES + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


FLOOR = [0]


def set_cursor(db, seq):
    with db.cursor() as cur:
        cur.execute("INSERT INTO ot_sink_cursors (name, seq) VALUES ('search', %s) "
                    "ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq", (seq,))


@pytest.fixture
def prefix(es_node, db):
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        FLOOR[0] = cur.fetchone()[0]
    set_cursor(db, FLOOR[0])
    p = "ot-t%s" % uuid.uuid4().hex[:10]
    yield p
    es("DELETE", "/%s-*" % p)
    for t in ("", "-orders"):  # the events and the orders templates
        es("DELETE", "/_index_template/%s%s" % (p, t))


def es_env(prefix, url=ES, **extra):
    env = {"ELASTICSEARCH_URL": url, "ORDERTRACK_ES_INDEX_PREFIX": prefix, "ORDERTRACK_ES_BULK_FLUSH_MS": "50"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def events_since(db, floor):
    with db.cursor() as cur:
        cur.execute("SELECT seq, event_id::text, order_id::text, version, status::text FROM order_events "
                    "WHERE seq > %s ORDER BY seq", (floor,))
        return cur.fetchall()


def wait_cursor(db, seq, timeout=20.0):
    """Until the indexer's stored cursor reaches seq (it moves only past what
    Elasticsearch holds or search_parked records)."""
    deadline = time.monotonic() + scaled(timeout)
    got = None
    while time.monotonic() < deadline:
        with db.cursor() as cur:
            cur.execute("SELECT seq FROM ot_sink_cursors WHERE name = 'search'")
            row = cur.fetchone()
            got = row and row[0]
        if got is not None and got >= seq:
            return
        time.sleep(0.05)
    pytest.fail("the search cursor is at %s, not %s" % (got, seq))


def orders_in_es(prefix, ids=None):
    """The order documents of the index (ids: only those; a reindexed index
    holds every order of the shared test database, more than one page)."""
    es("POST", "/%s-orders/_refresh" % prefix)
    q = {"size": 1000, "version": True}
    if ids is not None:
        q.update(size=len(ids), query={"ids": {"values": list(ids)}})
    st, body = es("POST", "/%s-orders/_search" % prefix, q)
    assert st == 200, body
    return {h["_id"]: (h["_version"], h["_source"]) for h in body["hits"]["hits"]}


def events_in_es(prefix):
    es("POST", "/%s-events/_refresh" % prefix)
    st, body = es("POST", "/%s-events/_search" % prefix, {"size": 1000})
    assert st == 200, body
    return {h["_id"]: h["_source"] for h in body["hits"]["hits"]}


def workload(port, db, n=3):
    """n orders by one customer, each taken through ACCEPTED and PREPARED by an admin."""
    user, admin = mk_user(db), mk_user(db, role="ADMIN")
    tok, atok = make_token(user), make_token(admin, role="ADMIN")
    ids = [api_create(port, tok)["id"] for _ in range(n)]
    for oid in ids:
        api_patch(port, atok, oid, "ACCEPTED")
        api_patch(port, atok, oid, "PREPARED")
    return ids


def expect_in_step(db, prefix, floor):
    """Elasticsearch holds every event since floor once, and each order's latest state."""
    rows = events_since(db, floor)
    evs = events_in_es(prefix)
    assert sorted(evs) == sorted(r[1] for r in rows)
    for seq, eid, oid, version, status in rows:
        assert evs[eid]["seq"] == seq and evs[eid]["orderId"] == oid and evs[eid]["version"] == version
    latest = {}
    for seq, eid, oid, version, status in rows:
        latest[oid] = (version, status)
    docs = orders_in_es(prefix)
    assert set(docs) == set(latest)
    with db.cursor() as cur:
        for oid, (version, status) in latest.items():
            cur.execute("SELECT ot_order_json(o)::json, ot_ts_us(o.created_at) FROM orders o WHERE id = %s", (oid,))
            order, created_us = cur.fetchone()
            es_version, src = docs[oid]
            assert es_version == version
            # The order document is GET /orders/:id's JSON plus the search fields.
            assert {k: src[k] for k in order} == order
            assert src["orderId"] == oid and src["createdUs"] == created_us
    return rows


# ---------------------------------------------------------------- tests

def test_events_and_latest_order_states_reach_elasticsearch_with_the_template_mapping(server, db, prefix):
    srv = server(workers=2, args=NO_LIMITS, env=es_env(prefix))
    workload(srv.port, db)
    rows = events_since(db, FLOOR[0])
    assert len(rows) == 9
    wait_cursor(db, rows[-1][0])
    expect_in_step(db, prefix, FLOOR[0])
    st, body = es("GET", "/%s-orders/_mapping" % prefix)
    assert st == 200
    props = next(iter(body.values()))["mappings"]["properties"]
    assert props["items"]["type"] == "nested" and props["items"]["properties"]["qty"]["type"] == "integer"
    for f in ("orderId", "userId", "status"):
        assert props[f]["type"] == "keyword"
    assert props["createdAt"]["type"] == "date" and props["updatedAt"]["type"] == "date"
    st, body = es("GET", "/_alias/%s-events" % prefix)
    assert st == 200 and list(body) == ["%s-events-000001" % prefix]
    assert body["%s-events-000001" % prefix]["aliases"]["%s-events" % prefix]["is_write_index"] is True
    st, _, ready = request(srv.port, "GET", "/readyz")
    assert st == 200
    assert gauge(srv.port, "ordertrack_search_indexed_events_total") == 9
    assert gauge(srv.port, "ordertrack_elasticsearch_up") == 1
    assert gauge(srv.port, "ordertrack_search_index_backlog_events") == 0
    # Each event's commit -> acknowledged time, once (these include the
    # index setup at start: no upper bound here, scripts/bench-search.sh
    # measures it).
    assert gauge(srv.port, "ordertrack_search_index_latency_seconds_count") == 9
    assert gauge(srv.port, "ordertrack_search_index_latency_seconds_sum") > 0


def test_many_small_batches_catch_up_in_order_with_the_next_lookup_prefetched(server, db, prefix):
    """Two events per _bulk, the outbox replayed from the floor: the next
    batch is full (and looked up) while the current one is in flight."""
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix))
    workload(srv.port, db, n=6)
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    srv.stop()
    # Empty indices and the cursor back at the floor: all 18 events again.
    es("DELETE", "/%s-*" % prefix)
    set_cursor(db, FLOOR[0])
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix, ORDERTRACK_ES_BULK_MAX_EVENTS=2))
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0])
    expect_in_step(db, prefix, FLOOR[0])
    assert gauge(srv.port, "ordertrack_search_bulk_requests_total") >= len(rows) // 2


def test_replayed_duplicate_and_older_deliveries_leave_the_latest_state(server, db, prefix):
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix))
    workload(srv.port, db)
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0])
    srv.stop()
    # A newer state than any event says, already in the index (as if a later
    # event had arrived first): older versions must not overwrite it.
    ahead = rows[0][2]
    st, body = es("PUT", "/%s-orders/_doc/%s?version=50&version_type=external&refresh=true" % (prefix, ahead),
                  {"id": ahead, "status": "SHIPPED"})
    assert st in (200, 201), body
    # Replay everything: every event again, the oldest versions after the newest.
    set_cursor(db, FLOOR[0])
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix))
    wait_cursor(db, rows[-1][0])
    assert gauge(srv.port, "ordertrack_search_version_conflicts_total") == 2 * len(rows)
    assert gauge(srv.port, "ordertrack_search_parked_documents_total") == 0
    evs = events_in_es(prefix)
    assert len(evs) == len(rows)
    docs = orders_in_es(prefix)
    assert docs[ahead][0] == 50 and docs[ahead][1]["status"] == "SHIPPED"
    latest = {r[2]: r[3] for r in rows}
    for oid, version in latest.items():
        if oid != ahead:
            assert docs[oid][0] == version


def unindexable_event(db, user):
    """(order id, seq) of an event no mapping accepts (qty must be an
    integer), written past the API as a faulty writer would."""
    bad = str(uuid.uuid4())
    with db.cursor() as cur:
        cur.execute("INSERT INTO order_events (order_id, version, user_id, type, status, payload) "
                    "VALUES (%s, 1, %s, 'order.created', 'CREATED', %s) RETURNING seq",
                    (bad, user, json.dumps({"items": [{"productId": "x", "qty": "lots"}]})))
        return bad, cur.fetchone()[0]


def test_a_document_the_mapping_refuses_is_parked_alone_and_the_rest_goes_on(server, db, prefix):
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix))
    user = mk_user(db)
    tok = make_token(user)
    first = api_create(srv.port, tok)["id"]
    bad, bad_seq = unindexable_event(db, user)
    second = api_create(srv.port, tok)["id"]
    rows = events_since(db, FLOOR[0])
    assert [r[0] for r in rows].index(bad_seq) == 1
    wait_cursor(db, rows[-1][0])
    with db.cursor() as cur:
        cur.execute("SELECT kind, order_id::text, reason FROM search_parked WHERE seq = %s ORDER BY kind", (bad_seq,))
        parked = cur.fetchall()
    assert [(k, o) for k, o, _ in parked] == [("events", bad), ("orders", bad)]
    assert all("lots" in r or "parse" in r for _, _, r in parked), parked
    assert gauge(srv.port, "ordertrack_search_parked_documents_total") == 2
    docs = orders_in_es(prefix)
    assert set(docs) == {first, second}
    assert len(events_in_es(prefix)) == 2
    assert "refuses the events document of seq %d" % bad_seq in srv.log_text()


def parked_rows(db, seq):
    with db.cursor() as cur:
        cur.execute("SELECT kind FROM search_parked WHERE seq = %s ORDER BY kind", (seq,))
        return [r[0] for r in cur.fetchall()]


def test_parked_documents_are_listed_and_retried_once_the_cause_is_fixed_a_refusal_keeps_its_rows(
        server, db, db_url, prefix):
    from conftest import run_cli

    def cli(*args):
        return run_cli("search", *args, "--database-url", db_url, "--elasticsearch-url", ES, "--es-index-prefix",
                       prefix, timeout=60)
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix))
    user = mk_user(db)
    tok = make_token(user)
    good = api_create(srv.port, tok)["id"]
    bad, bad_seq = unindexable_event(db, user)
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    assert parked_rows(db, bad_seq) == ["events", "orders"]

    p = cli("parked", "--order", bad)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [(x["seq"], x["kind"], x["orderId"]) for x in lines] == [(bad_seq, "events", bad), (bad_seq, "orders", bad)]
    assert all("lots" in x["reason"] or "parse" in x["reason"] for x in lines), lines
    assert all(x["parkedAt"].endswith("Z") and x["parkedAt"][:4].isdigit() for x in lines), lines
    p = cli("parked")
    assert p.returncode == 0 and sum(json.loads(x)["seq"] == bad_seq for x in p.stdout.splitlines()) == 2
    assert cli("parked", "--order", good).stdout == ""

    # The cause is still there: refused again, both rows kept, exit 1.
    p = cli("retry", "--order", bad)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert json.loads(p.stdout) == {"retried": 2, "indexed": 0, "newer": 0, "refused": 2, "parked": 2}
    assert p.stderr.count("refused again: 400") == 2 and "lots" in p.stderr, p.stderr
    assert parked_rows(db, bad_seq) == ["events", "orders"]

    # Fixed: both indices now take a malformed qty (and leave it unindexed).
    qty = {"type": "integer", "ignore_malformed": True}
    for kind, path in (("events", "payload"), ("orders", None)):
        items = {"items": {"type": "nested", "properties": {"qty": qty}}}
        props = {path: {"properties": items}} if path else items
        st, body = es("PUT", "/%s-%s/_mapping" % (prefix, kind), {"properties": props})
        assert st == 200, body
    p = cli("retry", "--seq", bad_seq)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert json.loads(p.stdout) == {"retried": 2, "indexed": 2, "newer": 0, "refused": 0, "parked": 0}
    assert parked_rows(db, bad_seq) == []
    with db.cursor() as cur:
        cur.execute("SELECT event_id::text FROM order_events WHERE seq = %s", (bad_seq,))
        eid = cur.fetchone()[0]
    ev = events_in_es(prefix)[eid]
    assert ev["seq"] == bad_seq and ev["orderId"] == bad and ev["payload"]["items"][0]["qty"] == "lots"
    version, doc = orders_in_es(prefix, [bad])[bad]
    assert version == 1 and doc["status"] == "CREATED" and doc["seq"] == bad_seq and doc["createdAt"] is None

    # A parked order document older than what the index holds goes as a 409
    # ("newer"): its row is deleted and the newer state stays.
    admin = mk_user(db, role="ADMIN")
    api_patch(srv.port, make_token(admin, role="ADMIN"), good, "ACCEPTED")
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM order_events WHERE order_id = %s AND version = 1", (good,))
        first_seq = cur.fetchone()[0]
        cur.execute("INSERT INTO search_parked (seq, kind, order_id, reason) VALUES (%s, 'orders', %s, 'test')",
                    (first_seq, good))
    p = cli("retry", "--order", good)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert json.loads(p.stdout) == {"retried": 1, "indexed": 0, "newer": 1, "refused": 0, "parked": 0}
    version, doc = orders_in_es(prefix, [good])[good]
    assert version == 2 and doc["status"] == "ACCEPTED"

    # Done: nothing left to retry; a usage error is told apart (exit 2).
    p = cli("retry", "--order", bad)
    assert p.returncode == 1 and "nothing parked" in p.stderr
    assert cli("retry").returncode == 2
    assert cli("retry", "--order", bad, "--seq", bad_seq).returncode == 2
    assert cli("parked", "--order", "nope").returncode == 2


def test_a_parked_order_document_retried_during_a_reindex_goes_to_the_new_index_too(server, db, db_url, prefix):
    """While `search reindex` builds <p>-orders-next, the indexer writes
    order documents to both; `search retry` must as well, or the swap would
    drop the retried state."""
    from conftest import run_cli
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix))
    good = api_create(srv.port, make_token(mk_user(db)))["id"]
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    st, body = es("PUT", "/%s-orders-000002" % prefix, {"aliases": {"%s-orders-next" % prefix: {}}})
    assert st == 200, body
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM order_events WHERE order_id = %s AND version = 1", (good,))
        seq = cur.fetchone()[0]
        cur.execute("INSERT INTO search_parked (seq, kind, order_id, reason) VALUES (%s, 'orders', %s, 'test')",
                    (seq, good))
    p = run_cli("search", "retry", "--order", good, "--database-url", db_url, "--elasticsearch-url", ES,
                "--es-index-prefix", prefix, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    # The live index had it (409), the new one took it: indexed.
    assert json.loads(p.stdout) == {"retried": 1, "indexed": 1, "newer": 0, "refused": 0, "parked": 0}
    es("POST", "/%s-orders-000002/_refresh" % prefix)
    st, body = es("GET", "/%s-orders-000002/_doc/%s" % (prefix, good))
    assert st == 200 and body["_version"] == 1 and body["_source"]["orderId"] == good, body
    assert parked_rows(db, seq) == []


class Proxy:
    """127.0.0.1:port -> the node, until down(): then connections are refused
    (the listener closes) and open ones are cut."""

    def __init__(self, target_port, record=False):
        self.target = target_port
        self.sent = bytearray() if record else None  # client -> node bytes
        self.port = None
        self.lsock = None
        self.conns = []
        self.lock = threading.Lock()
        self.up()

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port or 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self):
        # shutdown first: a bare close does not wake the thread in accept(),
        # which would go on accepting.
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b, rec in ((c, u, self.sent), (u, c, None)):
                threading.Thread(target=self._pipe, args=(a, b, rec, self.lock), daemon=True).start()

    def bodies(self, path_part):
        """The bodies of the recorded requests whose request line has path_part."""
        with self.lock:
            data = bytes(self.sent)
        out, i = [], 0
        while True:
            end = data.find(b"\r\n\r\n", i)
            if end < 0:
                return out
            head = data[i:end].decode("latin-1")
            n = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    n = int(v)
            if path_part in head.split("\r\n", 1)[0]:
                out.append(data[end + 4:end + 4 + n])
            i = end + 4 + n

    @staticmethod
    def _pipe(a, b, rec=None, lock=None):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if rec is not None:
                    with lock:
                        rec.extend(d)
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_elasticsearch_away_backlog_grows_writes_go_on_then_everything_catches_up(server, db, prefix):
    proxy = Proxy(ES_PORT)
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix, url="http://127.0.0.1:%d" % proxy.port,
                                                       ORDERTRACK_ES_TIMEOUT_MS=1000))
    ids = workload(srv.port, db, n=1)
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0])
    proxy.down()
    away = time.monotonic()
    more = workload(srv.port, db, n=4)  # writes do not wait for the index
    rows = events_since(db, FLOOR[0])
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline and (gauge(srv.port, "ordertrack_search_index_backlog_events") < 12 or
                                           gauge(srv.port, "ordertrack_elasticsearch_up") == 1):
        time.sleep(0.1)
    assert gauge(srv.port, "ordertrack_search_index_backlog_events") == 12
    assert gauge(srv.port, "ordertrack_elasticsearch_up") == 0
    assert gauge(srv.port, "ordertrack_index_lag_seconds") > 0
    st, _, ready = request(srv.port, "GET", "/readyz")
    assert st == 200 and ready["elasticsearch"] == "down"  # degraded, still serving
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM ot_sink_cursors WHERE name = 'search'")
        assert cur.fetchone()[0] == rows[2][0]  # nothing acknowledged while away
    time.sleep(max(0.0, 1.2 - (time.monotonic() - away)))
    proxy.up()
    wait_cursor(db, rows[-1][0], timeout=30)
    expect_in_step(db, prefix, FLOOR[0])
    # The 12 events written while it was away waited over a second: the
    # latency histogram shows the outage as it was for search.
    assert gauge(srv.port, "ordertrack_search_index_latency_seconds_count") == 15
    under_1s = [l for l in metrics_text(srv.port).splitlines()
                if l.startswith('ordertrack_search_index_latency_seconds_bucket{worker="0",le="1"}')]
    assert len(under_1s) == 1 and float(under_1s[0].rsplit(" ", 1)[1]) <= 3
    assert set(orders_in_es(prefix)) == set(ids + more)
    assert gauge(srv.port, "ordertrack_search_index_backlog_events") == 0
    assert gauge(srv.port, "ordertrack_index_lag_seconds") == 0
    assert gauge(srv.port, "ordertrack_search_bulk_retries_total") >= 1
    st, _, ready = request(srv.port, "GET", "/readyz")
    assert ready["elasticsearch"] == "up"
    proxy.down()


def test_freshness_follows_the_index_down_when_it_loses_its_newest_documents(server, db, prefix):
    """Freshness is looked for at or above the highest seq a worker saw
    (a max over the whole index cost O(index) per request): an index that
    lost its newest documents must never go on claiming them."""
    proxy = Proxy(ES_PORT, record=True)
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix, url="http://127.0.0.1:%d" % proxy.port))
    ids = workload(srv.port, db, n=2)
    rows = events_since(db, FLOOR[0])
    top = rows[-1][0]
    wait_cursor(db, top)
    es("POST", "/%s-events,%s-orders/_refresh" % (prefix, prefix))
    admin = make_token(mk_user(db, role="ADMIN"), role="ADMIN")
    hdr = {"Authorization": "Bearer " + admin}

    def fresh(path):
        st, _, body = request(srv.port, "GET", path, headers=hdr)
        assert st == 200, body
        return body["freshness"]["seq"]

    paths = ["/search/orders", "/search/orders/%s/history" % ids[1]]
    for p in paths:
        assert fresh(p) == top and fresh(p) == top  # the second one from the floor
    # What the second request of each asked the node: the list (or history)
    # search carries no aggregation (one turns off the sort's skipping of
    # non-competitive documents), and freshness is a search of its own that
    # reads the documents at or above the floor, not the whole index.
    sent = [b for b in proxy.bodies("/_msearch") if len(b.split(b"\n")) > 3 and b'"range":{"seq"' in b.split(b"\n")[3]]
    for kind in ("orders", "events"):
        lines = next(b for b in reversed(sent) if b.startswith(b'{"index":"%s-%s"}' % (prefix.encode(), kind.encode())))
        lines = [json.loads(l) for l in lines.split(b"\n") if l]
        assert len(lines) == 4 and "aggs" not in lines[1], lines
        fresh_q = dict(lines[3], track_total_hits=True)
        st, ans = es("POST", "/%s-%s/_search" % (prefix, kind), fresh_q)
        assert st == 200, ans
        assert ans["hits"]["total"]["value"] == 1, ans  # what the max read: the newest document only
        assert int(ans["aggregations"]["seq"]["value"]) == top
    # The last order's newest event and state vanish from both indices.
    # (The test distribution has no _delete_by_query: by id, as written.)
    for kind, doc in (("events", rows[-1][1]), ("orders", rows[-1][2])):
        st, body = es("DELETE", "/%s-%s/_doc/%s?refresh=true" % (prefix, kind, doc))
        assert st == 200 and body["result"] == "deleted", body
    st, body = es("POST", "/%s-events/_search" % prefix, {"size": 0, "aggs": {"m": {"max": {"field": "seq"}}}})
    left = int(body["aggregations"]["m"]["value"])
    assert left < top
    for p in paths:
        seen = [fresh(p) for _ in range(3)]
        assert top not in seen, (p, seen)
        assert seen[-1] > 0 and seen[-1] <= left, (p, seen, left)
    proxy.down()


def test_the_orders_index_is_sorted_as_a_list_reads_so_the_unfiltered_first_page_stops_after_its_page(
        server, db, prefix):
    """Orders are indexed oldest first and a list reads newest first: in
    document order each order beats the page collected so far, so on an
    unsorted index the unfiltered first page visited and ranked every order
    (a million: seconds a request, docs/BENCHMARKS.md). The orders index is
    sorted by the list's own sort, and the node stops after the page."""
    proxy = Proxy(ES_PORT, record=True)
    srv = server(workers=1, args=NO_LIMITS, env=es_env(prefix, url="http://127.0.0.1:%d" % proxy.port))
    # Created only: an update leaves the old version in the segment (soft
    # deletes), which the query visits too.
    tok = make_token(mk_user(db))
    ids = [api_create(srv.port, tok)["id"] for _ in range(8)]
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    # One segment: the node stops early within a segment, and the batches
    # may have left several.
    st, body = es("POST", "/%s-orders/_forcemerge?max_num_segments=1" % prefix)
    assert st == 200, body
    es("POST", "/%s-orders/_refresh" % prefix)
    admin = make_token(mk_user(db, role="ADMIN"), role="ADMIN")
    st, _, page = request(srv.port, "GET", "/search/orders?limit=1", headers={"Authorization": "Bearer " + admin})
    assert st == 200, page
    assert [o["id"] for o in page["orders"]] == ids[-1:]
    sent = [b for b in proxy.bodies("/_msearch") if b.startswith(b'{"index":"%s-orders"}' % prefix.encode())]
    search = json.loads(sent[-1].split(b"\n")[1])
    sort = [next(iter(f.items())) for f in search["sort"]]
    st, body = es("GET", "/%s-orders/_settings" % prefix)
    assert st == 200, body
    index_sort = next(iter(body.values()))["settings"]["index"].get("sort")
    assert index_sort == {"field": [f for f, _ in sort], "order": [o["order"] for _, o in sort]}, (index_sort, sort)
    # What the query visited (the profiler turns off the skipping by
    # points, not the stop of a sorted index): the page and one more, not
    # all eight orders.
    st, ans = es("POST", "/%s-orders/_search" % prefix, dict(search, profile=True))
    assert st == 200, ans
    assert [h["_id"] for h in ans["hits"]["hits"]] == ids[::-1][:search["size"]]
    (shard,) = ans["profile"]["shards"]
    visited = sum(q["breakdown"]["next_doc_count"] + q["breakdown"]["advance_count"]
                  for q in shard["searches"][0]["query"])
    assert visited <= search["size"] + 1 < len(ids), shard["searches"][0]["query"]
    proxy.down()


# ---------------------------------------------------------------- the search endpoints without Elasticsearch

@pytest.mark.parametrize("way", ["refused", "silent"])
def test_search_answers_503_with_retry_after_when_elasticsearch_is_away_never_hanging(server, db, way):
    """refused: nothing listens; silent: a peer that accepts and never answers
    (bounded by --es-timeout-ms). Writes and GET /orders/:id go on."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    if way == "silent":
        hole.listen(64)  # the kernel completes the handshakes; nobody reads
    port = hole.getsockname()[1]
    if way == "refused":
        hole.close()
    try:
        srv = server(workers=1, args=NO_LIMITS, env=es_env("ot-away", url="http://127.0.0.1:%d" % port,
                                                           ORDERTRACK_ES_TIMEOUT_MS=500))
        user = mk_user(db)
        tok = make_token(user)
        order = api_create(srv.port, tok)
        for path in ("/search/orders", "/search/orders/%s/history" % order["id"], "/search/analytics"):
            t0 = time.monotonic()
            st, h, body = request(srv.port, "GET", path, token=tok)
            assert st == 503, body
            assert time.monotonic() - t0 < scaled(3)
            assert h["retry-after"] == "1"
            assert body["error"]["code"] == "search_unavailable"
        st, _, got = request(srv.port, "GET", "/orders/" + order["id"], token=tok)
        assert st == 200 and got["id"] == order["id"]
        st, _, ready = request(srv.port, "GET", "/readyz")
        assert st == 200 and ready["elasticsearch"] == "down"
    finally:
        if way == "silent":
            hole.close()


# ---------------------------------------------------------------- reindex

# notice_ms 0 with an indexer that looks for the new index every 20 s: the
# position is recorded, the copy made and the alias swapped before the indexer
# noticed, so live events committed after the copy's snapshot reach the old
# index only (what a slow look on a loaded node did in CI). The catch-up pass
# after the swap must still bring every order.
@pytest.mark.parametrize("notice_ms", [2500, 0])
def test_reindex_under_live_writes_rebuilds_from_postgres_and_swaps_the_alias(server, db, db_url, prefix, notice_ms):
    from conftest import run_cli
    args = NO_LIMITS + ([] if notice_ms else ["--es-reindex-check-ms", "20000"])
    srv = server(workers=1, args=args, env=es_env(prefix))
    ids = workload(srv.port, db, n=3)
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    old = "%s-orders-000001" % prefix
    # A document the old index lost: only a rebuild from PostgreSQL brings it back.
    st, _ = es("DELETE", "/%s/_doc/%s?refresh=true" % (old, ids[0]))
    assert st == 200
    user, admin = mk_user(db), mk_user(db, role="ADMIN")
    tok, atok = make_token(user), make_token(admin, role="ADMIN")
    live, stop = [], threading.Event()

    def writer():
        while not stop.is_set():
            oid = api_create(srv.port, tok)["id"]
            api_patch(srv.port, atok, oid, "ACCEPTED")
            live.append(oid)
            time.sleep(0.05)
    t = threading.Thread(target=writer)
    t.start()
    try:
        p = run_cli("search", "reindex", "--database-url", db_url, "--elasticsearch-url", ES, "--es-index-prefix",
                    prefix, "--wait-seconds", "30", "--notice-ms", notice_ms, timeout=120)
    finally:
        stop.set()
        t.join()
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["old"] == old and out["new"].startswith(prefix + "-orders-r") and out["oldDeleted"] is True
    assert len(live) >= 5  # writes went on during the whole run (more under ASan: a longer copy)
    st, body = es("GET", "/_alias/%s-orders" % prefix)
    assert st == 200 and list(body) == [out["new"]]
    # Made by the orders template, its index sort included: the way an
    # orders index from before the sort gets one.
    st, body = es("GET", "/%s/_settings" % out["new"])
    index_sort = body[out["new"]]["settings"]["index"].get("sort") if st == 200 else body
    assert index_sort == {"field": ["createdUs", "orderId"], "order": ["desc", "desc"]}, index_sort
    assert es("GET", "/_alias/%s-orders-next" % prefix)[0] == 404
    assert es("GET", "/%s" % old)[0] == 404
    if notice_ms:
        assert "also writing order documents to %s" % out["new"] in srv.log_text()
    # Every order at its latest version in the new index: the copy and the
    # live writes (before, during and after the swap) converged.
    more = workload(srv.port, db, n=1)
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    docs = orders_in_es(prefix, ids + live + more)
    with db.cursor() as cur:
        cur.execute("SELECT id::text, version FROM orders WHERE id = ANY(%s::uuid[])", (ids + live + more,))
        want = dict(cur.fetchall())
    assert len(want) == len(ids + live + more)
    assert {k: docs[k][0] for k in want} == want
    st, _, body = request(srv.port, "GET", "/search/orders?limit=100", token=tok, timeout=10)
    assert st == 200 and {o["id"] for o in body["orders"]} == set(live[-100:])  # the newest first


def events_indices(prefix):
    st, body = es("GET", "/_alias/%s-events" % prefix)
    assert st == 200, body
    return {name: a["aliases"]["%s-events" % prefix].get("is_write_index", False) for name, a in body.items()}


def wait_for(what, cond, timeout=20.0):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail("timed out waiting for " + what)


def test_events_indices_roll_over_and_old_ones_expire_while_history_reads_across_them(server, db, prefix):
    """--es-rollover-max-docs moves the write alias to -000002, -000003...;
    reads through the alias still see every event (an order's history spans
    indices); --es-events-retention-seconds then deletes the old indices by
    name, never the write index, and indexing goes on."""
    env = es_env(prefix, ORDERTRACK_ES_ROLLOVER_MAX_DOCS=4, ORDERTRACK_ES_LIFECYCLE_CHECK_MS=200)
    srv = server(args=NO_LIMITS, env=env)
    ids = workload(srv.port, db, n=2)  # 6 events
    wait_cursor(db, events_since(db, FLOOR[0])[-1][0])
    wait_for("the first rollover", lambda: len(events_indices(prefix)) >= 2)
    admin = make_token(mk_user(db, role="ADMIN"), role="ADMIN")
    for oid in ids:
        api_patch(srv.port, admin, oid, "SHIPPED")
    rows = events_since(db, FLOOR[0])
    wait_cursor(db, rows[-1][0])

    def settled():
        # No rollover is due once the write index holds fewer than 4
        # documents as max_docs counts them: Lucene's, where each nested item
        # of an event is one more (an event with 3 items is 4), and only once
        # refreshed. _count (top-level documents) said "settled" while the
        # next look still rolled over: the test then waited for the wrong
        # newest index to be the only one left.
        idx = events_indices(prefix)
        es("POST", "/%s-events/_refresh" % prefix)
        st, c = es("GET", "/%s/_stats/docs" % max(idx))
        return st == 200 and c["_all"]["primaries"]["docs"]["count"] < 4 and idx == events_indices(prefix) and idx
    idx = wait_for("the rollovers to settle", settled)
    assert sorted(idx) == ["%s-events-%06d" % (prefix, i + 1) for i in range(len(idx))]
    writers = [n for n, w in idx.items() if w]
    assert writers == [max(idx)], idx
    # The last rollover's answer may still be on its way to the server.
    wait_for("the rollovers counted",
             lambda: gauge(srv.port, "ordertrack_search_rollovers_total") == len(idx) - 1)
    # Every event is still found through the alias, one document each.
    expect_in_step(db, prefix, FLOOR[0])
    st, _, hist = request(srv.port, "GET", "/search/orders/%s/history" % ids[0], token=admin)
    assert st == 200, hist
    assert [e["status"] for e in hist["events"]] == ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED"]
    srv.stop()

    # Retention: everything but the write index is older than 1 s.
    time.sleep(1.1)
    env.update(ORDERTRACK_ES_ROLLOVER_MAX_DOCS="0", ORDERTRACK_ES_EVENTS_RETENTION_SECONDS="1")
    srv = server(args=NO_LIMITS, env=env)
    newest = max(idx)
    wait_for("the old indices to go", lambda: list(events_indices(prefix)) == [newest])
    assert gauge(srv.port, "ordertrack_search_indices_deleted_total") == len(idx) - 1
    assert gauge(srv.port, "ordertrack_search_event_indices") in (1, len(idx))
    # The write index stays, however old, and takes the next events.
    api_patch(srv.port, admin, ids[1], "DELIVERED")
    last = events_since(db, FLOOR[0])[-1]
    wait_cursor(db, last[0])
    assert last[1] in events_in_es(prefix)
    assert list(events_indices(prefix)) == [newest]


def test_the_elasticsearch_flags_are_range_checked_and_a_bad_prefix_is_refused_at_start():
    from conftest import run_cli
    env = {"JWT_SECRET": "x" * 40}
    for flag, bad in (("--es-bulk-max-events", "0"), ("--es-bulk-max-events", "100001"),
                      ("--es-bulk-max-bytes", "4095"), ("--es-bulk-flush-ms", "0"), ("--es-bulk-flush-ms", "60001"),
                      ("--es-timeout-ms", "99"), ("--es-timeout-ms", "600001"),
                      ("--es-reindex-check-ms", "99"), ("--es-reindex-check-ms", "600001"),
                      ("--es-lifecycle-check-ms", "99"), ("--es-lifecycle-check-ms", "86400001"),
                      ("--es-rollover-max-docs", "2000000001"), ("--es-events-retention-seconds", "-1")):
        p = run_cli("serve", flag, bad, env=env)
        assert p.returncode == 2 and flag in p.stderr, (flag, bad, p.stderr)
    for bad in ("Upper", "-x", "a b", "x" * 64, "a*"):
        p = run_cli("serve", "--elasticsearch-url", ES, "--es-index-prefix", bad, env=env)
        assert p.returncode == 2 and "--es-index-prefix" in p.stderr, (bad, p.stderr)
    # The reindex CLI's own limits, refused before it connects anywhere.
    for flag, bad in (("--notice-ms", "60001"), ("--notice-ms", "x"), ("--wait-seconds", "3601")):
        p = run_cli("search", "reindex", flag, bad, env=env)
        assert p.returncode == 2 and flag in p.stderr, (flag, bad, p.stderr)

