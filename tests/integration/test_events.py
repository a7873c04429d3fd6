"""The event reader's delivery promises seen from WebSocket clients: a worker
that starts while a write is in flight still delivers that write once it
commits (issue 10, finding 4); events that reach the reader by Redis pub/sub
or NOTIFY are believed only when they are authentic."""

import json
import socket
import time
import uuid

import psycopg2
import pytest

from conftest import make_token, mk_user, request, scaled
from test_ws_scale import NO_LIMITS, PrivateRedis, api_create, metric, private_redis, wait_subscribers  # noqa: F401 (fixture)
from wsclient import WS

ITEMS = '[{"productId":"sku-ev","qty":1}]'
CREATE = "SELECT order_json, event_json FROM ot_create_order(%s::uuid, %s::jsonb, NULL, NULL)"


def create(cur, user, wake=True):
    """An order written by hand; `wake`: then wakes the readers the way the
    server does after its commits (sql/012), as a writer outside it should."""
    cur.execute(CREATE, (user, ITEMS))
    o, e = cur.fetchone()
    oid, seq = json.loads(o)["id"], json.loads(e)["seq"]
    if wake:
        cur.execute("SELECT ot_wake_listeners(%s)", (seq,))
    return oid, seq


def pushes_until(ws, oid, timeout):
    """Every pushed event until (and including) the one of order `oid`."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            m = ws.recv_msg(max(0.0, deadline - time.monotonic()))
        except socket.timeout:
            raise socket.timeout("no push of %s; got %r" % (oid, [(g["seq"], g["orderId"]) for g in got]))
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
        srv = server(workers=1, args=NO_LIMITS)
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


# ---------------------------------------------------------------- forged pub/sub and NOTIFY

def forged_event(seq, user):
    oid = str(uuid.uuid4())
    return oid, json.dumps({"seq": seq, "version": 1, "eventId": str(uuid.uuid4()), "orderId": oid,
                            "userId": user, "type": "order.created", "status": "CREATED",
                            "timestamp": "2026-01-01T00:00:00.000Z", "payload": {"items": []}, "actor": None})


def max_seq(db):
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        return cur.fetchone()[0]


def test_forged_redis_publish_never_reaches_a_dashboard_and_is_counted(server, db, private_redis):
    r = private_redis
    writer = server(workers=1, args=NO_LIMITS + ["--redis-url", r.url])
    reader = server(workers=1, args=NO_LIMITS + ["--redis-url", r.url])
    admin, a = mk_user(db, "ADMIN"), mk_user(db)
    tadmin, ta = make_token(admin, "ADMIN"), make_token(a)
    wait_subscribers(r, 2, scaled(10))
    dash = WS.connect(reader.port, tadmin)
    try:
        first = api_create(writer.port, ta)["id"]
        pushes_until(dash, first, scaled(5))
        # Forgeries: a bare event, a well-formed envelope with a wrong MAC, and a
        # genuine-looking envelope whose MAC is for another channel.
        nxt = max_seq(db) + 1
        bare_oid, bare = forged_event(nxt, a)
        bad_oid, bad = forged_event(nxt, a)
        assert r.cmd("PUBLISH", "ot:admin", bare) >= 1
        assert r.cmd("PUBLISH", "ot:admin", "ot1:" + "0" * 64 + ":" + bad) >= 1
        assert r.cmd("PUBLISH", "ot:admin", "ot1:" + "ab" * 32 + ":" + bad) >= 1
        # A genuine write after them still arrives, and it is the next push.
        time.sleep(scaled(0.2))
        genuine = api_create(writer.port, ta)["id"]
        got = pushes_until(dash, genuine, scaled(5))
        ids = [g["orderId"] for g in got]
        assert bare_oid not in ids and bad_oid not in ids, ids
        assert ids == [genuine], ids
        assert sum(metric(reader.port, "ordertrack_events_forged_total")) == 3
        # The writer's own sealed messages came back to it through Redis and
        # verified: nothing genuine was counted as forged.
        assert sum(metric(writer.port, "ordertrack_events_forged_total")) == 3
    finally:
        dash.shutdown()


def test_genuine_redis_events_cross_instances_fast_and_verify(server, db, private_redis):
    r = private_redis
    writer = server(workers=1, args=NO_LIMITS + ["--redis-url", r.url])
    reader = server(workers=1, args=NO_LIMITS + ["--redis-url", r.url])
    admin, a = mk_user(db, "ADMIN"), mk_user(db)
    tadmin, ta = make_token(admin, "ADMIN"), make_token(a)
    wait_subscribers(r, 2, scaled(10))
    dash = WS.connect(reader.port, tadmin)
    try:
        pushes_until(dash, api_create(writer.port, ta)["id"], scaled(5))
        lat = []
        for _ in range(5):
            t0 = time.monotonic()
            pushes_until(dash, api_create(writer.port, ta)["id"], scaled(5))
            lat.append(time.monotonic() - t0)
        # Through Redis, not the 1 s safety-net tail.
        assert sorted(lat)[2] < scaled(0.5), lat
        assert sum(metric(reader.port, "ordertrack_events_forged_total")) == 0
    finally:
        dash.shutdown()


def test_forged_notify_is_only_a_hint_and_never_reaches_a_dashboard(server, db):
    srv = server(workers=1, args=NO_LIMITS)
    admin, a = mk_user(db, "ADMIN"), mk_user(db)
    tadmin = make_token(admin, "ADMIN")
    dash = WS.connect(srv.port, tadmin)
    try:
        deadline = time.monotonic() + scaled(10)
        while True:  # live once a committed write reaches the socket
            with db.cursor() as cur:
                oid, _ = create(cur, a)
            try:
                pushes_until(dash, oid, scaled(0.5))
                break
            except socket.timeout:
                assert time.monotonic() < deadline, "events never reached the WebSocket"
        forged_oid, forged = forged_event(max_seq(db) + 1, a)
        with db.cursor() as cur:
            cur.execute("SELECT pg_notify('ot_events', %s)", (forged,))
        time.sleep(scaled(0.3))
        with db.cursor() as cur:
            genuine, _ = create(cur, a)
        ids = [g["orderId"] for g in pushes_until(dash, genuine, scaled(5))]
        assert ids == [genuine], ids
    finally:
        dash.shutdown()


def test_an_event_larger_than_any_api_order_is_delivered_promptly_not_skipped(server, db):
    """400 items (the API takes 100) written directly: more JSON tokens than the
    parser's stack array held, so every reader used to skip the committed row
    as if it were a rolled-back gap. Its NOTIFY is a {"seq":N} stub (over 8000
    bytes); the tail it wakes reads the row. A writer outside the server
    wakes the readers as the server does after its commits (sql/012)."""
    srv = server(workers=1, args=NO_LIMITS)
    admin, a = mk_user(db, "ADMIN"), mk_user(db)
    dash = WS.connect(srv.port, make_token(admin, "ADMIN"))
    try:
        with db.cursor() as cur:
            pushes_until(dash, create(cur, a)[0], scaled(5))
            big = json.dumps([{"productId": "sku-%05d" % i, "qty": 1} for i in range(400)])  # ~12 KB
            cur.execute(CREATE, (a, big))
            order_json, event_json = cur.fetchone()
            oid = json.loads(order_json)["id"]
            cur.execute("SELECT ot_wake_listeners(%s)", (json.loads(event_json)["seq"],))
        t0 = time.monotonic()
        got = pushes_until(dash, oid, scaled(5))
        assert time.monotonic() - t0 < scaled(0.5)  # woken, not the 1 s safety-net poll
        assert len(got[-1]["payload"]["items"]) == 400
    finally:
        dash.shutdown()


# ---------------------------------------------------------------- delivery property, real PostgreSQL

@pytest.mark.parametrize("source", ["listen", "redis"])
def test_random_commits_rollbacks_and_restarts_reach_a_resuming_client_exactly_once(server, db, db_url, source,
                                                                                    tmp_path):
    """Writers with random delays between taking a seq and ending, a random
    fifth rolled back, the server killed and restarted (so workers start with
    writes in flight) while one admin client resumes with since=last each time:
    it gets exactly the committed seqs after its floor, in order. With Redis,
    API writes add sealed pub/sub traffic through the restarts too."""
    import random
    import threading

    rnd = random.Random(int(time.time()))
    seed = rnd.randrange(1 << 30)
    rnd.seed(seed)
    admin, users = mk_user(db, "ADMIN"), [mk_user(db) for _ in range(4)]
    tadmin = make_token(admin, "ADMIN")
    floor = max_seq(db)
    args = []
    if source == "redis":
        r = PrivateRedis(tmp_path)
        r.start()
        args = ["--redis-url", r.url]
    srv = server(workers=2, args=NO_LIMITS + args)
    port = srv.port
    stop = threading.Event()
    errors = []

    def api_writer():
        tok = make_token(users[0])
        while not stop.is_set():
            try:  # the server restarts under it: an unanswered POST is fine, the log decides
                request(port, "POST", "/orders", {"items": [{"productId": "sku-api", "qty": 1}]}, token=tok,
                        timeout=2)
            except OSError:
                time.sleep(0.05)

    def writer(i):
        r = random.Random(seed + i)
        conn = psycopg2.connect(db_url)
        try:
            while not stop.is_set():
                with conn.cursor() as cur:
                    oid, _ = create(cur, users[i])
                    time.sleep(r.random() * 0.03)
                    if r.random() < 0.5:
                        cur.execute("SELECT result FROM ot_update_status(%s::uuid, 'ACCEPTED', NULL, NULL)", (oid,))
                        assert cur.fetchone()[0] == "ok"
                        time.sleep(r.random() * 0.03)
                if r.random() < 0.2:
                    conn.rollback()
                else:
                    conn.commit()
        except BaseException as e:  # noqa: B902 - reported to the main thread
            errors.append(e)
        finally:
            conn.close()

    got = []
    log = []  # what the client saw besides pushes, for the failure message

    def connect_and_resume(deadline):
        while True:
            try:
                # On the URL: a resume sent after the upgrade races live pushes.
                since = got[-1] if got else floor
                ws = WS.connect(port, tadmin, query="since=%d" % since, timeout=scaled(2))
                log.append(("resume", since))
                return ws
            except (OSError, ConnectionError):
                assert time.monotonic() < deadline, "could not reconnect"
                time.sleep(0.05)

    def take(m):
        if m.get("event") == "order.updated":
            s = m["data"]["seq"]
            assert not got or s > got[-1], "seq %d after %d: duplicate or out of order (seed %d); last: %r" % (
                s, got[-1], seed, log[-12:])
            got.append(s)
            log.append(s)
        elif m.get("event") == "resumed":
            log.append(("resumed", m["data"]))
        elif m.get("event") == "error":
            raise AssertionError("error event %r (seed %d)" % (m, seed))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(users))]
    if source == "redis":
        threads.append(threading.Thread(target=api_writer))
    for t in threads:
        t.start()
    try:
        ws = connect_and_resume(time.monotonic() + scaled(10))
        t_end = time.monotonic() + scaled(6)
        restarts = [time.monotonic() + scaled(x) for x in (1.5, 3.0, 4.5)]
        while time.monotonic() < t_end:
            if restarts and time.monotonic() >= restarts[0]:
                restarts.pop(0)
                srv.kill()
                ws.shutdown()
                srv = server(workers=2, port=port, args=NO_LIMITS + args)
                ws = connect_and_resume(time.monotonic() + scaled(10))
            try:
                take(ws.recv_msg(0.05))
            except socket.timeout:
                pass
        stop.set()
        for t in threads:
            t.join(scaled(20))
        assert not errors, errors
        with db.cursor() as cur:
            cur.execute("SELECT seq FROM order_events WHERE seq > %s ORDER BY seq", (floor,))
            want = [r[0] for r in cur.fetchall()]
        deadline = time.monotonic() + scaled(10)
        while len(got) < len(want) and time.monotonic() < deadline:
            try:
                take(ws.recv_msg(0.2))
            except socket.timeout:
                pass
        for m in ws.collect(scaled(0.3)):  # nothing more may come
            take(m)
        ws.shutdown()
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        assert not missing and not extra, "seed %d: missing %r, not committed %r" % (seed, missing[:20], extra[:20])
        assert got == want
        assert len(want) > 50, len(want)  # the run did exercise something
        if source == "redis":
            assert sum(metric(srv.port, "ordertrack_events_forged_total")) == 0
    finally:
        stop.set()
        for t in threads:
            t.join(scaled(20))
        if source == "redis":
            r.kill()


# ---------------------------------------------------------------- wake-ups after commits (sql/012)

def test_api_writes_wake_the_readers_after_their_commit_one_wake_in_flight(server, db, db_url):
    """The writes send no NOTIFY (it serialized every commit); the worker
    wakes the readers after each COMMIT with ot_wake_listeners, one call in
    flight, the next naming the highest seq committed meanwhile. So a burst
    costs at most one wake per write, a wake names the burst's last seq (no reader is left waiting for its idle tail), and every wake sent
    reaches a listener."""
    import threading

    srv = server(workers=1, args=NO_LIMITS)
    lconn = psycopg2.connect(db_url)
    lconn.autocommit = True
    with lconn.cursor() as cur:
        cur.execute("LISTEN ot_events")
    heard = []

    def hear_until(seq, timeout):
        deadline = time.monotonic() + scaled(timeout)
        while not heard or max(heard) < seq:
            left = deadline - time.monotonic()
            assert left > 0, "no wake naming seq %d; heard %r" % (seq, heard[-5:])
            import select
            if select.select([lconn], [], [], left) != ([], [], []):
                lconn.poll()
                heard.extend(json.loads(n.payload)["seq"] for n in lconn.notifies)
                lconn.notifies.clear()

    try:
        tok = make_token(mk_user(db))
        api_create(srv.port, tok)
        hear_until(max_seq(db), 5)
        assert len(heard) == 1
        writes, errors = 400, []

        def writer(n):
            try:
                for _ in range(n):
                    api_create(srv.port, tok)
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)
        ts = [threading.Thread(target=writer, args=(writes // 32 + (1 if i < writes % 32 else 0),))
              for i in range(32)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors[:3]
        top = max_seq(db)
        hear_until(top, 5)
        time.sleep(scaled(0.3))  # nothing after the last one
        lconn.poll()
        heard.extend(json.loads(n.payload)["seq"] for n in lconn.notifies)
        # Commits on the pool's connections may return out of seq order: the
        # highest heard, not the last, is the burst's last seq.
        assert max(heard) == top
        wakes = sum(metric(srv.port, "ordertrack_events_wakes_total"))
        assert wakes == len(heard)
        assert 2 <= wakes <= writes  # at least two writes shared one
        print("wakes for %d concurrent writes: %d" % (writes, wakes - 1))
    finally:
        lconn.close()


def test_a_gap_tail_of_a_reader_fed_as_data_stops_at_what_it_has_seen(server, db, db_url, private_redis):
    """With Redis (or the Kafka feed) the other writers' events come as data,
    so the tail that fills a gap reads up to the highest seq seen, not on:
    past it the events are on their way, and reading them from PostgreSQL
    first made the feed's own delivery mostly duplicates. Here s is held open,
    s + 1 is the server's own commit (held behind s), s + 2 a commit nobody
    announced: closing s delivers s and s + 1 from the gap tail, and s + 2
    comes with the next idle tail, a second later, not with them."""
    r = private_redis
    srv = server(workers=1, args=NO_LIMITS + ["--redis-url", r.url])
    admin, a = mk_user(db, "ADMIN"), mk_user(db)
    wait_subscribers(r, 1, scaled(10))
    dash = WS.connect(srv.port, make_token(admin, "ADMIN"))
    slow = psycopg2.connect(db_url)
    try:
        pushes_until(dash, api_create(srv.port, make_token(a))["id"], scaled(5))
        with slow.cursor() as cur:
            held, s = create(cur, a, wake=False)         # seq s taken, not committed
        own = api_create(srv.port, make_token(a))["id"]  # s + 1: held behind s
        with db.cursor() as cur:
            silent, s2 = create(cur, a, wake=False)      # s + 2: committed, not announced
        assert s2 == s + 2
        time.sleep(scaled(0.3))  # the gap's tails have run (2 ms, doubling)
        slow.commit()
        got = pushes_until(dash, own, scaled(5))
        t_own = time.monotonic()
        assert [g["orderId"] for g in got] == [held, own], got
        rest = pushes_until(dash, silent, scaled(5))
        assert [g["orderId"] for g in rest] == [silent]
        assert time.monotonic() - t_own > 0.3, "s + 2 came with the gap's tail"
    finally:
        slow.close()
        dash.shutdown()
