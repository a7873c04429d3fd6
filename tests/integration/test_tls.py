"""HTTPS: the same server behind --tls-cert/--tls-key, verified by Python's
ssl module against a self-signed certificate made for the test."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import scaled

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


@pytest.fixture
def cert(tmp_path):
    crt, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture
def tls_server(server, cert):
    def start(workers=1, args=()):
        crt, key = cert
        return server(workers=workers, args=["--tls-cert", crt, "--tls-key", key] + list(args), wait=False)
    return start


def client_ctx(crt):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=crt)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def tls_connect(port, crt, timeout=5.0):
    deadline = time.monotonic() + scaled(10)
    while True:  # the fixture's readiness probe speaks plain HTTP, so wait here
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout))
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return client_ctx(crt).wrap_socket(raw, server_hostname="localhost")


def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    n = int(hdrs["content-length"])
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed mid-body")
        buf += chunk
    body = bytes(buf[:n])
    del buf[:n]
    return int(head[0].split()[1]), hdrs, body


GET = b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"


def test_https_healthz_with_certificate_verification(tls_server, cert):
    srv = tls_server()
    with tls_connect(srv.port, cert[0]) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        s.sendall(GET % b"/healthz")
        status, hdrs, body = read_response(s, bytearray())
        assert status == 200
        assert json.loads(body) == {"status": "ok"}


def test_verification_fails_against_another_certificate(tls_server, cert, tmp_path):
    # Control: the client really verifies (a different CA file must fail).
    srv = tls_server()
    other = str(tmp_path / "other.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(tmp_path / "other.key"), "-out", other], check=True, capture_output=True, timeout=60)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(srv.port, other).close()


def test_keep_alive_and_pipelining_over_tls(tls_server, cert):
    srv = tls_server()
    with tls_connect(srv.port, cert[0]) as s:
        buf = bytearray()
        for _ in range(5):
            s.sendall(GET % b"/healthz")
            assert read_response(s, buf)[0] == 200
        # Pipelined, including a response large enough for several TLS records.
        s.sendall(GET % b"/metrics" + GET % b"/nope" + GET % b"/healthz")
        status, _, body = read_response(s, buf)
        assert status == 200 and b"ordertrack_http_requests_total" in body
        assert read_response(s, buf)[0] == 404
        assert read_response(s, buf)[0] == 200


def test_plain_http_to_the_tls_port_fails_cleanly_and_the_worker_survives(tls_server, cert):
    srv = tls_server(workers=1)
    with tls_connect(srv.port, cert[0]) as s:  # also waits for the listener
        s.sendall(GET % b"/healthz")
        assert read_response(s, bytearray())[0] == 200
    worker_pids = {l["pid"] for l in srv.log_lines() if l.get("msg", "").startswith("worker listening")}
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=scaled(3)) as s:
            s.sendall(GET % b"/healthz")
            got = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
            assert not got.startswith(b"HTTP/"), got  # no plaintext answer: the connection just ends
    # A client that connects and sends nothing at all is not a crash either.
    socket.create_connection(("127.0.0.1", srv.port)).close()
    with tls_connect(srv.port, cert[0]) as s:
        s.sendall(GET % b"/healthz")
        assert read_response(s, bytearray())[0] == 200
    assert srv.alive()
    now = {l["pid"] for l in srv.log_lines() if l.get("msg", "").startswith("worker listening")}
    assert now == worker_pids, "the worker was restarted: it crashed"
    assert all(os.path.exists("/proc/%d" % p) for p in worker_pids)


def test_tls_client_that_reads_late_gets_every_pipelined_response(tls_server, cert):
    # Over TLS, bytes can sit decrypted inside OpenSSL where epoll cannot see
    # them: the server must still resume after the write high-water mark.
    srv = tls_server(args=["--rate-ip", "1000000", "--rate-ip-burst", "1000000", "--rate-user", "1000000", "--rate-user-burst", "1000000"])  # 600 requests from one address: above the default per-IP limit
    n = 600
    with tls_connect(srv.port, cert[0], timeout=10) as s:
        s.sendall(b"".join(GET % (b"/metrics" if i % 2 == 0 else b"/nope") for i in range(n)))
        time.sleep(0.3)
        buf = bytearray()
        got = [read_response(s, buf)[0] for _ in range(n)]
        assert got == [200 if i % 2 == 0 else 404 for i in range(n)]
        s.sendall(GET % b"/healthz")
        assert read_response(s, buf)[0] == 200
