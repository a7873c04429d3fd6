"""What the dashboards need from the API (issue 15): every order answered and
every event pushed carries nextStatuses for the caller's role; list answers
carry the stream position (seq) they are consistent with, so a page that
resumes its socket from there misses nothing and sees nothing twice."""

import pytest

from conftest import scaled
from lifecycle import ALLOWED, STATUSES
from test_orders import Api
from test_ws import is_push, wait_live
from wsclient import WS

FORWARD = ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"]


def expected(status, role):
    if role != "ADMIN":
        return []
    return [t for t in STATUSES if (status, t) in ALLOWED]


@pytest.fixture
def api(server, db):
    return Api(server(workers=1), db)


def test_every_order_answer_carries_next_statuses_for_the_role(api):
    o = api.create(api.t_a)
    assert o["nextStatuses"] == [], "customers move nothing"
    for tok, role in ((api.t_a, "CUSTOMER"), (api.t_admin, "ADMIN")):
        st, _, got = api.req("GET", "/orders/" + o["id"], token=tok)
        assert st == 200 and sorted(got["nextStatuses"]) == sorted(expected("CREATED", role)), got
    # Forward moves first: the page offers the common move as the default.
    st, _, got = api.req("GET", "/orders/" + o["id"], token=api.t_admin)
    assert got["nextStatuses"] == ["ACCEPTED", "CANCELED"]
    for prev, nxt in zip(FORWARD, FORWARD[1:]):
        st, _, body = api.patch(o["id"], nxt)
        assert st == 200, body
        assert sorted(body["nextStatuses"]) == sorted(expected(nxt, "ADMIN")), body
        # Each offered move is accepted by the server; nothing else is.
        for t in STATUSES:
            assert ((nxt, t) in ALLOWED) == (t in body["nextStatuses"]), (nxt, t)
    st, _, lst = api.req("GET", "/orders/user/%s" % api.a, token=api.t_admin)
    assert lst["orders"][0]["nextStatuses"] == []
    st, _, lst = api.req("GET", "/orders/user/%s" % api.a, token=api.t_a)
    assert all(x["nextStatuses"] == [] for x in lst["orders"])


def test_list_nextstatuses_per_row(api):
    a = api.create(api.t_a)
    b = api.create(api.t_a)
    assert api.patch(b["id"], "ACCEPTED")[0] == 200
    assert api.patch(b["id"], "PREPARED")[0] == 200
    assert api.patch(b["id"], "SHIPPED")[0] == 200
    st, _, lst = api.req("GET", "/orders/user/%s" % api.a, token=api.t_admin)
    got = {o["id"]: o["nextStatuses"] for o in lst["orders"]}
    assert got == {a["id"]: ["ACCEPTED", "CANCELED"], b["id"]: ["DELIVERED"]}


def test_pushed_events_carry_next_statuses_per_role(server, db):
    srv = server(workers=1)
    api = Api(srv, db)
    wait_live(srv, db, api.t_admin)
    with WS.connect(srv.port, api.t_a) as wa, WS.connect(srv.port, api.t_admin) as wadm:
        o = api.create(api.t_a)
        assert api.patch(o["id"], "ACCEPTED")[0] == 200
        m, _ = wa.wait_for(lambda m: is_push(m, o["id"], "ACCEPTED"), timeout=scaled(3))
        assert m["data"]["nextStatuses"] == [] and "actor" not in m["data"]
        m, _ = wadm.wait_for(lambda m: is_push(m, o["id"], "ACCEPTED"), timeout=scaled(3))
        assert m["data"]["nextStatuses"] == ["PREPARED", "CANCELED"], m
    # Replayed events (since=) are encoded by the same function.
    with WS.connect(srv.port, api.t_admin, query="since=0") as wadm:
        m, _ = wadm.wait_for(lambda m: is_push(m, o["id"], "CREATED"), timeout=scaled(3))
        assert m["data"]["nextStatuses"] == ["ACCEPTED", "CANCELED"], m


def test_list_seq_resumes_without_gap_or_duplicate(server, db):
    srv = server(workers=1)
    api = Api(srv, db)
    wait_live(srv, db, api.t_admin)
    before = api.create(api.t_a)
    # Wait until the event is through the worker, so the watermark is past it.
    with WS.connect(srv.port, api.t_a, query="since=0") as w:
        w.wait_for(lambda m: is_push(m, before["id"], "CREATED"), timeout=scaled(3))
    st, _, snap = api.req("GET", "/orders/user/%s" % api.a, token=api.t_a)
    assert st == 200 and isinstance(snap["seq"], int) and snap["seq"] >= 0
    with db.cursor() as cur:
        cur.execute("SELECT max(seq) FROM order_events WHERE order_id = %s", (before["id"],))
        before_seq = cur.fetchone()[0]
    assert snap["seq"] >= before_seq, "the snapshot claims what it reflects"
    seen = {o["id"]: o["version"] for o in snap["orders"]}
    after = api.create(api.t_a)
    assert api.patch(before["id"], "ACCEPTED")[0] == 200
    with WS.connect(srv.port, api.t_a, query="since=%d" % snap["seq"]) as w:
        got = [x["data"] for x in w.collect(scaled(1.0)) if x.get("event") == "order.updated"]
    # What the page applies: events newer than the version it holds.
    fresh = [e for e in got if e["version"] > seen.get(e["orderId"], 0)]
    assert {(e["orderId"], e["status"]) for e in fresh} >= {(after["id"], "CREATED"), (before["id"], "ACCEPTED")}
    assert len(fresh) == len({(e["orderId"], e["version"]) for e in fresh}), "no duplicate"
    assert (before["id"], "CREATED") not in {(e["orderId"], e["status"]) for e in got}, "no replay of the snapshot"


def test_refresh_renews_a_live_token_and_refuses_a_dead_one(api):
    import base64
    import json as _json
    import time

    from conftest import make_token

    old = make_token(api.a, exp_delta=30)
    st, h, body = api.req("POST", "/auth/refresh", token=old)
    assert st == 200, body
    assert h["cache-control"] == "no-store"
    assert body["expiresAt"] > time.time() + 60
    seg = body["token"].split(".")[1]
    claims = _json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    assert claims["sub"] == api.a and claims["role"] == "CUSTOMER" and claims["exp"] == body["expiresAt"]
    # The new token works where the old did.
    st, _, _ = api.req("GET", "/orders/user/%s" % api.a, token=body["token"])
    assert st == 200
    st, _, body = api.req("POST", "/auth/refresh", token=make_token(api.a, exp_delta=-5))
    assert st == 401 and body["error"]["code"] == "token_expired", body
    st, _, body = api.req("POST", "/auth/refresh")
    assert st == 401, body
    st, _, body = api.req("POST", "/auth/refresh", token=make_token(api.admin, "ADMIN"))
    assert st == 200
    seg = body["token"].split(".")[1]
    assert _json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))["role"] == "ADMIN"
