"""GET /orders/:id/events (issue 16): the append-only audit trail of one order,
admins only."""

import uuid

import pytest

from conftest import make_token, mk_user, request


@pytest.fixture
def srv(server):
    return server(workers=1)


def place(port, token):
    st, _, o = request(port, "POST", "/orders", {"items": [{"productId": "sku-1", "qty": 2}]}, token=token)
    assert st == 201, o
    return o


def test_admin_reads_every_event_in_version_order(srv, db):
    cust, admin = mk_user(db), mk_user(db, role="ADMIN")
    ct, at = make_token(cust), make_token(admin, role="ADMIN")
    o = place(srv.port, ct)
    for s in ("ACCEPTED", "PREPARED", "CANCELED"):
        st, _, body = request(srv.port, "PATCH", "/orders/%s/status" % o["id"], {"status": s}, token=at)
        assert st == 200, body
    st, _, body = request(srv.port, "GET", "/orders/%s/events" % o["id"], token=at)
    assert st == 200, body
    assert body["orderId"] == o["id"] and body["truncated"] is False
    ev = body["events"]
    assert [e["version"] for e in ev] == [1, 2, 3, 4]
    assert [e["status"] for e in ev] == ["CREATED", "ACCEPTED", "PREPARED", "CANCELED"]
    assert [e["type"] for e in ev] == ["order.created", "order.updated", "order.updated", "order.canceled"]
    # Who made each change is recorded (customers' own events may carry no actor).
    assert all(e["actor"] == admin for e in ev[1:])
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM order_events WHERE order_id = %s ORDER BY version", (o["id"],))
        assert [e["seq"] for e in ev] == [r[0] for r in cur.fetchall()]


def test_customer_even_the_owner_gets_403(srv, db):
    cust = mk_user(db)
    o = place(srv.port, make_token(cust))
    st, _, body = request(srv.port, "GET", "/orders/%s/events" % o["id"], token=make_token(cust))
    assert st == 403 and body["error"]["code"] == "forbidden", body


def test_without_token_401_bad_id_400_unknown_404(srv, db):
    at = make_token(mk_user(db, role="ADMIN"), role="ADMIN")
    assert request(srv.port, "GET", "/orders/%s/events" % uuid.uuid4())[0] == 401
    st, _, body = request(srv.port, "GET", "/orders/not-a-uuid/events", token=at)
    assert st == 400 and body["error"]["code"] == "invalid_id", body
    st, _, body = request(srv.port, "GET", "/orders/%s/events" % uuid.uuid4(), token=at)
    assert st == 404 and body["error"]["code"] == "not_found", body
