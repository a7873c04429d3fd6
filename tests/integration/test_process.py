"""The process model: master + workers, graceful drain on SIGTERM, restart of a
killed worker, and the start-up errors an operator sees."""

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import ASAN, JWT_SECRET, OT_BIN, ROOT, free_port, request, run_cli, scaled, read_until_close

NO_DB = {"DATABASE_URL": None}


def children(pid):
    """Pids of the direct children of `pid` (the master's workers)."""
    out = set()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.update(int(p) for p in f.read().split())
    except FileNotFoundError:
        pass
    return out


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    pytest.fail("timed out waiting for " + what)


def wait_workers(srv, n, timeout=5.0):
    return wait_for(lambda: (lambda c: c if len(c) == n else None)(children(srv.proc.pid)), timeout,
                    "%d workers" % n)


def test_sigterm_lets_an_in_flight_request_finish_then_exits_0(server):
    srv = server(workers=2, env=NO_DB, args=["--shutdown-timeout-ms", "4000"])
    workers = wait_workers(srv, 2)
    body = b'{"email":"a@example.test","password":"pw"}'
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=scaled(5))
    try:
        s.sendall(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        time.sleep(0.2)  # the worker has the head and part of the body
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # Mid-drain: the in-flight request keeps its worker alive...
        assert srv.alive(), "master exited while a request was in flight"
        assert len([p for p in workers if pid_alive(p)]) >= 1
        # ...and new connections are refused (every listener is closed).
        with pytest.raises(OSError):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=1) as s2:
                s2.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if not read_until_close(s2, 1.0).startswith(b"HTTP/1.1"):
                    raise ConnectionRefusedError("accepted but never answered")
        s.sendall(body[5:])
        raw = read_until_close(s, 3.0)
    finally:
        s.close()
    assert raw.startswith(b"HTTP/1.1 503 "), raw[:300]  # the handler's answer, not a drop
    assert b"\r\nConnection: close\r\n" in raw.split(b"\r\n\r\n")[0] + b"\r\n"
    rc = srv.proc.wait(timeout=scaled(6))
    assert rc == 0, srv.log_tail()
    assert time.monotonic() - t0 < 4.0 + scaled(1.5)  # bounded by --shutdown-timeout-ms
    assert not any(pid_alive(p) for p in workers)


def test_sigterm_drain_is_bounded_by_the_shutdown_timeout(server):
    srv = server(workers=1, env=NO_DB, args=["--shutdown-timeout-ms", "800", "--header-timeout-ms", "30000"])
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        # A request that never completes holds the drain until the bound.
        s.sendall(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(timeout=scaled(6))
        elapsed = time.monotonic() - t0
    assert rc == 0, srv.log_tail()
    assert 0.7 <= elapsed <= 0.8 + scaled(1.5), elapsed
    assert "shutdown timeout" in srv.log_text()


def test_master_exits_0_on_sigterm_and_takes_its_workers_along(server):
    srv = server(workers=2)
    workers = wait_workers(srv, 2)
    assert request(srv.port, "GET", "/healthz")[0] == 200
    rc = srv.stop(signal.SIGTERM, timeout=5)
    assert rc == 0, srv.log_tail()
    assert not any(pid_alive(p) for p in workers)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_workers_of_a_master_killed_with_sigkill_drain_and_exit(server):
    """A master that cannot clean up (SIGKILL, the OOM killer) must not leave
    orphaned workers holding the port: a new server would share it with them
    through SO_REUSEPORT and half the connections would reach the old code."""
    srv = server(workers=2)
    workers = wait_workers(srv, 2)
    assert request(srv.port, "GET", "/healthz")[0] == 200
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=5)
    deadline = time.monotonic() + scaled(10)
    while any(pid_alive(p) for p in workers):
        if time.monotonic() > deadline:
            for p in workers:
                if pid_alive(p):
                    os.kill(p, signal.SIGKILL)
            pytest.fail("workers still running 10 s after their master was killed")
        time.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    assert "master is gone" in srv.log_text()


def test_killed_worker_is_restarted_and_service_continues(server):
    srv = server(workers=2)
    workers = wait_workers(srv, 2)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    fresh = wait_for(lambda: (lambda c: c if len(c) == 2 and victim not in c else None)(children(srv.proc.pid)),
                     5.0, "a replacement worker")
    assert fresh & workers == workers - {victim}
    # The replacement listens too: every new connection gets an answer.
    deadline = time.monotonic() + scaled(3)
    while "worker listening" not in "".join(
            l.get("msg", "") for l in srv.log_lines() if l.get("pid") in (fresh - workers)):
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.02)
    for _ in range(40):
        assert request(srv.port, "GET", "/healthz")[0] == 200
    status, _, metrics = request(srv.port, "GET", "/metrics")
    assert status == 200
    starts = [int(l.rsplit(" ", 1)[1]) for l in metrics.decode().splitlines()
              if l.startswith("ordertrack_worker_starts_total{")]
    assert sorted(starts) == [1, 2], starts
    assert "killed by signal 9" in srv.log_text()
    assert srv.alive()
    assert srv.stop() == 0


def test_help_lists_the_options():
    r = run_cli("serve", "--help")
    assert r.returncode == 0, r.stderr
    for opt in ("--listen", "--workers", "--max-header-bytes", "--max-body-bytes", "--max-uri-bytes",
                "--header-timeout-ms", "--idle-timeout-ms", "--max-conns", "--shutdown-timeout-ms", "--tls-cert",
                "--tls-key", "JWT_SECRET"):
        assert opt in r.stdout, opt
    top = run_cli("--help")
    assert top.returncode == 0 and "serve" in top.stdout + top.stderr


def _run_serve(args, env, timeout=5.0):
    """Runs `serve` expecting it to exit on its own; kills its group if it does not."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTRACK_")}
    e.pop("DATABASE_URL", None)
    if ASAN:
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    p = subprocess.Popen([OT_BIN, "serve"] + args, env=e, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("serve kept running; it should have refused to start")
    return p.returncode, out + err


@pytest.mark.parametrize("secret", [None, "short"])
def test_missing_or_short_jwt_secret_refuses_to_start(secret):
    port = free_port()
    rc, text = _run_serve(["--listen", "127.0.0.1:%d" % port, "--workers", "1"], {"JWT_SECRET": secret})
    assert rc != 0
    assert "JWT_SECRET" in text, text


def test_port_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        rc, text = _run_serve(["--listen", "127.0.0.1:%d" % port, "--workers", "2"], {"JWT_SECRET": JWT_SECRET})
    assert rc != 0
    assert "in use" in text.lower(), text
    assert str(port) in text, text
