"""The orders API over real sockets against the real PostgreSQL: create, read,
list, change status; strict validation; access control (IDOR); pagination.

Every refused write is checked against the tables: no order row and no event
row may appear for it."""

import base64
import json
import re
import urllib.parse
import uuid

import pytest

from conftest import make_token, mk_user, request
from lifecycle import ALLOWED, PATH_TO, STATUSES

EVENT_TYPE = {"DELIVERED": "order.completed", "CANCELED": "order.canceled"}
ORDER_KEYS = {"id", "userId", "status", "items", "createdAt", "updatedAt", "version", "nextStatuses"}
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ITEMS = [{"productId": "sku-1", "qty": 2}, {"productId": "sku-2", "qty": 1}]


class Api:
    """One running server and three users: an admin, customers a and b."""

    def __init__(self, srv, db):
        self.port = srv.port
        self.db = db
        self.admin = mk_user(db, "ADMIN")
        self.a = mk_user(db)
        self.b = mk_user(db)
        self.t_admin = make_token(self.admin, "ADMIN")
        self.t_a = make_token(self.a)
        self.t_b = make_token(self.b)

    def req(self, method, path, body=None, token=None, headers=None):
        return request(self.port, method, path, body=body, token=token, headers=headers)

    def create(self, token=None, items=ITEMS, **kw):
        st, h, body = self.req("POST", "/orders", {"items": items, **kw}, token or self.t_a)
        assert st == 201, body
        return body

    def patch(self, oid, status, token=None, if_match=None, body=None):
        headers = {"If-Match": if_match} if if_match is not None else None
        return self.req("PATCH", "/orders/%s/status" % oid, body if body is not None else {"status": status},
                        token or self.t_admin, headers)

    def counts(self):
        with self.db.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_events)")
            return cur.fetchone()

    def events(self, oid):
        with self.db.cursor() as cur:
            cur.execute("SELECT version, type, status::text, actor::text FROM order_events "
                        "WHERE order_id = %s ORDER BY seq", (oid,))
            return cur.fetchall()


@pytest.fixture
def api(server, db):
    return Api(server(workers=1), db)


def assert_error(resp, status, code=None, mentions=None):
    st, h, body = resp
    assert st == status, body
    assert "application/json" in h.get("content-type", ""), h
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    if code:
        assert body["error"]["code"] == code, body
    if mentions:
        assert mentions in body["error"]["message"], body
    return body["error"]


# ---------------------------------------------------------------- POST /orders

def test_create_returns_201_with_the_order_its_location_and_one_event(api):
    before = api.counts()
    st, h, o = api.req("POST", "/orders", {"items": ITEMS}, api.t_a)
    assert st == 201, o
    assert set(o) == ORDER_KEYS
    assert o["userId"] == api.a and o["status"] == "CREATED" and o["version"] == 1
    assert o["items"] == ITEMS
    assert ISO_MS_Z.match(o["createdAt"]) and ISO_MS_Z.match(o["updatedAt"])
    assert h["location"] == "/orders/" + o["id"]
    assert api.counts() == (before[0] + 1, before[1] + 1)
    assert api.events(o["id"]) == [(1, "order.created", "CREATED", api.a)]


def test_create_accepts_the_boundaries_of_every_field(api):
    items = [{"productId": "p" * 64, "qty": 10000}] + [{"productId": "x%d" % i, "qty": 1} for i in range(99)]
    o = api.create(items=items)
    assert len(o["items"]) == 100 and o["items"][0] == {"productId": "p" * 64, "qty": 10000}
    # A charset parameter is still JSON.
    st, _, o2 = api.req("POST", "/orders", json.dumps({"items": ITEMS}), api.t_a,
                        {"Content-Type": "application/json; charset=utf-8"})
    assert st == 201, o2


def test_create_stores_items_normalised_not_as_sent(api):
    body = '{ "items" : [ { "qty" : 3 , "productId" : "caf\\u00e9" } ] }'
    st, _, o = api.req("POST", "/orders", body, api.t_a, {"Content-Type": "application/json"})
    assert st == 201, o
    assert o["items"] == [{"productId": "caf\u00e9", "qty": 3}]


def _items(n):
    return [{"productId": "p%d" % i, "qty": 1} for i in range(n)]


BAD_BODIES = [
    ("missing items", {}, "items"),
    ("items null", {"items": None}, "items"),
    ("items empty", {"items": []}, "items"),
    ("items not array", {"items": {"productId": "a", "qty": 1}}, "items"),
    ("items string", {"items": "a"}, "items"),
    ("101 items", {"items": _items(101)}, "items"),
    ("item not object", {"items": [{"productId": "a", "qty": 1}, 7]}, "items[1]"),
    ("productId missing", {"items": [{"qty": 1}]}, "items[0].productId"),
    ("productId empty", {"items": [{"productId": "", "qty": 1}]}, "items[0].productId"),
    ("productId 65 chars", {"items": [{"productId": "p" * 65, "qty": 1}]}, "items[0].productId"),
    ("productId huge", {"items": [{"productId": "p" * 5000, "qty": 1}]}, "items[0].productId"),
    ("productId number", {"items": [{"productId": 5, "qty": 1}]}, "items[0].productId"),
    ("productId null", {"items": [{"productId": None, "qty": 1}]}, "items[0].productId"),
    ("productId control char", {"items": [{"productId": "a\nb", "qty": 1}]}, "items[0].productId"),
    ("qty 0", {"items": [{"productId": "a", "qty": 0}]}, "items[0].qty"),
    ("qty negative", {"items": [{"productId": "a", "qty": -1}]}, "items[0].qty"),
    ("qty 10001", {"items": [{"productId": "a", "qty": 10001}]}, "items[0].qty"),
    ("qty 1.5", {"items": [{"productId": "a", "qty": 1.5}]}, "items[0].qty"),
    ("qty string", {"items": [{"productId": "a", "qty": "2"}]}, "items[0].qty"),
    ("qty missing", {"items": [{"productId": "a"}]}, "items[0].qty"),
    ("qty huge", {"items": [{"productId": "a", "qty": 10 ** 30}]}, "items[0].qty"),
    ("qty bool", {"items": [{"productId": "a", "qty": True}]}, "items[0].qty"),
    ("second item bad", {"items": [{"productId": "a", "qty": 1}, {"productId": "b", "qty": 0}]}, "items[1].qty"),
    ("unknown top field", {"items": ITEMS, "note": "x"}, "note"),
    ("unknown item field", {"items": [{"productId": "a", "qty": 1, "price": 3}]}, "price"),
    ("userId not uuid", {"items": ITEMS, "userId": "abc"}, "userId"),
    ("userId number", {"items": ITEMS, "userId": 5}, "userId"),
]


@pytest.mark.parametrize("why,body,field", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_create_refuses_invalid_body_naming_the_field(api, why, body, field):
    before = api.counts()
    err = assert_error(api.req("POST", "/orders", body, api.t_a), 400, mentions=field)
    assert api.counts() == before, err


@pytest.mark.parametrize("raw", [
    b"", b"{", b'{"items": [', b"[]", b'"items"', b"null", b"{'items': []}", b'{"items": [] } x',
    b'{"items": [{"productId": "a", "qty": 1},]}', b"\xff\xfe",
], ids=["empty", "open", "truncated", "array", "string", "null", "single-quotes", "trailing", "trailing-comma",
        "not-utf8"])
def test_create_refuses_malformed_json(api, raw):
    before = api.counts()
    assert_error(api.req("POST", "/orders", raw, api.t_a, {"Content-Type": "application/json"}), 400)
    assert api.counts() == before


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonp",
                                   "application/json-seq"])
def test_create_refuses_other_content_types_with_415(api, ctype):
    before = api.counts()
    headers = {"Content-Type": ctype} if ctype else {}
    assert_error(api.req("POST", "/orders", json.dumps({"items": ITEMS}), api.t_a, headers), 415)
    assert api.counts() == before


def test_create_for_another_user_is_admin_only(api):
    before = api.counts()
    assert_error(api.req("POST", "/orders", {"items": ITEMS, "userId": api.b}, api.t_a), 403)
    assert api.counts() == before
    # Naming oneself is allowed.
    assert api.create(userId=api.a)["userId"] == api.a
    o = api.create(token=api.t_admin, userId=api.b)
    assert o["userId"] == api.b
    assert api.events(o["id"]) == [(1, "order.created", "CREATED", api.admin)]


def test_admin_create_for_unknown_user_is_400_and_writes_nothing(api):
    before = api.counts()
    assert_error(api.req("POST", "/orders", {"items": ITEMS, "userId": str(uuid.uuid4())}, api.t_admin), 400,
                 mentions="userId")
    assert api.counts() == before


def test_idempotency_key_replay_returns_200_with_the_same_order(api):
    h = {"Idempotency-Key": "key-" + uuid.uuid4().hex}
    st1, _, o1 = api.req("POST", "/orders", {"items": ITEMS}, api.t_a, h)
    before = api.counts()
    st2, _, o2 = api.req("POST", "/orders", {"items": ITEMS}, api.t_a, h)
    assert (st1, st2) == (201, 200)
    assert o1 == o2
    assert api.counts() == before
    # Same key, other user: an independent order.
    st3, _, o3 = api.req("POST", "/orders", {"items": ITEMS}, api.t_b, h)
    assert st3 == 201 and o3["id"] != o1["id"] and o3["userId"] == api.b


def test_idempotency_key_reused_with_other_items_is_422_and_writes_nothing(api):
    h = {"Idempotency-Key": "key-" + uuid.uuid4().hex}
    st1, _, o1 = api.req("POST", "/orders", {"items": ITEMS}, api.t_a, h)
    assert st1 == 201
    before = api.counts()
    other = [{"productId": "something-else", "qty": 7}]
    assert_error(api.req("POST", "/orders", {"items": other}, api.t_a, h), 422, mentions="Idempotency-Key")
    assert api.counts() == before
    # The same items in another key order / spacing are the same request.
    st3, _, o3 = api.req("POST", "/orders", json.dumps({"items": ITEMS}, indent=2), api.t_a,
                         dict(h, **{"Content-Type": "application/json"}))
    assert st3 == 200 and o3["id"] == o1["id"]


@pytest.mark.parametrize("key", ["k" * 201, "has space", "tab\tkey", "caf\u00e9"], ids=["201", "space", "tab", "utf8"])
def test_bad_idempotency_key_is_400(api, key):
    before = api.counts()
    hdr = {"Idempotency-Key": key.encode("utf-8").decode("latin-1")}
    assert_error(api.req("POST", "/orders", {"items": ITEMS}, api.t_a, hdr), 400, mentions="Idempotency-Key")
    assert api.counts() == before


def test_idempotency_key_of_200_bytes_is_accepted(api):
    st, _, o = api.req("POST", "/orders", {"items": ITEMS}, api.t_a, {"Idempotency-Key": "k" * 200})
    assert st == 201, o


# ---------------------------------------------------------------- GET /orders/:id

def test_get_order_by_owner_and_admin(api):
    o = api.create()
    # The same order; only the moves offered differ by role (test_page_api.py).
    for tok, moves in ((api.t_a, []), (api.t_admin, ["ACCEPTED", "CANCELED"])):
        st, _, got = api.req("GET", "/orders/" + o["id"], token=tok)
        assert st == 200 and got == dict(o, nextStatuses=moves)
    # Upper-case spelling of the same UUID is the same order.
    st, _, got = api.req("GET", "/orders/" + o["id"].upper(), token=api.t_a)
    assert st == 200 and got["id"] == o["id"]


def test_own_uuid_in_upper_case_is_still_oneself(api):
    # RFC 4122 §3: UUIDs are case-insensitive on input.
    st, _, o = api.req("POST", "/orders", {"items": ITEMS, "userId": api.a.upper()}, api.t_a)
    assert st == 201 and o["userId"] == api.a, o
    st, _, body = api.req("GET", "/orders/user/" + api.a.upper(), token=api.t_a)
    assert st == 200 and [x["id"] for x in body["orders"]] == [o["id"]], body
    upper = make_token(api.a.upper())
    st, _, got = api.req("GET", "/orders/" + o["id"], token=upper)
    assert st == 200 and got["id"] == o["id"], got


def test_get_someone_elses_order_is_404_like_a_missing_one(api):
    o = api.create()
    other = assert_error(api.req("GET", "/orders/" + o["id"], token=api.t_b), 404)
    missing = assert_error(api.req("GET", "/orders/" + str(uuid.uuid4()), token=api.t_b), 404)
    assert other == missing


@pytest.mark.parametrize("bad", ["123", "not-a-uuid", "0" * 36, str(uuid.uuid4())[:-1] + "g",
                                 str(uuid.uuid4()) + "0", str(uuid.uuid4()).replace("-", "")])
def test_bad_uuid_in_path_is_400(api, bad):
    assert_error(api.req("GET", "/orders/" + bad, token=api.t_a), 400, mentions="id")
    assert_error(api.req("GET", "/orders/user/" + bad, token=api.t_admin), 400, mentions="id")
    before = api.counts()
    assert_error(api.patch(bad, "ACCEPTED"), 400, mentions="id")
    assert api.counts() == before


def test_orders_endpoints_need_a_token(api):
    o = api.create()
    for method, path, body in [("POST", "/orders", {"items": ITEMS}), ("GET", "/orders/" + o["id"], None),
                               ("GET", "/orders/user/" + api.a, None),
                               ("PATCH", "/orders/%s/status" % o["id"], {"status": "ACCEPTED"})]:
        st, h, _ = api.req(method, path, body)
        assert st == 401, (method, path)
        assert "bearer" in h.get("www-authenticate", "").lower()


# ---------------------------------------------------------------- IDOR

def test_customer_cannot_reach_another_customers_orders(api):
    o = api.create(token=api.t_b)
    before = api.counts()
    assert_error(api.req("GET", "/orders/" + o["id"], token=api.t_a), 404)
    assert_error(api.req("GET", "/orders/user/" + api.b, token=api.t_a), 403)
    assert_error(api.patch(o["id"], "ACCEPTED", token=api.t_a), 403)
    # Even on their own order a customer may not change the status.
    mine = api.create()
    assert_error(api.patch(mine["id"], "CANCELED", token=api.t_a), 403)
    assert api.counts() == (before[0] + 1, before[1] + 1)
    assert api.req("GET", "/orders/" + o["id"], token=api.t_b)[2]["status"] == "CREATED"


# ---------------------------------------------------------------- PATCH /orders/:id/status

@pytest.mark.parametrize("frm", STATUSES)
def test_status_transition_matrix(api, frm):
    for to in STATUSES:
        o = api.create()
        for step in PATH_TO[frm]:
            st, _, o = api.patch(o["id"], step)
            assert st == 200, o
        assert o["status"] == frm
        n_events = len(api.events(o["id"]))
        assert n_events == o["version"]
        st, _, body = api.patch(o["id"], to)
        if (frm, to) in ALLOWED:
            assert st == 200, (frm, to, body)
            assert body["status"] == to and body["version"] == o["version"] + 1
            ev = api.events(o["id"])
            assert len(ev) == n_events + 1
            assert ev[-1] == (o["version"] + 1, EVENT_TYPE.get(to, "order.updated"), to, api.admin)
        else:
            err = assert_error((st, _, body), 409, code="invalid_transition")
            assert "current status %s" % frm in err["message"], (frm, to, err)
            assert len(api.events(o["id"])) == n_events
            got = api.req("GET", "/orders/" + o["id"], token=api.t_admin)[2]
            assert got["status"] == frm and got["version"] == o["version"]


def test_versions_increment_through_the_life_cycle(api):
    o = api.create()
    versions = [o["version"]]
    for step in PATH_TO["DELIVERED"]:
        st, _, o = api.patch(o["id"], step)
        assert st == 200
        versions.append(o["version"])
    assert versions == [1, 2, 3, 4, 5]
    assert [e[0] for e in api.events(o["id"])] == versions
    assert [e[1] for e in api.events(o["id"])] == ["order.created"] + ["order.updated"] * 3 + ["order.completed"]


@pytest.mark.parametrize("if_match", ['"1"', "1", 'W/"1"'])
def test_if_match_with_the_current_version_applies(api, if_match):
    o = api.create()
    st, _, body = api.patch(o["id"], "ACCEPTED", if_match=if_match)
    assert st == 200 and body["version"] == 2, body


def test_if_match_with_a_stale_version_is_412_and_changes_nothing(api):
    o = api.create()
    assert api.patch(o["id"], "ACCEPTED", if_match='"1"')[0] == 200
    before = api.counts()
    err = assert_error(api.patch(o["id"], "PREPARED", if_match='"1"'), 412)
    assert "version 2" in err["message"], err
    assert api.counts() == before
    assert api.patch(o["id"], "PREPARED", if_match='"2"')[2]["version"] == 3


@pytest.mark.parametrize("if_match", ['"abc"', '""', "W/", "-1", '"1', "1.0", "*", '"99999999999"', '"1", "2"'])
def test_malformed_if_match_is_400(api, if_match):
    o = api.create()
    before = api.counts()
    assert_error(api.patch(o["id"], "ACCEPTED", if_match=if_match), 400, mentions="If-Match")
    assert api.counts() == before


@pytest.mark.parametrize("body,field", [
    ({}, "status"), ({"status": None}, "status"), ({"status": 3}, "status"), ({"status": "accepted"}, "status"),
    ({"status": "SHIPPING"}, "status"), ({"status": ""}, "status"), ({"status": "ACCEPTED", "note": 1}, "note"),
], ids=["missing", "null", "number", "lowercase", "unknown", "empty", "unknown-field"])
def test_patch_refuses_invalid_body_naming_the_field(api, body, field):
    o = api.create()
    before = api.counts()
    assert_error(api.patch(o["id"], None, body=body), 400, mentions=field)
    assert api.counts() == before


def test_patch_refuses_malformed_json_and_wrong_content_type(api):
    o = api.create()
    before = api.counts()
    path = "/orders/%s/status" % o["id"]
    assert_error(api.req("PATCH", path, b'{"status":', api.t_admin, {"Content-Type": "application/json"}), 400)
    assert_error(api.req("PATCH", path, b'{"status":"ACCEPTED"}', api.t_admin, {"Content-Type": "text/plain"}), 415)
    assert_error(api.req("PATCH", path, b'{"status":"ACCEPTED"}', api.t_admin), 415)
    assert api.counts() == before


def test_patch_unknown_order_is_404(api):
    before = api.counts()
    assert_error(api.patch(str(uuid.uuid4()), "ACCEPTED"), 404)
    assert api.counts() == before


# ---------------------------------------------------------------- GET /orders/user/:id

def _pages(api, user, token, limit):
    pages, cursor = [], None
    while True:
        path = "/orders/user/%s?limit=%d" % (user, limit)
        if cursor:
            path += "&cursor=" + cursor
        st, _, body = api.req("GET", path, token=token)
        assert st == 200, body
        assert set(body) == {"orders", "nextCursor", "seq"}
        pages.append(body["orders"])
        cursor = body["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10, "pagination does not end"


def test_pagination_25_orders_by_10_gives_3_pages_without_dup_or_miss(api):
    ids = [api.create(token=api.t_b)["id"] for _ in range(25)]
    api.create()  # another user's order must not show up
    for token in (api.t_b, api.t_admin):
        pages = _pages(api, api.b, token, 10)
        assert [len(p) for p in pages] == [10, 10, 5]
        got = [o["id"] for p in pages for o in p]
        assert sorted(got) == sorted(ids) and len(set(got)) == 25
        # Newest first, ties broken by id (createdAt in the JSON has only
        # milliseconds: the order is checked against the stored microseconds).
        with api.db.cursor() as cur:
            cur.execute("SELECT id::text FROM orders WHERE user_id = %s ORDER BY created_at DESC, id DESC",
                        (api.b,))
            assert got == [r[0] for r in cur.fetchall()]
        assert all(o["userId"] == api.b for p in pages for o in p)


def test_pagination_default_limit_and_empty_list(api):
    for _ in range(21):
        api.create()
    st, _, body = api.req("GET", "/orders/user/" + api.a, token=api.t_a)
    assert st == 200 and len(body["orders"]) == 20 and body["nextCursor"]
    st, _, body = api.req("GET", "/orders/user/" + api.b, token=api.t_b)
    assert st == 200 and body == {"orders": [], "nextCursor": None, "seq": body.get("seq")}
    assert isinstance(body["seq"], int)
    # An unknown user, for an admin, is simply empty.
    st, _, body = api.req("GET", "/orders/user/%s" % uuid.uuid4(), token=api.t_admin)
    assert st == 200 and body == {"orders": [], "nextCursor": None, "seq": body.get("seq")}
    assert isinstance(body["seq"], int)


@pytest.mark.parametrize("q", ["limit=0", "limit=101", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=1000"])
def test_list_refuses_bad_limit(api, q):
    assert_error(api.req("GET", "/orders/user/%s?%s" % (api.a, q), token=api.t_a), 400, mentions="limit")


def _b64(s):
    return base64.urlsafe_b64encode(s.encode()).rstrip(b"=").decode()


def test_list_refuses_a_tampered_cursor(api):
    for _ in range(3):
        api.create()
    st, _, body = api.req("GET", "/orders/user/%s?limit=2" % api.a, token=api.t_a)
    good = body["nextCursor"]
    assert good
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)).decode()
    ts, oid = raw.split("|")
    bad = [
        "!!!", good[:-3], good + "A", good + "AA", "x" * 300, _b64("no separator"), _b64(ts + "|not-a-uuid"),
        _b64(ts + "|" + oid + "\0"), _b64("9" * 19 + "|" + oid), _b64("-1|" + oid), _b64(" " + ts + "|" + oid),
        _b64("not a time|" + oid), _b64("|" + oid), _b64(ts + "|"), _b64("9999999-99-99 99:99|" + oid),
        _b64("2024-01-01 00:00:00+00|" + oid + "|x"),
    ]
    for cursor in bad:
        cursor = urllib.parse.quote(cursor, safe="")
        err = assert_error(api.req("GET", "/orders/user/%s?limit=2&cursor=%s" % (api.a, cursor), token=api.t_a),
                           400, mentions="cursor")
        assert err["code"] == "invalid_query", (cursor, err)
    st, _, page2 = api.req("GET", "/orders/user/%s?limit=2&cursor=%s" % (api.a, good), token=api.t_a)
    assert st == 200 and len(page2["orders"]) == 1


# ---------------------------------------------------------------- what customers see of events (issue 10, finding 8)

def test_events_pushed_to_customers_do_not_carry_the_acting_admins_id(server, db):
    from conftest import scaled
    from test_ws import is_push, wait_live
    from wsclient import WS
    srv = server(workers=1)
    api = Api(srv, db)
    wait_live(srv, db, api.t_admin)
    with WS.connect(srv.port, api.t_a) as wa, WS.connect(srv.port, api.t_admin) as wadm:
        o = api.create(api.t_a)
        st, _, body = api.req("PATCH", "/orders/%s/status" % o["id"], {"status": "ACCEPTED"}, token=api.t_admin)
        assert st == 200, body
        for ws, who in ((wa, "customer"), (wadm, "admin")):
            m, _ = ws.wait_for(lambda m: is_push(m, o["id"], "ACCEPTED"), timeout=scaled(3))
            if who == "customer":
                assert "actor" not in m["data"], m
                assert set(m["data"]) >= {"seq", "version", "eventId", "orderId", "userId", "type", "status"}, m
            else:
                assert m["data"]["actor"] == api.admin, m
    # The replay a customer gets on resume follows the same rule.
    with WS.connect(srv.port, api.t_a, query="since=0") as wa:
        m, _ = wa.wait_for(lambda m: is_push(m, o["id"], "ACCEPTED"), timeout=scaled(3))
        assert "actor" not in m["data"], m
    with WS.connect(srv.port, api.t_admin, query="since=0") as wadm:
        m, _ = wadm.wait_for(lambda m: is_push(m, o["id"], "ACCEPTED"), timeout=scaled(3))
        assert m["data"]["actor"] == api.admin, m
