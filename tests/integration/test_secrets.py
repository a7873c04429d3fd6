"""Secrets (issue 16): JWT_SECRET_FILE / DATABASE_URL_FILE / systemd
credentials, the 32-byte minimum, the command-line warning, never logging the
secret, and rotation with an overlap for the previous secret."""

import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import ASAN, OT_BIN, ROOT, free_port, make_token, mk_user, request, scaled

S_NEW = "rotated-secret-" + "n" * 40
S_OLD = "previous-secret-" + "o" * 40


def start(args=(), env=None, db_url=None, wait=True):
    """serve with exactly the environment given (nothing inherited but PATH)."""
    port = free_port()
    e = {"PATH": os.environ["PATH"]}
    if ASAN:
        e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    if db_url:
        e["DATABASE_URL"] = db_url
    e.update({k: v for k, v in (env or {}).items() if v is not None})
    p = subprocess.Popen([OT_BIN, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", "1"] + list(args),
                         env=e, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    if not wait:
        return p, port
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail("server exited: %s" % p.stdout.read())
        try:
            request(port, "GET", "/healthz", timeout=1)
            return p, port
        except OSError:
            time.sleep(0.05)
    stop(p)
    pytest.fail("server did not come up")


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        out, _ = p.communicate(timeout=scaled(10))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
    return out


def refused(args=(), env=None):
    p, _ = start(args, env, wait=False)
    try:
        out, _ = p.communicate(timeout=scaled(5))
    except subprocess.TimeoutExpired:
        stop(p)
        pytest.fail("serve kept running; it should have refused to start")
    assert p.returncode != 0
    return out


def secret_file(tmp_path, name, value, mode=0o600):
    path = tmp_path / name
    path.write_text(value + "\n")
    os.chmod(path, mode)
    return str(path)


def ready(port):
    """The pool connects after /healthz answers: wait for /readyz to report the
    database up (without one configured it says "not configured")."""
    deadline = time.monotonic() + scaled(10)
    while True:
        st, _, body = request(port, "GET", "/readyz")
        if st == 200 and isinstance(body, dict) and body.get("database") == "up":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def authed_status(port, token):
    st, _, body = request(port, "GET", "/orders/user/%s" % uuid.uuid4(), token=token)
    return st


@pytest.mark.parametrize("secret", ["x" * 16, "y" * 31])
def test_secret_shorter_than_32_bytes_is_refused(secret, tmp_path):
    out = refused(env={"JWT_SECRET": secret})
    assert "at least 32 bytes" in out, out
    out = refused(env={"JWT_SECRET_FILE": secret_file(tmp_path, "s", secret)})
    assert "at least 32 bytes" in out, out
    assert secret not in out


def test_secret_from_file_verifies_tokens_and_is_never_logged(tmp_path, db, db_url):
    uid = mk_user(db)
    p, port = start(env={"JWT_SECRET_FILE": secret_file(tmp_path, "jwt", S_NEW)}, db_url=db_url)
    try:
        assert authed_status(port, make_token(uid, secret=S_NEW)) in (200, 403)
        assert authed_status(port, make_token(uid, secret=S_OLD)) == 401
    finally:
        out = stop(p)
    assert S_NEW not in out


def test_world_readable_secret_file_warns(tmp_path):
    p, port = start(env={"JWT_SECRET_FILE": secret_file(tmp_path, "jwt", S_NEW, 0o644)})
    out = stop(p)
    assert "world-readable" in out, out


def test_systemd_credentials_directory(tmp_path, db, db_url):
    creds = tmp_path / "creds"
    creds.mkdir()
    secret_file(creds, "jwt_secret", S_NEW, 0o400)
    secret_file(creds, "database_url", db_url, 0o400)
    uid = mk_user(db)
    p, port = start(env={"CREDENTIALS_DIRECTORY": str(creds)})
    try:
        assert authed_status(port, make_token(uid, secret=S_NEW)) in (200, 403)
        assert ready(port)  # the database URL came from the credential too
    finally:
        stop(p)


def test_database_url_file(tmp_path, db_url):
    p, port = start(env={"JWT_SECRET": S_NEW, "DATABASE_URL_FILE": secret_file(tmp_path, "db", db_url)})
    try:
        assert ready(port)
    finally:
        stop(p)


def test_value_and_file_together_are_ambiguous(tmp_path):
    out = refused(env={"JWT_SECRET": S_NEW, "JWT_SECRET_FILE": secret_file(tmp_path, "jwt", S_OLD)})
    assert "JWT_SECRET_FILE" in out, out


def test_secret_on_the_command_line_warns_and_is_wiped_from_argv():
    p, port = start(args=["--jwt-secret", S_NEW])
    try:
        with open("/proc/%d/cmdline" % p.pid, "rb") as f:
            cmdline = f.read()
        assert S_NEW.encode() not in cmdline
    finally:
        out = stop(p)
    assert "warning: --jwt-secret on the command line" in out, out
    assert S_NEW not in out


def test_rotation_previous_secret_verifies_during_the_overlap_only(tmp_path, db, db_url):
    uid = mk_user(db)
    old_token = make_token(uid, secret=S_OLD)
    p, port = start(env={"JWT_SECRET": S_NEW, "JWT_SECRET_PREVIOUS_FILE": secret_file(tmp_path, "prev", S_OLD),
                         "ORDERTRACK_JWT_PREVIOUS_OVERLAP_S": "3"}, db_url=db_url)
    try:
        t0 = time.monotonic()
        assert authed_status(port, old_token) in (200, 403)
        assert authed_status(port, make_token(uid, secret=S_NEW)) in (200, 403)
        assert authed_status(port, make_token(uid, secret="third-secret-" + "t" * 40)) == 401
        time.sleep(max(0, 4 - (time.monotonic() - t0)))
        assert authed_status(port, old_token) == 401
        assert authed_status(port, make_token(uid, secret=S_NEW)) in (200, 403)
    finally:
        stop(p)


def test_short_previous_secret_is_refused():
    out = refused(env={"JWT_SECRET": S_NEW, "JWT_SECRET_PREVIOUS": "short-old-secret"})
    assert "previous JWT secret" in out, out
