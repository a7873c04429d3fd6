"""`ordertrack user list|disable|enable|promote|demote|passwd` against the real
database (issue 16)."""

import json
import uuid

import pytest

from conftest import request, run_cli


def add(db_url, email, password="b7#kq2!mzpt", admin=False):
    args = ["user", "add", "--email", email, "--name", "N", "--password-stdin", "--database-url", db_url]
    r = run_cli(*(args + (["--admin"] if admin else [])), input=password + "\n")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def row(db, email):
    with db.cursor() as cur:
        cur.execute("SELECT role::text, active, password_hash FROM users WHERE lower(email) = lower(%s)", (email,))
        return cur.fetchone()


@pytest.fixture
def email():
    return "cli-%s@example.test" % uuid.uuid4().hex[:10]


def test_list_prints_every_user_as_json_lines(db, db_url, email):
    u = add(db_url, email)
    r = run_cli("user", "list", "--database-url", db_url)
    assert r.returncode == 0, r.stderr
    users = [json.loads(line) for line in r.stdout.splitlines()]
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert len(users) == cur.fetchone()[0]
    mine = [x for x in users if x["id"] == u["id"]]
    assert mine == [{"id": u["id"], "email": email, "name": "N", "role": "CUSTOMER", "active": True}]


def test_disable_then_enable(db, db_url, email):
    add(db_url, email)
    r = run_cli("user", "disable", email.upper(), "--database-url", db_url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["active"] is False
    assert row(db, email)[1] is False
    r = run_cli("user", "enable", "--email", email, env={"DATABASE_URL": db_url})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["active"] is True and row(db, email)[1] is True


def test_promote_then_demote(db, db_url, email):
    add(db_url, email)
    r = run_cli("user", "promote", email, "--database-url", db_url)
    assert r.returncode == 0 and json.loads(r.stdout)["role"] == "ADMIN", r.stderr
    assert row(db, email)[0] == "ADMIN"
    r = run_cli("user", "demote", email, "--database-url", db_url)
    assert r.returncode == 0 and json.loads(r.stdout)["role"] == "CUSTOMER", r.stderr
    assert row(db, email)[0] == "CUSTOMER"


def test_passwd_changes_the_password_used_by_login(server, db, db_url, email):
    add(db_url, email, password="first-pass-X1")
    before = row(db, email)[2]
    r = run_cli("user", "passwd", email, "--password-stdin", "--database-url", db_url, input="second-pass-Y2\n")
    assert r.returncode == 0, r.stderr
    after = row(db, email)[2]
    assert after != before and after.startswith("scrypt$16$8$2$") and "second-pass" not in after
    srv = server(workers=1)
    assert request(srv.port, "POST", "/auth/login", {"email": email, "password": "second-pass-Y2"})[0] == 200
    assert request(srv.port, "POST", "/auth/login", {"email": email, "password": "first-pass-X1"})[0] == 401


@pytest.mark.parametrize("pw,why", [("password1", "common"), ("short", "short"), (None, "email")])
def test_passwd_applies_the_password_policy(db, db_url, email, pw, why):
    add(db_url, email)
    before = row(db, email)[2]
    r = run_cli("user", "passwd", email, "--password-stdin", "--database-url", db_url,
                input=(pw if pw is not None else email) + "\n")
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert row(db, email)[2] == before


def test_add_applies_the_password_policy(db_url, email):
    r = run_cli("user", "add", "--email", email, "--name", "N", "--password", "qwerty123", "--database-url", db_url)
    assert r.returncode == 1 and "common" in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["disable", "enable", "promote", "demote"])
def test_unknown_email_exits_1(db_url, cmd):
    r = run_cli("user", cmd, "nobody-%s@example.test" % uuid.uuid4().hex[:6], "--database-url", db_url)
    assert r.returncode == 1 and "no user" in r.stderr, r.stderr


def test_database_url_file_for_the_cli(db_url, tmp_path, email):
    f = tmp_path / "db"
    f.write_text(db_url + "\n")
    f.chmod(0o600)
    add(db_url, email)
    r = run_cli("user", "list", env={"DATABASE_URL": None, "DATABASE_URL_FILE": str(f)})
    assert r.returncode == 0 and email in r.stdout, r.stderr
