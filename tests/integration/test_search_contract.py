"""The /search/* contract: GET /search/orders, /search/orders/:id/history and
/search/analytics, whatever backend answers them. Every test runs once per
backend in BACKENDS (PostgreSQL, the embedded default; Elasticsearch, written
by the search indexer: a node started once per session, see
test_search_indexer.py) and expects the same JSON. On Elasticsearch every
request first waits until the answers' freshness covers the last event in
the database (the indexer caught up).

The analytics expectations are computed by hand from a fixed data set in the
first days of 2001 (a window no other test writes into), inserted straight
into the tables with chosen timestamps."""

import json
import time
import urllib.parse
import uuid

import psycopg2
import pytest

from conftest import make_token, mk_user, request
from test_search_indexer import es, es_env, es_node, set_cursor  # noqa: F401 (es_node: a fixture)
from test_ws_scale import NO_LIMITS, api_create, api_patch

BACKENDS = ["postgres", "elasticsearch"]

ADMIN = object()  # stands for the fixed data set's admin (a token's user must exist)
STATUSES = ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED"]
WINDOW = ("2001-01-01T00:00:00Z", "2001-01-03T00:00:00Z")  # 2001-01-01 is a Monday


def insert_order(cur, user, path, actor=None):
    """An order whose life is path = [(status, iso time), ...]: one event per
    step (version 1..n), the row in the last state. Returns its id."""
    oid = str(uuid.uuid4())
    items = json.dumps([{"productId": "sku-1", "qty": 1}])
    cur.execute(
        "INSERT INTO orders (id, user_id, status, items, created_at, updated_at, version) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (oid, user, path[-1][0], items, path[0][1], path[-1][1], len(path)),
    )
    for v, (status, at) in enumerate(path, start=1):
        typ = "order.created" if v == 1 else "order.canceled" if status == "CANCELED" else (
            "order.completed" if status == "DELIVERED" else "order.updated")
        cur.execute(
            "INSERT INTO order_events (order_id, version, user_id, type, status, payload, actor, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (oid, v, user, typ, status, json.dumps({"items": json.loads(items)}), actor or user, at),
        )
    return oid


@pytest.fixture(scope="module")
def fixed(db_url):
    """Customers A and B and five orders around WINDOW (see the test for the arithmetic)."""
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        floor = cur.fetchone()[0]
    admin = mk_user(conn, role="ADMIN")
    a, b = mk_user(conn), mk_user(conn)
    with conn.cursor() as cur:
        o = {
            "o1": insert_order(cur, a, [("CREATED", "2001-01-01T10:00:00Z"), ("ACCEPTED", "2001-01-01T10:30:00Z"),
                                        ("PREPARED", "2001-01-01T11:30:00Z"), ("SHIPPED", "2001-01-01T13:30:00Z"),
                                        ("DELIVERED", "2001-01-02T13:30:00Z")], actor=admin),
            "o2": insert_order(cur, a, [("CREATED", "2001-01-01T10:15:00Z"), ("ACCEPTED", "2001-01-01T10:25:00Z"),
                                        ("CANCELED", "2001-01-01T11:25:00Z")], actor=admin),
            "o3": insert_order(cur, b, [("CREATED", "2001-01-01T23:00:00Z")]),
            "o4": insert_order(cur, b, [("CREATED", "2001-01-02T10:40:00Z"), ("ACCEPTED", "2001-01-02T10:42:00Z")],
                               actor=admin),
            # Created before the window: out of every count; its ACCEPTED stint
            # begins inside but has not ended.
            "o5": insert_order(cur, a, [("CREATED", "2000-12-31T23:59:00Z"), ("ACCEPTED", "2001-01-01T00:09:00Z")],
                               actor=admin),
        }
    conn.close()
    return {"a": a, "b": b, "admin": admin, "floor": floor, **o}


@pytest.fixture(scope="module")
def es_index(es_node, fixed, db_url):
    """One index prefix for the module; the indexer's cursor before the fixed
    data set, so the first server indexes from there and the next ones go on."""
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    set_cursor(conn, fixed["floor"])
    conn.close()
    prefix = "ot-c%s" % uuid.uuid4().hex[:10]
    yield prefix
    es("DELETE", "/%s-*" % prefix)
    for t in ("", "-orders"):  # the events and the orders templates
        es("DELETE", "/_index_template/%s%s" % (prefix, t))


def max_seq(db_url):
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(params=BACKENDS)
def api(request, server, fixed, db_url):
    """start(args=[...]) -> a GET helper on a server answering /search/* from the backend."""
    backend = request.param
    env = es_env(request.getfixturevalue("es_index")) if backend == "elasticsearch" else {}

    def start(args=()):
        srv = server(workers=1, args=NO_LIMITS + list(args), env=env)
        admin = make_token(fixed["admin"], role="ADMIN", exp_delta=7200)

        def caught_up():
            """Until both indices' freshness covers the database's last event."""
            want = max_seq(db_url)
            deadline = time.monotonic() + 30
            for path in ("/search/orders?limit=1", "/search/orders/%s/history" % fixed["o1"]):
                while True:
                    st, body = request_(srv.port, path, admin)
                    if st == 200 and body["freshness"]["seq"] >= want:
                        break
                    assert time.monotonic() < deadline, (path, st, body, want)
                    time.sleep(0.05)

        def get(path, token=ADMIN, **params):
            if token is ADMIN:
                token = admin
            if backend == "elasticsearch":
                caught_up()
            q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
            return request_(srv.port, path + ("?" + q if q else ""), token)
        get.port = srv.port
        return get
    return start


def request_(port, path, token):
    st, _, body = request(port, "GET", path, token=token)
    return st, body


def tok(user):
    return make_token(user, exp_delta=7200)


def page_all(get, token, cursor=None, **params):
    """Every page of /search/orders from cursor; returns (ids in order, pages)."""
    ids, pages = [], 0
    while True:
        st, body = get("/search/orders", token, cursor=cursor, **params)
        assert st == 200, body
        assert isinstance(body["freshness"]["seq"], int)
        ids += [o["id"] for o in body["orders"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            return ids, pages
        assert pages < 100


# ---------------------------------------------------------------- /search/orders

def test_orders_are_the_same_json_as_get_orders_id_newest_first_with_filters(api, fixed, server):
    get = api()
    st, body = get("/search/orders", **{"from": WINDOW[0], "to": WINDOW[1]})
    assert st == 200, body
    ids = [o["id"] for o in body["orders"]]
    # created_at descending: o4 (02 10:40), o3 (01 23:00), o2 (01 10:15), o1 (01 10:00)
    assert ids == [fixed["o4"], fixed["o3"], fixed["o2"], fixed["o1"]]
    assert body["nextCursor"] is None
    st, one = get("/orders/" + fixed["o1"])
    assert st == 200
    assert body["orders"][3] == one
    # nextStatuses: the moves an order may make next (codec/lifecycle.c, on every order answer)
    assert set(one) == {"id", "userId", "status", "items", "createdAt", "updatedAt", "version", "nextStatuses"}
    assert one["nextStatuses"] == []  # DELIVERED is terminal

    st, body = get("/search/orders", status="ACCEPTED", **{"from": "2000-12-31", "to": WINDOW[1]})
    assert st == 200 and [o["id"] for o in body["orders"]] == [fixed["o4"], fixed["o5"]]
    st, body = get("/search/orders", userId=fixed["a"], **{"from": "2000-01-01", "to": "2002-01-01"})
    assert [o["id"] for o in body["orders"]] == [fixed["o2"], fixed["o1"], fixed["o5"]]
    st, body = get("/search/orders", orderId=fixed["o3"])
    assert [o["id"] for o in body["orders"]] == [fixed["o3"]]
    # from is inclusive, to exclusive (both on createdAt)
    st, body = get("/search/orders", **{"from": "2001-01-01T10:00:00Z", "to": "2001-01-01T10:15:00Z"})
    assert [o["id"] for o in body["orders"]] == [fixed["o1"]]
    st, body = get("/search/orders", status="SHIPPED", **{"from": WINDOW[0], "to": WINDOW[1]})
    assert st == 200 and body["orders"] == [] and body["nextCursor"] is None


def test_cursor_pages_are_stable_and_complete_with_ties_and_concurrent_inserts(api, db):
    get = api()
    user = mk_user(db)
    with db.cursor() as cur:
        made = [insert_order(cur, user, [("CREATED", "2003-05-05T10:%02d:00Z" % m)]) for m in range(7)]
        # three orders in one microsecond: the id breaks the tie
        made += [insert_order(cur, user, [("CREATED", "2003-05-05T11:00:00Z")]) for _ in range(3)]
    t = tok(user)
    want = sorted(made[7:], reverse=True) + made[6::-1]
    ids, pages = page_all(get, t, limit=3)
    assert ids == want and pages == 4
    ids, pages = page_all(get, t, limit=10)
    assert ids == want and pages == 1  # an exact last page has no nextCursor
    # A page taken, then a newer order appears: the next page continues where
    # the first stopped (keyset), neither repeating nor skipping.
    st, first = get("/search/orders", t, limit=4)
    with db.cursor() as cur:
        insert_order(cur, user, [("CREATED", "2003-05-06T00:00:00Z")])
    rest, _ = page_all(get, t, limit=4, cursor=first["nextCursor"]) if first["nextCursor"] else ([], 0)
    assert [o["id"] for o in first["orders"]] + rest == want


def test_a_customer_only_ever_sees_their_own_orders(api, fixed):
    get = api()
    ta, tb = tok(fixed["a"]), tok(fixed["b"])
    ids, _ = page_all(get, tb, limit=1)
    assert ids == [fixed["o4"], fixed["o3"]]
    st, body = get("/search/orders", tb, orderId=fixed["o1"])
    assert st == 200 and body["orders"] == []
    st, body = get("/search/orders", tb, userId=fixed["a"])
    assert st == 403 and body["error"]["message"].startswith("userId")
    st, body = get("/search/orders", ta, userId=fixed["a"].upper(), limit=100)
    assert st == 200 and {o["userId"] for o in body["orders"]} == {fixed["a"]}
    st, body = get("/search/orders/%s/history" % fixed["o3"], ta)
    assert st == 404
    st, body = get("/search/analytics", ta, **{"from": WINDOW[0], "to": WINDOW[1]})
    assert st == 200 and body["countsByStatus"] == dict.fromkeys(STATUSES, 0) | {"DELIVERED": 1, "CANCELED": 1}
    assert [d["orderId"] for d in body["delayed"]] == []
    st, body = get("/search/analytics", tb, **{"from": WINDOW[0], "to": WINDOW[1]})
    assert [d["orderId"] for d in body["delayed"]] == [fixed["o3"], fixed["o4"]]
    st, _ = get("/search/orders", None)
    assert st == 401


# ---------------------------------------------------------------- history

def test_history_in_seq_order_with_the_actor_for_admins_only(api, fixed):
    get = api()
    st, body = get("/search/orders/%s/history" % fixed["o1"])
    assert st == 200, body
    assert body["orderId"] == fixed["o1"]
    ev = body["events"]
    assert [e["status"] for e in ev] == ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"]
    assert [e["version"] for e in ev] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in ev] == sorted(e["seq"] for e in ev)
    assert ev[1]["timestamp"] == "2001-01-01T10:30:00.000Z"
    assert all(e["actor"] == fixed["admin"] for e in ev)
    assert all(uuid.UUID(e["eventId"]) for e in ev)
    assert isinstance(body["freshness"]["seq"], int)
    st, mine = get("/search/orders/%s/history" % fixed["o1"].upper(), tok(fixed["a"]))
    assert st == 200 and mine["orderId"] == fixed["o1"]
    assert [e["eventId"] for e in mine["events"]] == [e["eventId"] for e in ev]
    assert all("actor" not in e for e in mine["events"])
    st, body = get("/search/orders/%s/history" % uuid.uuid4())
    assert st == 404 and body["error"]["code"] == "not_found"
    st, body = get("/search/orders/not-a-uuid/history")
    assert st == 400


# ---------------------------------------------------------------- analytics

def test_analytics_match_the_hand_computed_figures(api, fixed):
    get = api()
    st, body = get("/search/analytics", interval="day", **{"from": WINDOW[0], "to": WINDOW[1]})
    assert st == 200, body
    assert body["from"] == "2001-01-01T00:00:00.000Z" and body["to"] == "2001-01-03T00:00:00.000Z"
    assert body["interval"] == "day"
    # o1 DELIVERED, o2 CANCELED, o3 CREATED, o4 ACCEPTED; o5 was created before the window
    assert body["countsByStatus"] == {"CREATED": 1, "ACCEPTED": 1, "PREPARED": 0, "SHIPPED": 0,
                                      "DELIVERED": 1, "CANCELED": 1}
    assert body["trend"] == [{"start": "2001-01-01T00:00:00.000Z", "count": 3},
                             {"start": "2001-01-02T00:00:00.000Z", "count": 1}]
    hours = [0] * 24
    hours[10], hours[23] = 3, 1
    assert body["busiest"] == {"hourOfDay": hours, "dayOfWeek": [3, 1, 0, 0, 0, 0, 0],
                               "peakHour": 10, "peakDay": "MON"}
    tis = body["timeInStatus"]
    # Stints that began in the window and ended: CREATED 1800 (o1), 600 (o2),
    # 120 (o4); ACCEPTED 3600 (o1), 3600 (o2); PREPARED 7200; SHIPPED 86400.
    # p95 interpolates: [120, 600, 1800] at rank 0.95 * 2 = 1.9 -> 600 + 0.9 * 1200.
    assert tis["CREATED"] == {"avgSeconds": 840, "p95Seconds": 1680}
    assert tis["ACCEPTED"] == {"avgSeconds": 3600, "p95Seconds": 3600}
    assert tis["PREPARED"] == {"avgSeconds": 7200, "p95Seconds": 7200}
    assert tis["SHIPPED"] == {"avgSeconds": 86400, "p95Seconds": 86400}
    assert tis["DELIVERED"] == {"avgSeconds": None, "p95Seconds": None}
    assert tis["CANCELED"] == {"avgSeconds": None, "p95Seconds": None}
    # Not finished, past the default SLA (3600 s), oldest first; o5 is out of scope.
    late = body["delayed"]
    assert [(d["orderId"], d["userId"], d["status"], d["since"]) for d in late] == [
        (fixed["o3"], fixed["b"], "CREATED", "2001-01-01T23:00:00.000Z"),
        (fixed["o4"], fixed["b"], "ACCEPTED", "2001-01-02T10:42:00.000Z")]
    want = time.time() - 978390000  # 2001-01-01T23:00:00Z
    assert abs(late[0]["seconds"] - want) < 120
    assert isinstance(body["freshness"]["seq"], int)

    st, hourly = get("/search/analytics", interval="hour", **{"from": WINDOW[0], "to": WINDOW[1]})
    assert st == 200 and len(hourly["trend"]) == 48
    nz = {b["start"]: b["count"] for b in hourly["trend"] if b["count"]}
    assert nz == {"2001-01-01T10:00:00.000Z": 2, "2001-01-01T23:00:00.000Z": 1, "2001-01-02T10:00:00.000Z": 1}
    # A window starting mid-bucket: the first bucket starts at from rounded down.
    st, part = get("/search/analytics", interval="day", **{"from": "2001-01-01T10:10:00Z", "to": "2001-01-02T00:00:00Z"})
    assert part["trend"] == [{"start": "2001-01-01T00:00:00.000Z", "count": 2}]
    assert part["countsByStatus"]["DELIVERED"] == 0 and part["countsByStatus"]["CANCELED"] == 1
    # An empty range: every key still there.
    st, empty = get("/search/analytics", **{"from": "1999-06-01T00:00:00Z", "to": "1999-06-01T00:00:00Z"})
    assert st == 200 and empty["trend"] == [] and empty["countsByStatus"] == dict.fromkeys(STATUSES, 0)
    assert empty["busiest"]["peakHour"] is None and empty["busiest"]["peakDay"] is None
    assert empty["delayed"] == []


def test_the_sla_is_configurable_per_status(api, db):
    get = api(["--search-sla-seconds", "3600", "--search-sla-created-seconds", "60"])
    user = mk_user(db)
    with db.cursor() as cur:
        cur.execute("SELECT ot_iso(now() - interval '120 seconds'), ot_iso(now() - interval '2 hours')")
        two_min, two_h = cur.fetchone()
        c = insert_order(cur, user, [("CREATED", two_min)])
        insert_order(cur, user, [("CREATED", two_h), ("ACCEPTED", two_min)])  # 120 s < 3600 s: on time
        s = insert_order(cur, user, [("CREATED", two_h), ("ACCEPTED", two_h), ("PREPARED", two_h),
                                     ("SHIPPED", two_h)])
    st, body = get("/search/analytics", tok(user), **{"from": "2000-01-01", "to": "2100-01-01"}, interval="day")
    assert st == 400 and body["error"]["message"].startswith("interval")  # 36525 day buckets > 1000
    st, body = get("/search/analytics", tok(user), interval="hour")  # default: the last 24 hours
    assert st == 200, body
    assert [(d["orderId"], d["status"]) for d in body["delayed"]] == [(s, "SHIPPED"), (c, "CREATED")]
    assert 110 <= body["delayed"][1]["seconds"] <= 400
    assert len(body["trend"]) in (24, 25)


def test_freshness_covers_a_write_just_made(api, db):
    get = api()
    user = mk_user(db)
    order = api_create(get.port, tok(user))
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM order_events WHERE order_id = %s", (order["id"],))
        seq = cur.fetchone()[0]
    deadline = time.monotonic() + 5
    while True:
        st, body = get("/search/orders", tok(user))
        if body["freshness"]["seq"] >= seq or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body["freshness"]["seq"] >= seq
    assert [o["id"] for o in body["orders"]] == [order["id"]]


def wait_fresh(get, token, seq, **params):
    """The first /search/orders answer whose freshness covers seq."""
    deadline = time.monotonic() + 5
    while True:
        st, body = get("/search/orders", token, **params)
        assert st == 200, body
        if body["freshness"]["seq"] >= seq or time.monotonic() > deadline:
            assert body["freshness"]["seq"] >= seq
            return body
        time.sleep(0.05)


def last_seq(db, oid):
    with db.cursor() as cur:
        cur.execute("SELECT max(seq) FROM order_events WHERE order_id = %s", (oid,))
        return cur.fetchone()[0]


def test_as_of_lists_every_page_as_the_orders_stood_at_that_seq(api, db, fixed):
    # What the admin page's CSV export relies on: pages asked with asOf=S
    # describe the moment S, whatever changed since.
    get = api()
    user = mk_user(db)
    t, adm = tok(user), make_token(fixed["admin"], role="ADMIN", exp_delta=7200)
    o1, o2 = api_create(get.port, t), api_create(get.port, t)
    before = wait_fresh(get, t, last_seq(db, o2["id"]))
    s = before["freshness"]["seq"]
    assert [o["id"] for o in before["orders"]] == [o2["id"], o1["id"]]
    st, _, moved = request(get.port, "PATCH", "/orders/%s/status" % o1["id"], {"status": "ACCEPTED"}, token=adm)
    assert st == 200, moved
    o3 = api_create(get.port, t)
    now = wait_fresh(get, t, last_seq(db, o3["id"]))
    assert [(o["id"], o["status"]) for o in now["orders"]] == [(o3["id"], "CREATED"), (o2["id"], "CREATED"),
                                                              (o1["id"], "ACCEPTED")]

    st, at = get("/search/orders", t, asOf=s)
    assert st == 200, at
    assert at["orders"] == before["orders"]  # o1 back at version 1, o3 not there yet
    assert at["freshness"] == {"seq": s}
    # The status filter is the status at S; pages keep the position.
    assert [o["id"] for o in get("/search/orders", t, asOf=s, status="CREATED")[1]["orders"]] == [o2["id"], o1["id"]]
    assert get("/search/orders", t, asOf=s, status="ACCEPTED")[1]["orders"] == []
    assert page_all(get, t, asOf=s, limit=1) == ([o2["id"], o1["id"]], 2)
    # A version between the first and the current one: its event's time.
    api_patch(get.port, adm, o1["id"], "PREPARED")
    newest = wait_fresh(get, t, last_seq(db, o1["id"]))
    st, mid = get("/search/orders", t, asOf=now["freshness"]["seq"], orderId=o1["id"])
    with db.cursor() as cur:
        cur.execute("SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM order_events "
                    "WHERE order_id = %s AND version = 2", (o1["id"],))
        at2 = cur.fetchone()[0]
    assert [(o["status"], o["version"]) for o in mid["orders"]] == [("ACCEPTED", 2)]
    assert mid["orders"][0]["updatedAt"].startswith(at2[:19]), (mid["orders"][0]["updatedAt"], at2)
    # At the newest position it is the plain listing.
    st, same = get("/search/orders", t, asOf=newest["freshness"]["seq"])
    assert same["orders"] == newest["orders"]
    # Beyond what this server has seen committed: not final yet, retry.
    st, body = get("/search/orders", t, asOf=newest["freshness"]["seq"] + 1000)
    assert st == 409 and body["error"]["code"] == "not_yet", body
    assert body["error"]["message"].startswith("asOf:")


# ---------------------------------------------------------------- malformed parameters

@pytest.mark.parametrize("path,params,name", [
    ("/search/orders", {"status": "LOST"}, "status"),
    ("/search/orders", {"status": "created"}, "status"),
    ("/search/orders", {"from": "2001-13-01"}, "from"),
    ("/search/orders", {"to": "yesterday"}, "to"),
    ("/search/orders", {"from": "2001-01-01T10:00:00+0100"}, "from"),
    ("/search/orders", {"from": "2001-01-02", "to": "2001-01-01"}, "from"),
    ("/search/orders", {"limit": "0"}, "limit"),
    ("/search/orders", {"limit": "101"}, "limit"),
    ("/search/orders", {"limit": "-1"}, "limit"),
    ("/search/orders", {"limit": "ten"}, "limit"),
    ("/search/orders", {"limit": "1e1"}, "limit"),
    ("/search/orders", {"cursor": "not-a-cursor"}, "cursor"),
    ("/search/orders", {"cursor": "MTIzfG5vdC1hLXV1aWQ"}, "cursor"),  # "123|not-a-uuid"
    ("/search/orders", {"userId": "42"}, "userId"),
    ("/search/orders", {"orderId": "x" * 36}, "orderId"),
    ("/search/orders", {"asOf": "-1"}, "asOf"),
    ("/search/orders", {"asOf": "12a"}, "asOf"),
    ("/search/orders", {"asOf": "9" * 19}, "asOf"),
    ("/search/analytics", {"interval": "week"}, "interval"),
    ("/search/analytics", {"from": "2001-01-01T25:00:00Z"}, "from"),
    ("/search/analytics", {"from": "2001-01-03", "to": "2001-01-01"}, "from"),
    ("/search/analytics", {"from": "3000-01-01"}, "from"),  # later than the default to (now)
    ("/search/analytics", {"from": "1990-01-01", "to": "2001-01-01", "interval": "hour"}, "interval"),
])
def test_malformed_parameters_are_400_naming_the_parameter(api, path, params, name):
    get = api()
    st, body = get(path, **params)
    assert st == 400, body
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["message"].startswith(name + ":"), body


def test_the_search_flags_are_range_checked(run_cli_bin):
    for flag, bad in (("--search-sla-seconds", "0"), ("--search-max-buckets", "0"),
                      ("--search-delayed-max", "10001"), ("--search-sla-shipped-seconds", "31536001")):
        p = run_cli_bin("serve", flag, bad)
        assert p.returncode == 2 and flag in p.stderr


@pytest.fixture
def run_cli_bin():
    from conftest import run_cli
    return lambda *a: run_cli(*a, env={"JWT_SECRET": "x" * 40})
