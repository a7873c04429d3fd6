"""GET /ws/orders end to end: the real binary, real sockets, real PostgreSQL.
Events are produced by calling the stored functions directly; the server
hears them through LISTEN/NOTIFY like any other commit."""

import json
import os
import signal
import socket
import struct
import time
import uuid

import pytest

from conftest import ASAN, make_token, mk_user, request, scaled
from wsclient import OP_BIN, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, WS, Closed, HandshakeError

ITEMS = json.dumps([{"productId": "sku-1", "qty": 1}])


# ---------------------------------------------------------------- helpers

def create_order(db, user, items=ITEMS):
    """Creates an order as the API would; returns (order id, event dict)."""
    with db.cursor() as cur:
        cur.execute("SELECT order_json, event_json FROM ot_create_order(%s::uuid, %s::jsonb, NULL, NULL)",
                    (user, items))
        o, e = cur.fetchone()
    return json.loads(o)["id"], json.loads(e)


def set_status(db, oid, status):
    with db.cursor() as cur:
        cur.execute("SELECT result, event_json FROM ot_update_status(%s::uuid, %s::order_status, NULL, NULL)",
                    (oid, status))
        result, e = cur.fetchone()
    assert result == "ok", result
    return json.loads(e)


def max_seq(db):
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        return cur.fetchone()[0]


def is_push(m, oid=None, status=None):
    if m.get("event") != "order.updated":
        return False
    d = m["data"]
    return (oid is None or d["orderId"] == oid) and (status is None or d["status"] == status)


def wait_live(srv, db, admin_token, sockets=1):
    """Events flow only once each worker's event reader has found its start:
    commit probes until `sockets` admin sockets all see one."""
    conns = [WS.connect(srv.port, admin_token) for _ in range(sockets)]
    probe_user = mk_user(db)
    deadline = time.monotonic() + scaled(15)
    try:
        while time.monotonic() < deadline:
            oid, _ = create_order(db, probe_user)
            try:
                for c in conns:
                    c.wait_for(lambda m: is_push(m, oid), timeout=scaled(0.5))
                return
            except socket.timeout:
                continue
        pytest.fail("events never reached the WebSocket")
    finally:
        for c in conns:
            c.shutdown()


def worker_pids(srv):
    with open("/proc/%d/task/%d/children" % (srv.proc.pid, srv.proc.pid)) as f:
        return [int(p) for p in f.read().split()]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Env:
    def __init__(self, srv, db):
        self.srv, self.db, self.port = srv, db, srv.port
        self.admin = mk_user(db, "ADMIN")
        self.a = mk_user(db)
        self.b = mk_user(db)
        self.tadmin = make_token(self.admin, "ADMIN")
        self.ta = make_token(self.a)
        self.tb = make_token(self.b)

    def ws(self, token=None, **kw):
        return WS.connect(self.port, token or self.ta, **kw)


@pytest.fixture
def env(server, db):
    srv = server(workers=1)
    e = Env(srv, db)
    wait_live(srv, db, e.tadmin)
    return e


def start_env(server, db, args=(), workers=1, live=True, env=None):
    srv = server(workers=workers, args=list(args), env=env)
    e = Env(srv, db)
    if live:
        wait_live(srv, db, e.tadmin)
    return e


# ---------------------------------------------------------------- handshake

def test_handshake_without_version_13_is_426_naming_the_version(server, db):
    e = start_env(server, db, live=False)
    for version in (None, "8"):
        with pytest.raises(HandshakeError) as ei:
            WS.connect(e.port, e.ta, version=version)
        assert ei.value.status == 426
        assert ei.value.headers.get("sec-websocket-version") == "13"
        assert ei.value.json()["error"]["code"] == "upgrade_required"


def test_bad_handshake_is_400_json(server, db):
    e = start_env(server, db, live=False)
    with pytest.raises(HandshakeError) as ei:
        WS.connect(e.port, e.ta, key="not-a-valid-key")
    assert ei.value.status == 400
    assert ei.value.json()["error"]["code"] == "bad_handshake"
    # A plain GET (no Upgrade) on the WebSocket route.
    status, _, body = request(e.port, "GET", "/ws/orders", token=e.ta)
    assert status == 400 and body["error"]["code"] == "bad_handshake"


def test_missing_invalid_or_expired_token_is_401(server, db):
    e = start_env(server, db, live=False)
    cases = [
        (None, "unauthorized"),
        ("garbage", "invalid_token"),
        (make_token(e.a, secret="another-secret"), "invalid_token"),
        (make_token(e.a, exp_delta=-10), "token_expired"),
    ]
    for tok, code in cases:
        with pytest.raises(HandshakeError) as ei:
            WS.connect(e.port, tok)
        assert ei.value.status == 401, tok
        assert ei.value.json()["error"]["code"] == code, tok


def test_token_in_query_string_is_accepted(env):
    with env.ws(env.ta, bearer=False) as ws:
        oid, _ = create_order(env.db, env.a)
        ws.wait_for(lambda m: is_push(m, oid), timeout=scaled(3))


# ---------------------------------------------------------------- pushes and authorisation

def test_customer_and_admin_receive_every_lifecycle_event(env):
    with env.ws(env.ta) as wa, env.ws(env.tadmin) as wadm:
        oid, ev = create_order(env.db, env.a)
        for ws in (wa, wadm):
            m, _ = ws.wait_for(lambda m: is_push(m, oid), timeout=scaled(3))
            d = m["data"]
            assert d["seq"] == ev["seq"] and d["eventId"] == ev["eventId"]
            assert d["userId"] == env.a and d["status"] == "CREATED" and d["type"] == "order.created"
            assert {"version", "timestamp", "payload"} <= set(d)
        for status, typ in (("ACCEPTED", "order.updated"), ("CANCELED", "order.canceled")):
            set_status(env.db, oid, status)
            for ws in (wa, wadm):
                m, _ = ws.wait_for(lambda m: is_push(m, oid, status), timeout=scaled(3))
                assert m["data"]["type"] == typ


def test_customer_never_receives_another_customers_events(env):
    with env.ws(env.ta) as wa, env.ws(env.tb) as wb, env.ws(env.tadmin) as wadm:
        ob, _ = create_order(env.db, env.b)
        set_status(env.db, ob, "ACCEPTED")
        oa, _ = create_order(env.db, env.a)
        # A's own event arrives after B's two: anything of B's would have come first.
        m, before = wa.wait_for(lambda m: is_push(m, oa), timeout=scaled(3))
        assert [x for x in before if is_push(x)] == []
        got_b = [x["data"]["orderId"] for x in wb.collect(scaled(0.5)) if is_push(x)]
        assert got_b == [ob, ob]
        got_admin = [x["data"]["orderId"] for x in wadm.collect(scaled(0.5)) if is_push(x)]
        assert got_admin == [ob, ob, oa]


def test_events_reach_sockets_on_every_worker(server, db):
    e = start_env(server, db, workers=2, live=False)
    wait_live(e.srv, db, e.tadmin, sockets=8)
    socks = [e.ws(e.ta) for _ in range(8)]  # SO_REUSEPORT spreads them over both workers
    try:
        oid, _ = create_order(db, e.a)
        for s in socks:
            s.wait_for(lambda m: is_push(m, oid), timeout=scaled(3))
    finally:
        for s in socks:
            s.shutdown()


# ---------------------------------------------------------------- subscriptions and client messages

def test_subscribe_narrows_the_stream_and_refuses_foreign_orders(env):
    o1, _ = create_order(env.db, env.a)
    o2, _ = create_order(env.db, env.a)
    ob, _ = create_order(env.db, env.b)
    with env.ws(env.ta) as ws:
        ws.send_json({"action": "subscribe", "orderId": o1})
        m, _ = ws.wait_for(lambda m: m["event"] in ("subscribed", "error"), timeout=scaled(3))
        assert m == {"event": "subscribed", "data": {"orderId": o1}}
        ws.send_json({"action": "subscribe", "orderId": ob})
        m, _ = ws.wait_for(lambda m: m["event"] in ("subscribed", "error"), timeout=scaled(3))
        assert m["event"] == "error" and m["data"]["code"] == "not_found" and m["data"]["orderId"] == ob
        ws.send_json({"action": "subscribe", "orderId": str(uuid.uuid4())})
        m, _ = ws.wait_for(lambda m: m["event"] in ("subscribed", "error"), timeout=scaled(3))
        assert m["data"]["code"] == "not_found"
        set_status(env.db, o2, "ACCEPTED")
        set_status(env.db, o1, "ACCEPTED")
        m, before = ws.wait_for(lambda m: is_push(m), timeout=scaled(3))
        assert m["data"]["orderId"] == o1, "o2 is not subscribed and came first"
        # Unsubscribing the last one restores the whole (authorised) stream.
        ws.send_json({"action": "unsubscribe", "orderId": o1})
        ws.wait_for(lambda m: m["event"] == "unsubscribed", timeout=scaled(3))
        set_status(env.db, o2, "PREPARED")
        m, _ = ws.wait_for(lambda m: is_push(m), timeout=scaled(3))
        assert m["data"]["orderId"] == o2


def test_admin_may_subscribe_to_any_order(env):
    ob, _ = create_order(env.db, env.b)
    oa, _ = create_order(env.db, env.a)
    with env.ws(env.tadmin) as ws:
        ws.send_json({"action": "subscribe", "orderId": ob})
        m, _ = ws.wait_for(lambda m: m["event"] in ("subscribed", "error"), timeout=scaled(3))
        assert m["event"] == "subscribed"
        set_status(env.db, oa, "ACCEPTED")
        set_status(env.db, ob, "ACCEPTED")
        m, _ = ws.wait_for(lambda m: is_push(m), timeout=scaled(3))
        assert m["data"]["orderId"] == ob


def test_bad_messages_get_error_events_and_the_socket_stays(env):
    with env.ws(env.ta) as ws:
        for raw, code in (("not json", "bad_request"), ('{"action":"fly"}', "unknown_action"),
                          ('{"action":"subscribe","orderId":"x"}', "bad_request")):
            ws.send_frame(OP_TEXT, raw)
            m, _ = ws.wait_for(lambda m: m["event"] == "error", timeout=scaled(3))
            assert m["data"]["code"] == code
        ws.send_json({"action": "ping"})
        ws.wait_for(lambda m: m["event"] == "pong", timeout=scaled(3))


def test_subscriptions_are_limited_per_socket(env):
    oid, _ = create_order(env.db, env.a)
    with env.ws(env.tadmin) as ws:
        # Foreign/missing ids are refused after a lookup, so use one real order
        # and count only what the server accepted.
        ws.send_json({"action": "subscribe", "orderId": oid})
        ws.wait_for(lambda m: m["event"] == "subscribed", timeout=scaled(3))
        ids = []
        with env.db.cursor() as cur:
            cur.execute("SELECT (ot_create_order(%s::uuid, %s::jsonb, NULL, NULL)).order_json "
                        "FROM generate_series(1, 70)", (env.b, ITEMS))
            ids = [json.loads(r[0])["id"] for r in cur.fetchall()]
        acks, errors = 0, []
        for i in range(0, 70, 7):  # at most 8 lookups in flight per socket
            for oid2 in ids[i:i + 7]:
                ws.send_json({"action": "subscribe", "orderId": oid2})
            for _ in ids[i:i + 7]:
                m, _ = ws.wait_for(lambda m: m["event"] in ("subscribed", "error"), timeout=scaled(3))
                if m["event"] == "subscribed":
                    acks += 1
                else:
                    errors.append(m["data"]["code"])
        assert acks == 63 and set(errors) == {"too_many_subscriptions"}


# ---------------------------------------------------------------- protocol

def test_ping_is_answered_with_the_same_payload(env):
    with env.ws(env.ta) as ws:
        ws.send_frame(OP_PING, b"abc")
        while True:
            fin, op, payload = ws.recv_frame(scaled(3))
            if op == OP_PONG:
                assert payload == b"abc"
                break


def test_server_pings_and_drops_a_peer_that_never_pongs(server, db):
    e = start_env(server, db, args=["--ws-ping-ms", "200", "--ws-pong-timeout-ms", "300"], live=False)
    # A peer that answers (the client pongs whenever it reads) stays open over several ping periods.
    with e.ws(e.ta) as alive:
        alive.collect(scaled(1.2))
        alive.send_json({"action": "ping"})
        alive.wait_for(lambda m: m["event"] == "pong", timeout=scaled(3))
        assert len(alive.pings) >= 2
    with e.ws(e.ta) as dead:
        dead.auto_pong = False
        fin, op, _ = dead.recv_frame(scaled(2))
        assert op == OP_PING
        assert dead.wait_eof(scaled(3))


def test_close_handshake_echoes_the_code_then_closes_tcp(env):
    with env.ws(env.ta) as ws:
        ws.close(4000, "bye")
        assert ws.wait_close(scaled(3))[0] == 4000
        assert ws.wait_eof(scaled(3))


def test_invalid_utf8_is_1007_even_across_fragments(env):
    with env.ws(env.ta) as ws:
        ws.send_frame(OP_TEXT, b'{"a":"\xe2\x82', fin=False)
        ws.send_frame(OP_CONT, b'("}', fin=True)
        assert ws.wait_close(scaled(3))[0] == 1007
        assert ws.wait_eof(scaled(3))
    with env.ws(env.ta) as ws:
        ws.send_frame(OP_TEXT, b"\xff")
        assert ws.wait_close(scaled(3))[0] == 1007


def test_protocol_errors_are_1002(env):
    for frames in (
        [dict(opcode=OP_TEXT, payload=b"{}", mask=False)],             # unmasked (5.1)
        [dict(opcode=OP_CONT, payload=b"x")],                          # continuation without a message
        [dict(opcode=OP_TEXT, payload=b"{", fin=False), dict(opcode=OP_TEXT, payload=b"}")],
        [dict(opcode=0x3, payload=b"")],                               # reserved opcode
        [dict(opcode=OP_TEXT, payload=b"{}", rsv=4)],                  # RSV1 without an extension
        [dict(opcode=OP_PING, payload=b"x", fin=False)],               # fragmented control frame
    ):
        with env.ws(env.ta) as ws:
            for f in frames:
                ws.send_frame(**f)
            assert ws.wait_close(scaled(3))[0] == 1002, frames


def test_oversized_messages_are_1009(server, db):
    e = start_env(server, db, args=["--ws-max-message", "1024"], live=False)
    with e.ws(e.ta) as ws:
        ws.send_frame(OP_TEXT, b" " * 2000)
        assert ws.wait_close(scaled(3))[0] == 1009
    with e.ws(e.ta) as ws:
        ws.send_frame(OP_TEXT, b" " * 700, fin=False)
        ws.send_frame(OP_CONT, b" " * 700)
        assert ws.wait_close(scaled(3))[0] == 1009
    with e.ws(e.ta) as ws:  # just under the limit is fine
        ws.send_frame(OP_TEXT, b" " * 1000 + b'{"action":"ping"}')
        ws.wait_for(lambda m: m["event"] == "pong", timeout=scaled(3))


def test_binary_messages_get_an_error_event(env):
    with env.ws(env.ta) as ws:
        ws.send_frame(OP_BIN, b"\x00\x01")
        m, _ = ws.wait_for(lambda m: m["event"] == "error", timeout=scaled(3))
        assert m["data"]["code"] == "unsupported"


# ---------------------------------------------------------------- token lifetime

def test_token_expiry_closes_with_4401(env):
    with env.ws(make_token(env.a, exp_delta=2)) as ws:
        code, reason = ws.wait_close(scaled(5))
        assert (code, reason) == (4401, "token expired")


def test_in_band_auth_refreshes_the_expiry(env):
    with env.ws(make_token(env.a, exp_delta=2)) as ws:
        ws.send_json({"action": "auth", "token": make_token(env.b)})
        m, _ = ws.wait_for(lambda m: m["event"] in ("authenticated", "error"), timeout=scaled(3))
        assert m["event"] == "error" and m["data"]["code"] == "forbidden"
        ws.send_json({"action": "auth", "token": make_token(env.a, exp_delta=3600)})
        m, _ = ws.wait_for(lambda m: m["event"] in ("authenticated", "error"), timeout=scaled(3))
        assert m["event"] == "authenticated"
        time.sleep(scaled(3))
        oid, _ = create_order(env.db, env.a)
        ws.wait_for(lambda m: is_push(m, oid), timeout=scaled(3))


# ---------------------------------------------------------------- resume

def test_resume_since_replays_exactly_the_missed_events_then_live(env):
    since = max_seq(env.db)
    mine, other = [], []
    for i in range(5):
        oid, ev = create_order(env.db, env.a)
        mine.append(ev["seq"])
        _, evb = create_order(env.db, env.b)
        other.append(evb["seq"])
        mine.append(set_status(env.db, oid, "ACCEPTED")["seq"])
    # The commits above may still be on their way to the worker's event reader
    # at connect time: those arrive live after the replay, still in order.
    with env.ws(env.ta, query="since=%d" % since) as ws:
        stream = []
        deadline = time.monotonic() + scaled(5)
        while not (any(x["event"] == "resumed" for x in stream) and
                   any(is_push(x) and x["data"]["seq"] == mine[-1] for x in stream)):
            stream.append(ws.recv_msg(max(0.0, deadline - time.monotonic())))
        assert [x["data"]["seq"] for x in stream if is_push(x)] == mine
        acks = [x for x in stream if x["event"] == "resumed"]
        assert len(acks) == 1 and acks[0]["data"]["since"] == since
        replayed = stream.index(acks[0])
        assert acks[0]["data"]["count"] == replayed
        live_oid, live = create_order(env.db, env.a)
        m, between = ws.wait_for(lambda m: is_push(m, live_oid), timeout=scaled(3))
        assert between == [] and m["data"]["seq"] == live["seq"]
    # An admin replays everyone's events, through the in-band action.
    everything = sorted(mine + other + [live["seq"]])
    with env.ws(env.tadmin) as ws:
        ws.send_json({"action": "resume", "since": since})
        m, before = ws.wait_for(lambda m: m["event"] == "resumed", timeout=scaled(5))
        assert [x["data"]["seq"] for x in before] == everything
        assert m["data"]["count"] == len(everything)


def test_resume_under_concurrent_commits_has_no_gap_and_no_duplicate(env):
    since = max_seq(env.db)
    with env.db.cursor() as cur:
        cur.execute("SELECT (ot_create_order(%s::uuid, %s::jsonb, NULL, NULL)).event_json "
                    "FROM generate_series(1, 1200)", (env.a, ITEMS))  # > 2 replay pages
    with env.ws(env.ta, query="since=%d" % since) as ws:
        # Commits racing the replay: they must come exactly once, after it.
        with env.db.cursor() as cur:
            cur.execute("SELECT (ot_create_order(%s::uuid, %s::jsonb, NULL, NULL)).event_json "
                        "FROM generate_series(1, 50)", (env.a, ITEMS))
        last = max_seq(env.db)
        got = []
        deadline = time.monotonic() + scaled(20)
        while (not got or got[-1] < last) and time.monotonic() < deadline:
            m = ws.recv_msg(scaled(5))
            if is_push(m):
                got.append(m["data"]["seq"])
        with env.db.cursor() as cur:
            cur.execute("SELECT seq FROM order_events WHERE user_id = %s AND seq > %s ORDER BY seq", (env.a, since))
            want = [r[0] for r in cur.fetchall()]
        assert got == want


# ---------------------------------------------------------------- slow clients, drain

def test_client_that_stops_reading_is_dropped_and_rss_stays_bounded(server, db):
    # ASan's quarantine keeps up to 256 MB of freed blocks resident, so under ASan
    # RSS would measure the sanitizer, not the server: shrink it to a few MB.
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4"} if ASAN else None
    e = start_env(server, db, args=["--ws-max-queue", "65536"], env=env)
    pid = worker_pids(e.srv)[0]
    base = rss_kb(pid)
    ws = e.ws(e.tadmin, rcvbuf=4096)  # never reads from here on
    with e.ws(e.tadmin) as reader:
        big = json.dumps([{"productId": "sku-%04d" % i, "qty": 1} for i in range(40)])  # ~1.3 KB events
        with db.cursor() as cur:
            cur.execute("SELECT count(*) FROM (SELECT ot_create_order(%s::uuid, %s::jsonb, NULL, NULL) "
                        "FROM generate_series(1, 3000)) s", (e.a, big))
        # A reader that keeps up gets everything while the other is dropped.
        n = 0
        while n < 3000:
            if is_push(reader.recv_msg(scaled(10))):
                n += 1
    status, _, body = request(e.port, "GET", "/metrics")
    text = body.decode() if isinstance(body, bytes) else str(body)
    dropped = sum(float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("ordertrack_ws_slow_clients_dropped_total"))
    assert dropped >= 1
    assert rss_kb(pid) - base < 30 * 1024, "worker RSS grew by %d KB" % (rss_kb(pid) - base)
    # The dropped client, once it reads, finds far fewer than 3000 events and then the end.
    count, closed = 0, False
    try:
        while True:
            fin, op, payload = ws.recv_frame(scaled(5))
            if op == OP_TEXT:
                count += 1
            if op == OP_CLOSE:
                assert struct.unpack("!H", payload[:2])[0] == 1008
    except Closed:
        closed = True
    except socket.timeout:
        pass
    ws.shutdown()
    assert closed and count < 3000


def test_sigterm_closes_sockets_with_1001_and_the_worker_exits(env):
    with env.ws(env.ta) as ws:
        env.srv.proc.send_signal(signal.SIGTERM)
        assert ws.wait_close(scaled(5))[0] == 1001
        assert ws.wait_eof(scaled(5))
    assert env.srv.proc.wait(timeout=scaled(10)) == 0
