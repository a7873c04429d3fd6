"""TLS policy (issue 16): TLS 1.2+ with forward-secret AEAD suites only, TLS 1.3
preferred, HSTS on every answer, and SIGHUP reloading the certificate under
load without a failed request. Suites are probed with `openssl s_client`, an
implementation independent of the server's."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import scaled
from test_tls import GET, client_ctx, read_response, tls_connect

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


def make_cert(dirpath, cn, kind="rsa"):
    crt, key = str(dirpath / ("%s.crt" % cn)), str(dirpath / ("%s.key" % cn))
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "req", "-x509"] + newkey + ["-nodes", "-subj", "/CN=%s" % cn, "-days", "1",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture
def tls(server, tmp_path):
    crt, key = make_cert(tmp_path, "first")
    srv = server(workers=1, args=["--tls-cert", crt, "--tls-key", key], wait=False)
    tls_connect(srv.port, crt).close()  # ready
    return srv, crt, key


def s_client(port, *opts):
    """Exit status and output of one handshake attempt."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost",
                        "-brief"] + list(opts), input=b"", capture_output=True, timeout=scaled(20))
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


@pytest.mark.parametrize("opts", [
    ["-tls1_2", "-cipher", "AES128-SHA"],             # RSA key transport, CBC, SHA-1
    ["-tls1_2", "-cipher", "AES256-GCM-SHA384"],      # AEAD but no forward secrecy
    ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],   # forward secret but CBC/SHA-1
    ["-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA384"],  # CBC with SHA-384
    ["-tls1_1"],
    ["-tls1"],
], ids=["rsa-kx-cbc", "rsa-kx-gcm", "ecdhe-cbc-sha1", "ecdhe-cbc-sha384", "tls1.1", "tls1.0"])
def test_weak_suites_and_old_versions_are_refused(tls, opts):
    srv, _, _ = tls
    rc, out = s_client(srv.port, *opts)
    assert rc != 0, out
    assert "Cipher is" not in out and "CONNECTION ESTABLISHED" not in out, out


@pytest.mark.parametrize("opts,want", [
    (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "ECDHE-RSA-AES128-GCM-SHA256"),
    (["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"], "ECDHE-RSA-CHACHA20-POLY1305"),
    (["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"], "ECDHE-RSA-AES256-GCM-SHA384"),
    (["-tls1_3"], "TLS_AES_"),
], ids=["ecdhe-aes128gcm", "ecdhe-chacha", "ecdhe-aes256gcm", "tls1.3"])
def test_forward_secret_aead_suites_are_accepted(tls, opts, want):
    srv, _, _ = tls
    rc, out = s_client(srv.port, *opts)
    assert rc == 0, out
    assert want in out, out


def test_tls13_is_preferred_when_offered(tls):
    srv, crt, _ = tls
    s = tls_connect(srv.port, crt)
    try:
        assert s.version() == "TLSv1.3"
    finally:
        s.close()


def test_hsts_on_tls_answers_and_not_on_plain(tls, server):
    srv, crt, _ = tls
    s = tls_connect(srv.port, crt)
    try:
        s.sendall(GET % b"/healthz")
        st, hdrs, _ = read_response(s, bytearray())
        assert st == 200
        assert hdrs.get("strict-transport-security") == "max-age=31536000"
    finally:
        s.close()
    plain = server(workers=1)
    from conftest import request
    _, h, _ = request(plain.port, "GET", "/healthz")
    assert "strict-transport-security" not in h


def peer_cn(port, ca):
    s = tls_connect(port, ca)
    try:
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]
    finally:
        s.close()


def test_sighup_reloads_the_certificate_under_load_without_failed_requests(server, tmp_path):
    crt1, key1 = make_cert(tmp_path, "first")
    live_crt, live_key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    shutil.copy(crt1, live_crt)
    shutil.copy(key1, live_key)
    srv = server(workers=2, args=["--tls-cert", live_crt, "--tls-key", live_key], wait=False)
    ca = str(tmp_path / "both.pem")
    crt2, key2 = make_cert(tmp_path, "second", kind="ec")
    with open(ca, "w") as out:
        out.write(open(crt1).read() + open(crt2).read())
    assert peer_cn(srv.port, ca) == "first"

    stop = threading.Event()
    errors, done = [], [0]
    kept_alive = []

    def load():
        ctx = client_ctx(ca)
        while not stop.is_set():
            try:
                # A kept-alive connection opened before the reload must go on.
                raw = socket.create_connection(("127.0.0.1", srv.port), timeout=scaled(5))
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                buf = bytearray()
                for _ in range(5):
                    s.sendall(GET % b"/healthz")
                    st, _, _ = read_response(s, buf)
                    if st != 200:
                        errors.append(st)
                    done[0] += 1
                s.close()
            except (OSError, ssl.SSLError, EOFError) as e:
                errors.append(repr(e))

    def long_lived():
        s = tls_connect(srv.port, ca)
        buf = bytearray()
        try:
            while not stop.is_set():
                s.sendall(GET % b"/healthz")
                st, _, _ = read_response(s, buf)
                kept_alive.append(st)
                time.sleep(0.02)
        except (OSError, ssl.SSLError, EOFError) as e:
            errors.append("long-lived: " + repr(e))
        finally:
            s.close()

    threads = [threading.Thread(target=load) for _ in range(4)] + [threading.Thread(target=long_lived)]
    for t in threads:
        t.start()
    try:
        time.sleep(scaled(0.5))
        shutil.copy(crt2, live_crt + ".new")
        shutil.copy(key2, live_key + ".new")
        os.replace(live_key + ".new", live_key)
        os.replace(live_crt + ".new", live_crt)
        before = done[0]
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + scaled(10)
        while peer_cn(srv.port, ca) != "second":
            assert time.monotonic() < deadline, "the new certificate was never served"
            time.sleep(0.05)
        # Both workers, not just one: several fresh handshakes all see it.
        for _ in range(10):
            assert peer_cn(srv.port, ca) == "second"
        time.sleep(scaled(0.5))
    finally:
        stop.set()
        for t in threads:
            t.join(scaled(10))
    assert not errors, errors[:5]
    assert done[0] > before > 0
    assert kept_alive and set(kept_alive) == {200}
    assert srv.alive()
    assert "TLS certificate and key reloaded" in srv.log_text()


def test_sighup_with_a_broken_certificate_keeps_serving_the_old_one(server, tmp_path):
    crt1, key1 = make_cert(tmp_path, "first")
    live_crt, live_key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    shutil.copy(crt1, live_crt)
    shutil.copy(key1, live_key)
    srv = server(workers=1, args=["--tls-cert", live_crt, "--tls-key", live_key], wait=False)
    assert peer_cn(srv.port, crt1) == "first"
    with open(live_crt, "w") as f:
        f.write("not a certificate\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + scaled(5)
    while "TLS reload failed" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.05)
    assert peer_cn(srv.port, crt1) == "first"
