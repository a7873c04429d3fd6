"""Fixtures and helpers for the integration tests: the real binary, real
sockets, the real PostgreSQL (stdlib + psycopg2 only).

Run through scripts/test-integration.sh (`make integration`), which creates a
fresh database, migrates it and exports OT_DATABASE_URL and OT_BIN.

Fixtures:   db_url, db, server (a factory: srv = server(workers=2, args=[...], env={...}))
Helpers:    from conftest import free_port, http_raw, request, make_token, mk_user, scaled, JWT_SECRET,
            own_database (a database of a test's own: `with own_database(db_url, "kafka") as (url, conn)`)
"""

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import psycopg2
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OT_BIN = os.environ.get("OT_BIN") or os.path.join(ROOT, "build", "ordertrack")
ASAN = os.environ.get("OT_ASAN") == "1"
# Sanitized builds run several times slower: every deadline stretches with them.
TIME_SCALE = 3.0 if ASAN else 1.0
JWT_SECRET = "test-secret-9f2c1e7a4b6d8053e1f0a2b4c6d8e0f1"

# Settings from the caller's shell must not leak into the server under test.
_SCRUB_ENV = ("DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "ELASTICSEARCH_URL", "JWT_SECRET")
_SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error:")


def scaled(seconds):
    return seconds * TIME_SCALE


# ---------------------------------------------------------------- database

@pytest.fixture(scope="session")
def db_url():
    url = os.environ.get("OT_DATABASE_URL")
    if not url:
        pytest.skip("OT_DATABASE_URL is not set: run through scripts/test-integration.sh")
    return url


@pytest.fixture
def db(db_url):
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def mk_user(db, role="CUSTOMER", email=None, name=None):
    """Inserts a user directly (dummy password hash) and returns its id as str."""
    email = email or "u-%s@example.test" % uuid.uuid4().hex[:12]
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO users (name, email, role, password_hash) VALUES (%s, %s, %s, %s) RETURNING id",
            (name or "Test " + role.title(), email, role, "dummy-not-a-hash"),
        )
        return str(cur.fetchone()[0])


# ---------------------------------------------------------------- sockets and HTTP

def free_port():
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until_close(s, timeout):
    """Everything read from socket `s` until the peer closes or `timeout`
    (scaled) seconds pass."""
    out = bytearray()
    deadline = time.monotonic() + scaled(timeout)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(max(0.01, left))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def http_raw(port, data, timeout=2.0):
    """Sends raw bytes and returns everything read until the peer closes or
    `timeout` seconds pass without the connection closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        return read_until_close(s, timeout)


def request(port, method, path, body=None, headers=None, token=None, timeout=5.0):
    """One HTTP request on a fresh connection. Returns (status, headers, body):
    headers as a dict with lower-case names, body parsed when it is JSON, else bytes.
    A dict/list body is sent as JSON; str/bytes are sent as they are."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(timeout))
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        rh = {k.lower(): v for k, v in resp.getheaders()}
        parsed = raw
        if "json" in rh.get("content-type", "") and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
        return resp.status, rh, parsed
    finally:
        conn.close()


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub, role="CUSTOMER", exp_delta=3600, secret=JWT_SECRET, iat=None, header=None, **claims):
    """An HS256 JWT (RFC 7519) signed independently of the server's code, so a
    test compares two implementations. Extra claims override the defaults."""
    now = int(time.time())
    hdr = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    payload = {"sub": str(sub), "role": role, "iat": now if iat is None else iat, "exp": now + exp_delta}
    payload.update(claims)
    signing_input = _b64url(json.dumps(hdr, separators=(",", ":")).encode()) + "." + _b64url(
        json.dumps(payload, separators=(",", ":")).encode()
    )
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64url(sig)


# ---------------------------------------------------------------- the server

class Server:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.log_path = log_path

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """The JSON log lines parsed (other lines, e.g. sanitizer reports, skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends `sig` to the master and waits; returns the exit code (negative:
        killed by that signal). Fails the test when it does not exit in time."""
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("server did not exit within %.1fs of signal %d\n%s" % (scaled(timeout), sig, self.log_tail()))

    def kill(self):
        """SIGKILL to the whole process group: the master and every worker."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _wait_healthy(srv, deadline):
    last = None
    while time.monotonic() < deadline:
        if not srv.alive():
            raise RuntimeError("server exited with %s during start-up" % srv.proc.returncode)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=1.0)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return  # any HTTP answer: readiness of dependencies is for the tests to judge
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError("GET /healthz did not answer in time (last error: %r)" % (last,))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures know at teardown whether the test failed (to show server logs).
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def server(request, tmp_path, db_url):
    """Factory: srv = server(workers=2, args=[...], env={...}, port=None, wait=True).
    env entries override the defaults (JWT_SECRET, DATABASE_URL); a value of None
    removes the variable (e.g. env={"DATABASE_URL": None} for a server without a
    database). Every server started is killed at teardown; its stderr tail is
    printed when the test failed, and sanitizer reports fail the test."""
    started = []

    def start(workers=2, args=(), env=None, port=None, wait=True, start_timeout=10.0):
        port = port or free_port()
        e = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV and not k.startswith("ORDERTRACK_")}
        e["JWT_SECRET"] = JWT_SECRET
        e["DATABASE_URL"] = db_url
        if ASAN:
            e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
            e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        cmd = [OT_BIN, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", str(workers)]
        cmd += [str(a) for a in args]
        log_path = str(tmp_path / ("server-%d-%d.log" % (len(started), port)))
        with open(log_path, "wb") as log:
            # Own process group: teardown kills the master and its workers together.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=e, cwd=ROOT, start_new_session=True)
        srv = Server(proc, port, log_path)
        started.append(srv)
        if wait:
            try:
                _wait_healthy(srv, time.monotonic() + scaled(start_timeout))
            except RuntimeError as err:
                srv.kill()
                pytest.fail("%s\ncommand: %s\n--- server log ---\n%s" % (err, " ".join(cmd), srv.log_tail()))
        return srv

    yield start

    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    reports = []
    for srv in started:
        srv.kill()
        text = srv.log_text()
        if failed:
            print("\n--- server :%d log tail (%s) ---\n%s" % (srv.port, srv.log_path, srv.log_tail()))
        if any(m in text for m in _SANITIZER_MARKS):
            reports.append("server :%d logged a sanitizer report:\n%s" % (srv.port, srv.log_tail(120)))
    if reports:
        pytest.fail("\n\n".join(reports))


# ---------------------------------------------------------------- the CLI

@contextlib.contextmanager
def own_database(db_url, tag, sql_dir=None):
    """(url, autocommit connection) of a new database on the same server,
    migrated (from `sql_dir` instead of sql/ when given), dropped afterwards:
    for tests whose rows would weigh on the shared database (order_events
    cannot be emptied) or that need a schema of an older migration."""
    name = "ot_it_%s_%s" % (tag, uuid.uuid4().hex[:10])
    base, _, _ = db_url.rpartition("/")
    admin = psycopg2.connect(base + "/postgres")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE " + name)
    url = base + "/" + name
    conn = None
    try:
        r = run_cli("migrate", "--database-url", url, *(["--sql-dir", str(sql_dir)] if sql_dir else []))
        assert r.returncode == 0, r.stderr
        conn = psycopg2.connect(url)
        conn.autocommit = True
        yield url, conn
    finally:
        if conn:
            conn.close()
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        admin.close()


def run_cli(*args, env=None, input=None, timeout=30.0):
    """Runs `$OT_BIN args...`; returns CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    if ASAN:
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    return subprocess.run([OT_BIN] + [str(a) for a in args], env=e, input=input, capture_output=True,
                          text=True, timeout=scaled(timeout), cwd=ROOT)
