"""The outbox guarantees seen from the HTTP side: every committed change has
exactly one event (a refused one none), per-order versions are gap-free in seq
order under concurrency, idempotency holds under a thundering herd, and the
server survives PostgreSQL going away and coming back without a restart."""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import psycopg2
import pytest

from conftest import OT_BIN, make_token, mk_user, request, run_cli, scaled

ITEMS = [{"productId": "sku-1", "qty": 1}]
NEXT = {"CREATED": "ACCEPTED", "ACCEPTED": "PREPARED", "PREPARED": "SHIPPED", "SHIPPED": "DELIVERED"}


class Client:
    """One keep-alive connection (http.client reuses it between requests)."""

    def __init__(self, port, token):
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(20))

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + self.token}
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        h.update(headers or {})
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server may close an idle keep-alive connection; a fresh
                # one is fine only when the request never got an answer.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(20))
                if attempt:
                    raise
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw) if raw else None

    def close(self):
        self.conn.close()


def run_threads(n, fn):
    errors = []
    barrier = threading.Barrier(n)

    def wrap(i):
        try:
            barrier.wait()
            fn(i)
        except BaseException as e:  # noqa: B902 - reported to the main thread
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(120))
    assert not any(t.is_alive() for t in threads), "worker threads hung"
    if errors:
        raise errors[0]


def q1(db, sql, args=()):
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def check_event_chain(db, order_ids):
    """Each order: events with versions 1..version in seq order, exactly one per
    version, the last one matching the order row."""
    with db.cursor() as cur:
        cur.execute("SELECT o.id::text, o.version, o.status::text, "
                    "array_agg(e.version ORDER BY e.seq), array_agg(e.status::text ORDER BY e.seq), "
                    "array_agg(e.type ORDER BY e.seq) "
                    "FROM orders o JOIN order_events e ON e.order_id = o.id "
                    "WHERE o.id = ANY(%s::uuid[]) GROUP BY o.id, o.version, o.status", (list(order_ids),))
        rows = cur.fetchall()
    assert len(rows) == len(set(order_ids))
    for oid, version, status, versions, statuses, types in rows:
        assert versions == list(range(1, version + 1)), (oid, versions)
        assert statuses[-1] == status and types[0] == "order.created", (oid, statuses, types)


# ---------------------------------------------------------------- idempotency under a herd

def test_50_concurrent_posts_with_one_key_make_one_order_and_one_event(server, db):
    srv = server(workers=2)
    a, b = mk_user(db), mk_user(db)
    key = "herd-" + uuid.uuid4().hex
    results = [None] * 50

    def post(i):
        results[i] = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=make_token(a),
                             headers={"Idempotency-Key": key}, timeout=20)

    run_threads(50, post)
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 49 + [201], statuses
    ids = {r[2]["id"] for r in results}
    assert len(ids) == 1
    oid = ids.pop()
    assert q1(db, "SELECT count(*) FROM orders WHERE user_id = %s", (a,)) == 1
    assert q1(db, "SELECT count(*) FROM order_events WHERE order_id = %s", (oid,)) == 1
    assert q1(db, "SELECT count(*) FROM order_events WHERE user_id = %s AND type = 'order.created'", (a,)) == 1
    # Another user with the same key: a different order.
    st, _, other = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=make_token(b),
                           headers={"Idempotency-Key": key})
    assert st == 201 and other["id"] != oid and other["userId"] == b


# ---------------------------------------------------------------- the burst

def test_1000_order_burst_then_racing_status_changes_keep_the_outbox_exact(server, db):
    # A load test from one address: above the default per-IP/per-user limits on purpose.
    srv = server(workers=2, args=["--rate-ip", "1000000", "--rate-ip-burst", "1000000", "--rate-user", "1000000", "--rate-user-burst", "1000000"])
    users = [mk_user(db) for _ in range(20)]
    admin = mk_user(db, "ADMIN")
    before_events = q1(db, "SELECT count(*) FROM order_events")
    created = [[] for _ in range(20)]

    def burst(i):
        c = Client(srv.port, make_token(users[i]))
        try:
            for _ in range(50):
                st, _, o = c.call("POST", "/orders", {"items": ITEMS})
                assert st == 201, o
                created[i].append(o["id"])
        finally:
            c.close()

    t0 = time.monotonic()
    run_threads(20, burst)
    elapsed = time.monotonic() - t0
    ids = [oid for ids in created for oid in ids]
    assert len(ids) == len(set(ids)) == 1000
    assert q1(db, "SELECT count(*) FROM orders WHERE user_id = ANY(%s::uuid[])", (users,)) == 1000
    assert q1(db, "SELECT count(*) FROM order_events WHERE user_id = ANY(%s::uuid[]) AND type = 'order.created'",
              (users,)) == 1000
    assert q1(db, "SELECT count(*) FROM order_events") == before_events + 1000
    print("1000 orders in %.2fs" % elapsed)

    # 100 orders, each pushed through its life cycle by 4 threads racing for
    # every step: each step must be taken exactly once.
    target = ids[:100]
    won = {oid: [] for oid in target}
    lock = threading.Lock()
    outcomes = []

    def race(i):
        c = Client(srv.port, make_token(admin, "ADMIN"))
        try:
            for oid in target:
                for frm, to in NEXT.items():
                    st, _, body = c.call("PATCH", "/orders/%s/status" % oid, {"status": to})
                    with lock:
                        outcomes.append(st)
                        if st == 200:
                            won[oid].append((body["version"], to))
                    assert st in (200, 409), body
        finally:
            c.close()

    run_threads(4, race)
    for oid in target:
        assert sorted(won[oid]) == [(2, "ACCEPTED"), (3, "PREPARED"), (4, "SHIPPED"), (5, "DELIVERED")], oid
    assert outcomes.count(200) == 400 and outcomes.count(409) == 1200
    # Every committed change has exactly one event, refused ones none.
    assert q1(db, "SELECT count(*) FROM order_events") == before_events + 1000 + 400
    check_event_chain(db, ids)
    assert q1(db, "SELECT count(*) FROM order_events WHERE order_id = ANY(%s::uuid[]) AND type = 'order.completed'",
              (target,)) == 100


def test_only_committed_changes_have_events(server, db):
    srv = server(workers=1)
    a, admin = mk_user(db), mk_user(db, "ADMIN")
    ta = make_token(admin, "ADMIN")
    st, _, o = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=make_token(a))
    assert st == 201
    oid, path = o["id"], "/orders/%s/status" % o["id"]

    def n_events():
        return q1(db, "SELECT count(*) FROM order_events WHERE order_id = %s", (oid,))

    assert n_events() == 1
    refused = [
        ({"status": "SHIPPED"}, {}, 409),                    # illegal transition
        ({"status": "ACCEPTED"}, {"If-Match": '"7"'}, 412),  # stale version
        ({"status": "NOPE"}, {}, 400),
        ({"status": "ACCEPTED", "x": 1}, {}, 400),
    ]
    for body, headers, code in refused:
        assert request(srv.port, "PATCH", path, body, token=ta, headers=headers)[0] == code
        assert n_events() == 1
    assert request(srv.port, "PATCH", path, {"status": "ACCEPTED"}, token=make_token(a))[0] == 403
    assert n_events() == 1
    assert request(srv.port, "PATCH", path, {"status": "ACCEPTED"}, token=ta, headers={"If-Match": '"1"'})[0] == 200
    assert n_events() == 2
    # Replaying the same change is now an illegal same-state transition: no event.
    assert request(srv.port, "PATCH", path, {"status": "ACCEPTED"}, token=ta)[0] == 409
    assert n_events() == 2
    check_event_chain(db, [oid])


# ---------------------------------------------------------------- PostgreSQL going away

def _assert_503(resp):
    st, h, body = resp
    assert st == 503, (st, body)
    assert "retry-after" in h and int(h["retry-after"]) >= 1, h
    assert isinstance(body, dict) and body["error"]["code"], body


def _wait_for(fn, timeout, what):
    deadline = time.monotonic() + scaled(timeout)
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail("%s did not happen within %.1fs (last: %r)" % (what, scaled(timeout), last))


def test_server_side_disconnect_is_survived_without_restart(server, db):
    srv = server(workers=2, args=["--pg-pool", "2"])
    a = mk_user(db)
    tok = make_token(a)
    for _ in range(4):
        assert request(srv.port, "POST", "/orders", {"items": ITEMS}, token=tok)[0] == 201
    # A crash as the server's connections see it: the backend goes away.
    killed = q1(db, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend') t")
    assert killed >= 2
    before = q1(db, "SELECT count(*) FROM orders WHERE user_id = %s", (a,))
    seen = []
    ok = 0
    deadline = time.monotonic() + scaled(15)
    while ok < 10 and time.monotonic() < deadline:
        resp = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=tok, timeout=15)
        seen.append(resp[0])
        if resp[0] == 201:
            ok += 1
        else:
            _assert_503(resp)
    print("after terminate:", seen)
    assert ok == 10, seen
    assert srv.alive()
    # Every 201 is a committed order with its event; every 503 wrote nothing
    # (the requests were refused before or failed in flight, both rolled back).
    after = q1(db, "SELECT count(*) FROM orders WHERE user_id = %s", (a,))
    assert after - before == seen.count(201)
    assert q1(db, "SELECT count(*) FROM order_events WHERE user_id = %s", (a,)) == after
    _wait_for(lambda: request(srv.port, "GET", "/readyz")[0] == 200, 10, "readyz 200")


def test_disconnect_under_load_never_500s_and_keyed_retries_make_exactly_one_order_each(server, db):
    srv = server(workers=2, args=["--pg-pool", "2"] + ["--rate-ip", "1000000", "--rate-ip-burst", "1000000", "--rate-user", "1000000", "--rate-user-burst", "1000000"])  # load from one address
    users = [mk_user(db) for _ in range(8)]
    statuses = []
    lock = threading.Lock()
    stop_at = time.monotonic() + scaled(4)
    keys_done = [0] * 8

    def load(i):
        c = Client(srv.port, make_token(users[i]))
        try:
            n = 0
            while time.monotonic() < stop_at:
                key = "k-%d-%d" % (i, n)
                for _ in range(200):  # retry the same key until it is answered for sure
                    st, h, body = c.call("POST", "/orders", {"items": ITEMS}, {"Idempotency-Key": key})
                    with lock:
                        statuses.append(st)
                    if st in (200, 201):
                        break
                    assert st == 503 and "retry-after" in h, (st, body)
                    time.sleep(0.05)
                else:
                    raise AssertionError("key %s never succeeded" % key)
                n += 1
            keys_done[i] = n
        finally:
            c.close()

    def killer():
        for _ in range(4):
            time.sleep(0.6)
            with db.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")

    kt = threading.Thread(target=killer)
    kt.start()
    run_threads(8, load)
    kt.join()
    assert srv.alive()
    assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
    print("statuses:", {s: statuses.count(s) for s in set(statuses)})
    # One order per key, one created event per order, however many retries.
    assert q1(db, "SELECT count(*) FROM orders WHERE user_id = ANY(%s::uuid[])", (users,)) == sum(keys_done)
    assert q1(db, "SELECT count(*) FROM order_events WHERE user_id = ANY(%s::uuid[])", (users,)) == sum(keys_done)


def test_statement_timeout_on_a_locked_order_is_503_and_writes_no_event(server, db, db_url):
    # pg.h recommends bounding statements with statement_timeout in the
    # conninfo; a statement it cancels was rolled back, so the client may retry.
    srv = server(workers=1, env={"DATABASE_URL": db_url + "?options=-c%20statement_timeout%3D300"})
    a, admin = mk_user(db), mk_user(db, "ADMIN")
    st, _, o = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=make_token(a))
    assert st == 201, o
    path = "/orders/%s/status" % o["id"]
    locker = psycopg2.connect(db_url)
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (o["id"],))
        _assert_503(request(srv.port, "PATCH", path, {"status": "ACCEPTED"}, token=make_token(admin, "ADMIN")))
    finally:
        locker.rollback()
        locker.close()
    assert q1(db, "SELECT count(*) FROM order_events WHERE order_id = %s", (o["id"],)) == 1
    st, _, body = request(srv.port, "PATCH", path, {"status": "ACCEPTED"}, token=make_token(admin, "ADMIN"))
    assert st == 200 and body["version"] == 2, body
    check_event_chain(db, [o["id"]])


class PrivateCluster:
    """A throw-away PostgreSQL 15 cluster on a unix socket, run as the postgres
    OS user, so that stopping it disturbs nobody else."""

    BIN = "/usr/lib/postgresql/15/bin"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ot-pg-")
        os.chmod(self.dir, 0o777)
        self.data = os.path.join(self.dir, "data")
        self.port = 15432 + os.getpid() % 1000
        self.url = "postgresql://postgres@/postgres?host=%s&port=%d" % (self.dir, self.port)

    def _pg(self, *args, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + list(args), capture_output=True, text=True,
                              timeout=60, check=check, cwd=self.dir)

    def init(self):
        self._pg(self.BIN + "/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self):
        opts = "-p %d -k %s -c listen_addresses='' -c fsync=off -c full_page_writes=off" % (self.port, self.dir)
        self._pg(self.BIN + "/pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"),
                 "-w", "-t", "30", "start")

    def stop(self, mode="immediate"):
        self._pg(self.BIN + "/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg():
    if not (os.path.exists(PrivateCluster.BIN + "/initdb") and shutil.which("runuser") and os.geteuid() == 0):
        pytest.skip("needs root, runuser and PostgreSQL 15 binaries for a private cluster")
    c = PrivateCluster()
    try:
        c.init()
        c.start()
        yield c
    finally:
        c.cleanup()


def test_database_down_gives_503_with_retry_after_then_recovers(server, private_pg):
    pg = private_pg
    mig = run_cli("migrate", "--database-url", pg.url)
    assert mig.returncode == 0, mig.stderr
    conn = psycopg2.connect(pg.url)
    conn.autocommit = True
    try:
        a, admin = mk_user(conn), mk_user(conn, "ADMIN")
    finally:
        conn.close()
    srv = server(workers=1, env={"DATABASE_URL": pg.url})
    tok = make_token(a)
    _wait_for(lambda: request(srv.port, "GET", "/readyz")[0] == 200, 10, "readyz 200")
    st, _, o = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=tok)
    assert st == 201, o

    pg.stop("immediate")
    t0 = time.monotonic()
    _wait_for(lambda: request(srv.port, "GET", "/readyz")[0] == 503, 10, "readyz 503")
    _assert_503(request(srv.port, "GET", "/readyz"))
    # Writes and reads alike: 503 with Retry-After (at the latest after the
    # pool's connect timeout), never a hang or a 500.
    _assert_503(request(srv.port, "POST", "/orders", {"items": ITEMS}, token=tok, timeout=15))
    _assert_503(request(srv.port, "GET", "/orders/" + o["id"], token=tok, timeout=15))
    _assert_503(request(srv.port, "PATCH", "/orders/%s/status" % o["id"], {"status": "ACCEPTED"},
                        token=make_token(admin, "ADMIN"), timeout=15))
    down_for = time.monotonic() - t0
    assert srv.alive()

    pg.start()
    _wait_for(lambda: request(srv.port, "GET", "/readyz")[0] == 200, 15, "readyz 200 after restart")
    st, _, o2 = request(srv.port, "POST", "/orders", {"items": ITEMS}, token=tok)
    assert st == 201, o2
    st, _, got = request(srv.port, "GET", "/orders/" + o["id"], token=tok)
    assert st == 200 and got["id"] == o["id"]
    print("down for %.1fs" % down_for)
    conn = psycopg2.connect(pg.url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders WHERE user_id = %s", (a,))
            assert cur.fetchone()[0] == 2
            cur.execute("SELECT count(*) FROM order_events WHERE user_id = %s", (a,))
            assert cur.fetchone()[0] == 2
    finally:
        conn.close()
