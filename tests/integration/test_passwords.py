"""Password policy and hashing cost (issue 16): minimum length (configurable
upward), common passwords and password == email refused, scrypt at
N=2^16,r=8,p=2 for new hashes, older cheaper hashes still accepted and
upgraded on login, Cache-Control: no-store on the token answer."""

import base64
import hashlib
import os
import time
import uuid

import pytest

from conftest import request, scaled


def register(port, password, email=None):
    email = email or "pw-%s@example.test" % uuid.uuid4().hex[:10]
    return request(port, "POST", "/auth/register", {"name": "P", "email": email, "password": password}), email


def stored_hash(db, email):
    with db.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE lower(email) = lower(%s)", (email,))
        row = cur.fetchone()
        return row and row[0]


def scrypt_hash(password, log2n, r, p):
    """The stored format, computed independently with Python's hashlib."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=1 << log2n, r=r, p=p, dklen=32, maxmem=1 << 30)
    return "scrypt$%d$%d$%d$%s$%s" % (log2n, r, p, base64.b64encode(salt).decode(), base64.b64encode(key).decode())


@pytest.mark.parametrize("password", ["password", "Password1", "12345678", "qwertyuiop", "iloveyou", "zzzzzzzzzz"])
def test_common_passwords_are_refused(server, password):
    srv = server(workers=1)
    (st, _, body), _ = register(srv.port, password)
    assert st == 400, body
    assert body["error"]["code"] == "weak_password" and "common" in body["error"]["message"], body


def test_password_equal_to_the_email_is_refused(server):
    srv = server(workers=1)
    email = "Same-%s@Example.test" % uuid.uuid4().hex[:6]
    (st, _, body), _ = register(srv.port, email.lower(), email=email)
    assert st == 400 and body["error"]["code"] == "weak_password" and "email" in body["error"]["message"], body


def test_minimum_length_is_configurable_upward(server):
    srv = server(workers=1, args=["--password-min-length", "12"])
    (st, _, body), _ = register(srv.port, "b7#kq2!mzpt")  # 11 bytes
    assert st == 400 and body["error"]["code"] == "weak_password", body
    (st, _, body), _ = register(srv.port, "b7#kq2!mzpt9")  # 12 bytes
    assert st == 201, body


@pytest.mark.parametrize("args,what", [(["--password-min-length", "7"], "password-min-length"),
                                       (["--scrypt-log2n", "15"], "scrypt-log2n"),
                                       (["--scrypt-log2n", "19"], "scrypt-log2n")])
def test_settings_below_the_floor_are_refused(args, what):
    from test_process import _run_serve
    from conftest import JWT_SECRET, free_port
    rc, text = _run_serve(["--listen", "127.0.0.1:%d" % free_port(), "--workers", "1"] + args,
                          {"JWT_SECRET": JWT_SECRET})
    assert rc != 0 and what in text, text


def test_new_hashes_use_the_raised_cost_and_login_answers_no_store(server, db):
    srv = server(workers=1)
    (st, _, body), email = register(srv.port, "b7#kq2!mzpt")
    assert st == 201, body
    assert stored_hash(db, email).startswith("scrypt$16$8$2$")
    st, h, body = request(srv.port, "POST", "/auth/login", {"email": email, "password": "b7#kq2!mzpt"})
    assert st == 200, body
    assert h.get("cache-control") == "no-store"


def test_old_cheaper_hash_is_accepted_and_upgraded_on_login(server, db):
    srv = server(workers=1)
    email = "old-%s@example.test" % uuid.uuid4().hex[:8]
    old = scrypt_hash("b7#kq2!mzpt", 15, 8, 1)  # the former default
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (name, email, role, password_hash) VALUES ('Old', %s, 'CUSTOMER', %s)",
                    (email, old))
    st, _, body = request(srv.port, "POST", "/auth/login", {"email": email, "password": "b7#kq2!mzpt"})
    assert st == 200, body
    deadline = time.monotonic() + scaled(10)
    while stored_hash(db, email) == old:
        assert time.monotonic() < deadline, "hash was not upgraded"
        time.sleep(0.05)
    new = stored_hash(db, email)
    assert new.startswith("scrypt$16$8$2$")
    st, _, body = request(srv.port, "POST", "/auth/login", {"email": email, "password": "b7#kq2!mzpt"})
    assert st == 200, body
    st, _, body = request(srv.port, "POST", "/auth/login", {"email": email, "password": "wrong-password-1"})
    assert st == 401
    assert stored_hash(db, email) == new  # a verified hash at full cost is left alone
