"""Per-client-IP token bucket: bursts beyond the limit get 429 with Retry-After,
monitoring endpoints stay reachable, and the bucket refills."""
import http.client
import json
import os
import selectors
import socket
import threading
import time
import uuid

from conftest import request, scaled

NO_DB = {"DATABASE_URL": None}


def test_ip_limit_gives_429_with_retry_after_and_spares_healthz(server):
    srv = server(workers=1, env=NO_DB, args=["--rate-ip", "2", "--rate-ip-burst", "5"])
    codes = [request(srv.port, "GET", "/no-such-route")[0] for _ in range(8)]
    assert codes[:5] == [404] * 5
    assert 429 in codes[5:]
    status, headers, body = request(srv.port, "GET", "/no-such-route")
    if status == 429:
        assert int(headers["retry-after"]) >= 1
        assert body["error"]["code"] == "rate_limited"
    # Health and metrics are never throttled.
    assert all(request(srv.port, "GET", "/healthz")[0] == 200 for _ in range(10))
    time.sleep(1.1)  # 2 tokens/s: at least one back
    assert request(srv.port, "GET", "/no-such-route")[0] == 404


def test_ip_limit_on_by_default_with_room_for_normal_use(server):
    # Was test_ip_limit_off_by_default (issue 10 #6: limits must be on by
    # default). Normal use passes; a flood from one address does not.
    srv = server(workers=1, env=NO_DB)
    assert all(request(srv.port, "GET", "/nope")[0] == 404 for _ in range(150))
    codes = [request(srv.port, "GET", "/nope")[0] for _ in range(300)]
    assert 429 in codes, codes


# ---------------------------------------------------------------- login flooding (issue 10, finding 6)

class LoginFlood:
    """Keeps `n` bogus logins in flight from 127.0.0.1 over `n` keep-alive
    connections, driven by one selectors thread so the attacker costs little
    CPU: each connection sends a login with a random email and, `pause`
    seconds after the answer, the next one. The pause keeps this a queueing
    attack, not a CPU flood of two shared cores (no limiter answers that;
    connection caps are another finding)."""

    def __init__(self, port, n=100, pause=0.1):
        self.port, self.n, self.pause = port, n, pause
        self.stop = threading.Event()
        self.statuses = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _request():
        body = json.dumps({"email": "nobody-%s@example.test" % uuid.uuid4().hex, "password": "wrong password"})
        return ("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode()

    def _open(self, sel):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        sel.register(s, selectors.EVENT_WRITE, [self._request(), b""])

    def _answered(self, st):
        """Pops one complete response off st[1]; its status, or None."""
        head, sep, rest = st[1].partition(b"\r\n\r\n")
        if not sep:
            return None
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        if len(rest) < n:
            return None
        st[1] = rest[n:]
        return head[9:12].decode(errors="replace")

    def _count(self, code):
        self.statuses[code] = self.statuses.get(code, 0) + 1

    def _run(self):
        sel = selectors.DefaultSelector()
        for _ in range(self.n):
            self._open(sel)
        due = []  # (time, socket): next request on a kept-alive connection
        while not self.stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, s = due.pop(0)
                st = sel.get_key(s).data
                st[0] = self._request()
                sel.modify(s, selectors.EVENT_WRITE, st)
            for key, ev in sel.select(0.01):
                s, st = key.fileobj, key.data
                try:
                    if ev & selectors.EVENT_WRITE and st[0]:
                        st[0] = st[0][s.send(st[0]):]
                        if not st[0]:
                            sel.modify(s, selectors.EVENT_READ, st)
                        continue
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    st[1] += chunk
                    code = self._answered(st)
                    if code:
                        self._count(code)
                        pass  # keep reading: only EOF matters until the next request
                        due.append((time.monotonic() + self.pause, s))
                    continue
                # Closed by the server: a new connection takes its place.
                sel.unregister(s)
                s.close()
                self._count("closed")
                self._open(sel)
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def _login_from(port, src, email, password):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(30), source_address=(src, 0))
    t0 = time.monotonic()
    try:
        conn.request("POST", "/auth/login", body=json.dumps({"email": email, "password": password}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - t0
    finally:
        conn.close()


def test_real_login_from_another_address_stays_fast_while_100_bogus_logins_are_in_flight(server):
    srv = server(workers=2)  # default limits: this is what "on by default" must survive
    email = "real-%s@example.test" % uuid.uuid4().hex[:10]
    st, _, body = request(srv.port, "POST", "/auth/register", {"name": "Real", "email": email, "password": "real password"},
                          headers={}, timeout=30)
    assert st == 201, body
    base = []  # the same logins without the flood, for the failure message
    for _ in range(5):
        st, dt = _login_from(srv.port, "127.0.0.2", email, "real password")
        assert st == 200
        base.append(round(dt, 3))
        time.sleep(0.1)
    with LoginFlood(srv.port, 100) as flood:
        time.sleep(scaled(1.0))
        took = []
        for _ in range(5):
            st, dt = _login_from(srv.port, "127.0.0.2", email, "real password")
            assert st == 200, st
            took.append(round(dt, 3))
            time.sleep(0.1)
        seen = dict(flood.statuses)
    assert max(took) < scaled(1.0), (took, seen, "without the flood: %s" % base)
    # The flood was refused before the password hash (429/503), not queued.
    assert seen.get("429", 0) + seen.get("503", 0) > 100, seen


def test_auth_throttle_is_per_address_and_before_the_password_hash(server):
    # 0.1/s: no token comes back while the five logins run, however long each
    # one's password hash takes on a loaded machine (scrypt 2^16 runs for
    # unknown users too); one does after 10 s.
    srv = server(workers=1, args=["--auth-rate-ip", "0.1", "--auth-rate-ip-burst", "3"])
    body = {"email": "nobody@example.test", "password": "whatever pass"}
    codes = [request(srv.port, "POST", "/auth/login", body)[0] for _ in range(5)]
    assert codes[:3] == [401] * 3 and codes[3:] == [429, 429], codes
    st, h, err = request(srv.port, "POST", "/auth/login", body)
    assert st == 429 and int(h["retry-after"]) >= 1 and err["error"]["code"] == "rate_limited", err
    # Register shares the bucket: /auth/* as a whole.
    reg = {"name": "N", "email": "x-%s@example.test" % uuid.uuid4().hex[:8], "password": "longenough"}
    assert request(srv.port, "POST", "/auth/register", reg)[0] == 429
    # Another address has its own bucket.
    assert _login_from(srv.port, "127.0.0.3", "nobody@example.test", "whatever pass")[0] == 401
    time.sleep(10.5)
    assert request(srv.port, "POST", "/auth/login", body)[0] == 401


def test_kdf_queue_per_address_share_and_global_bound(server):
    # Unthrottled bucket, so only the KDF queue bounds apply: 1 job per address, 3 in all.
    srv = server(workers=1, args=["--auth-rate-ip", "1000", "--auth-rate-ip-burst", "1000",
                                  "--kdf-max-per-ip", "1", "--kdf-max-queue", "3"])
    results = []

    def one(src):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=scaled(30), source_address=(src, 0))
        conn.request("POST", "/auth/login", body=json.dumps({"email": "n@example.test", "password": "x" * 8}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        results.append((src, r.status, r.getheader("Retry-After"), json.loads(r.read())["error"]["code"]))
        conn.close()

    # Phase 1: six at once from one address: one hash runs, five are 429 at once.
    threads = [threading.Thread(target=one, args=("127.0.0.1",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    mine = list(results)
    codes = [r[1] for r in mine]
    # Never two hashes at once for one address (a 401 beyond the first only if
    # it finished before a straggler arrived).
    assert len(codes) == 6 and set(codes) <= {401, 429} and codes.count(429) >= 4, mine
    assert all(r[3] == "too_many_logins" and r[2] == "1" for r in mine if r[1] == 429), mine
    # Phase 2: nine addresses at once, against a queue of 3: beyond it, 503 busy with Retry-After.
    del results[:]
    threads = [threading.Thread(target=one, args=("127.0.0.%d" % i,)) for i in range(2, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    full = [r for r in results if r[1] == 503]
    assert full and all(r[2] == "1" and r[3] == "busy" for r in full), results
    assert all(r[1] in (401, 503) for r in results), results
    assert 1 <= sum(1 for r in results if r[1] == 401) < 9, results
