"""The schema and its stored functions, driven through SQL (psycopg2), and the
`migrate` / `user add` commands. No server needed."""

import json
import os
import re
import select
import threading
import uuid

import psycopg2
import psycopg2.errors
import pytest

from conftest import ROOT, mk_user, own_database, run_cli
from lifecycle import ALLOWED, PATH_TO, STATUSES

ORDER_KEYS = {"id", "userId", "status", "items", "createdAt", "updatedAt", "version"}
EVENT_KEYS = {"seq", "version", "eventId", "orderId", "userId", "type", "status", "timestamp", "payload", "actor"}
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ITEMS = [{"sku": "ABC-1", "qty": 2}, {"sku": "XYZ-9", "qty": 1}]
SQL_FILES = sorted(f for f in os.listdir(os.path.join(ROOT, "sql")) if re.match(r"^\d+_.*\.sql$", f))


def create(db, user, items=ITEMS, idem=None, actor=None):
    with db.cursor() as cur:
        cur.execute("SELECT created, order_json, event_json FROM ot_create_order(%s, %s, %s, %s)",
                    (user, json.dumps(items), idem, actor))
        created, oj, ej = cur.fetchone()
    return created, json.loads(oj), (json.loads(ej) if ej is not None else None)


def update(db, order_id, status, expected=None, actor=None):
    with db.cursor() as cur:
        cur.execute("SELECT result, order_json, event_json FROM ot_update_status(%s, %s, %s, %s)",
                    (order_id, status, expected, actor))
        res, oj, ej = cur.fetchone()
    return res, (json.loads(oj) if oj else None), (json.loads(ej) if ej else None)


def events_of(db, order_id):
    with db.cursor() as cur:
        cur.execute("SELECT ot_event_json(e) FROM order_events e WHERE order_id = %s ORDER BY seq", (order_id,))
        return [json.loads(r[0]) for r in cur.fetchall()]


@pytest.fixture
def scratch_db(db, db_url):
    """A brand-new, unmigrated database on the same server; dropped afterwards."""
    name = "ot_it_scratch_%s" % uuid.uuid4().hex[:10]
    with db.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % name)
    base = db_url.rsplit("/", 1)[0]
    try:
        yield base + "/" + name
    finally:
        with db.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def applied_lines(stderr):
    return [l for l in stderr.splitlines() if "migration applied" in l]


# ---------------------------------------------------------------- migrate

def test_migrate_applies_every_file_once_then_nothing(scratch_db):
    first = run_cli("migrate", "--database-url", scratch_db)
    assert first.returncode == 0, first.stderr
    assert len(applied_lines(first.stderr)) == len(SQL_FILES) >= 1
    for line in first.stderr.splitlines():
        json.loads(line)  # every log line is JSON
    second = run_cli("migrate", "--database-url", scratch_db)
    assert second.returncode == 0, second.stderr
    assert applied_lines(second.stderr) == []
    conn = psycopg2.connect(scratch_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r[0] for r in cur.fetchall()] == [f[:-4] for f in SQL_FILES]
    finally:
        conn.close()


def test_migrate_on_the_test_database_is_a_no_op(db, db_url):
    # scripts/test-integration.sh already migrated it.
    r = run_cli("migrate", env={"DATABASE_URL": db_url})
    assert r.returncode == 0, r.stderr
    assert applied_lines(r.stderr) == []


def test_concurrent_migrates_apply_each_file_once(scratch_db):
    import subprocess
    from conftest import OT_BIN
    procs = [subprocess.Popen([OT_BIN, "migrate", "--database-url", scratch_db], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(len(applied_lines(err)) for _, err in outs) == len(SQL_FILES)


def test_failed_migration_rolls_back_and_is_retried(scratch_db, tmp_path):
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x int);\n")
    (tmp_path / "002_b.sql").write_text("CREATE TABLE b (x int);\nSELECT 1/0;\n")
    (tmp_path / "README").write_text("not a migration")
    r = run_cli("migrate", "--database-url", scratch_db, "--sql-dir", tmp_path)
    assert r.returncode == 1
    assert "002_b.sql" in r.stderr and "division by zero" in r.stderr
    conn = psycopg2.connect(scratch_db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM schema_migrations")
            assert [x[0] for x in cur.fetchall()] == ["001_a"]
            cur.execute("SELECT to_regclass('b') IS NULL")
            assert cur.fetchone()[0], "table b of the failed file must not exist"
        (tmp_path / "002_b.sql").write_text("CREATE TABLE b (x int);\n")
        r = run_cli("migrate", "--database-url", scratch_db, "--sql-dir", tmp_path)
        assert r.returncode == 0, r.stderr
        assert len(applied_lines(r.stderr)) == 1 and "002_b.sql" in r.stderr
    finally:
        conn.close()


def test_migrate_without_database_fails_clearly():
    r = run_cli("migrate", env={"DATABASE_URL": None})
    assert r.returncode == 1
    assert "DATABASE_URL" in r.stderr


def test_migrate_help():
    r = run_cli("migrate", "--help")
    assert r.returncode == 0 and "--sql-dir" in r.stdout


# ---------------------------------------------------------------- user add

def test_user_add_creates_then_updates_the_same_email(db, db_url):
    email = "Cli-%s@Example.test" % uuid.uuid4().hex[:8]
    r = run_cli("user", "add", "--email", email, "--name", "First", "--password", "password-1",
                env={"DATABASE_URL": db_url})
    assert r.returncode == 0, r.stderr
    u = json.loads(r.stdout)
    assert set(u) == {"id", "email", "name", "role"}
    assert (u["email"], u["name"], u["role"]) == (email, "First", "CUSTOMER")
    with db.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE id = %s", (u["id"],))
        h1 = cur.fetchone()[0]
    assert h1 and "password-1" not in h1

    # Same address in other case, read from stdin: same row, new name/role/password.
    r = run_cli("user", "add", "--email", email.lower(), "--name", 'Se"cond', "--admin", "--password-stdin",
                "--database-url", db_url, input="password-2\n")
    assert r.returncode == 0, r.stderr
    assert "updated" in r.stderr
    u2 = json.loads(r.stdout)
    assert u2["id"] == u["id"] and u2["name"] == 'Se"cond' and u2["role"] == "ADMIN"
    with db.cursor() as cur:
        cur.execute("SELECT count(*), min(password_hash) FROM users WHERE lower(email) = lower(%s)", (email,))
        n, h2 = cur.fetchone()
    assert n == 1 and h2 != h1


@pytest.mark.parametrize("args,why", [
    (["--email", "no-at-sign", "--name", "N", "--password", "password-1"], "email"),
    (["--email", "a@b@c", "--name", "N", "--password", "password-1"], "email"),
    (["--email", "x" * 250 + "@b.cd", "--name", "N", "--password", "password-1"], "email"),
    (["--email", "a@b.c", "--name", "", "--password", "password-1"], "name"),
    (["--email", "a@b.c", "--name", "n" * 201, "--password", "password-1"], "name"),
    (["--email", "a@b.c", "--name", "N", "--password", "short"], "password"),
    (["--email", "a@b.c", "--name", "N", "--password", "p" * 1025], "password"),
    (["--email", "a@b.c", "--name", "N"], "password"),
    (["--bogus"], "bogus"),
])
def test_user_add_rejects_bad_input(db_url, args, why):
    r = run_cli("user", "add", *args, env={"DATABASE_URL": db_url})
    assert r.returncode == 1
    assert why in r.stderr
    assert r.stdout == ""


# ---------------------------------------------------------------- order_events is append-only

@pytest.mark.parametrize("stmt", [
    "UPDATE order_events SET type = 'order.updated'",
    "DELETE FROM order_events",
    "TRUNCATE order_events",
])
def test_order_events_refuses_update_delete_truncate(db, stmt):
    user = mk_user(db)
    _, order, _ = create(db, user)
    with db.cursor() as cur:
        with pytest.raises(psycopg2.Error) as exc:
            cur.execute(stmt)
    assert exc.value.pgcode == "P0001"
    assert "order_events is append-only" in exc.value.pgerror
    assert len(events_of(db, order["id"])) == 1


def test_duplicate_version_for_an_order_is_refused(db):
    user = mk_user(db)
    _, order, ev = create(db, user)
    with db.cursor() as cur, pytest.raises(psycopg2.errors.UniqueViolation):
        cur.execute("INSERT INTO order_events (order_id, version, user_id, type, status, payload)"
                    " VALUES (%s, 1, %s, 'order.updated', 'CREATED', '{}')", (order["id"], user))


# ---------------------------------------------------------------- ot_create_order

def test_create_order_returns_order_and_event_json(db):
    user, actor = mk_user(db), mk_user(db, "ADMIN")
    created, order, ev = create(db, user, actor=actor)
    assert created is True
    assert set(order) == ORDER_KEYS and set(ev) == EVENT_KEYS
    assert order["userId"] == user and order["status"] == "CREATED" and order["version"] == 1
    assert order["items"] == ITEMS
    assert ISO_MS_Z.match(order["createdAt"]) and order["createdAt"] == order["updatedAt"]
    assert isinstance(ev["seq"], int) and ev["seq"] > 0
    assert (ev["orderId"], ev["userId"], ev["version"]) == (order["id"], user, 1)
    assert (ev["type"], ev["status"], ev["actor"]) == ("order.created", "CREATED", actor)
    assert ev["payload"] == {"items": ITEMS}
    assert ISO_MS_Z.match(ev["timestamp"])
    uuid.UUID(ev["eventId"])
    # What the tail query reads is what the write returned.
    assert events_of(db, order["id"]) == [ev]


def test_create_order_without_actor_has_null_actor(db):
    _, _, ev = create(db, mk_user(db))
    assert ev["actor"] is None


def test_create_order_for_unknown_user_is_a_foreign_key_error(db):
    with pytest.raises(psycopg2.Error) as exc:
        create(db, str(uuid.uuid4()))
    assert exc.value.pgcode == "23503"


def test_idempotency_key_returns_the_existing_order_without_a_new_event(db):
    user = mk_user(db)
    c1, o1, e1 = create(db, user, idem="key-1")
    c2, o2, e2 = create(db, user, items=[{"sku": "OTHER", "qty": 5}], idem="key-1")
    assert (c1, c2) == (True, False)
    assert o2 == o1 and e2 is None
    assert len(events_of(db, o1["id"])) == 1
    # The key is per user: another user's identical key is a different order.
    c3, o3, _ = create(db, mk_user(db), idem="key-1")
    assert c3 is True and o3["id"] != o1["id"]
    # No key: never deduplicated.
    assert create(db, user)[1]["id"] != create(db, user)[1]["id"]


def test_idempotency_key_under_50_concurrent_calls_creates_one_order(db, db_url):
    user = mk_user(db)
    key = "race-" + uuid.uuid4().hex
    n = 50
    conns = [psycopg2.connect(db_url) for _ in range(n)]
    for c in conns:
        c.autocommit = True
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def worker(i):
        try:
            barrier.wait(timeout=30)
            results[i] = create(conns[i], user, idem=key)
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for c in conns:
            c.close()
    assert errors == []
    assert sum(1 for r in results if r[0]) == 1
    assert len({r[1]["id"] for r in results}) == 1
    with db.cursor() as cur:
        cur.execute("SELECT id FROM orders WHERE user_id = %s AND idempotency_key = %s", (user, key))
        rows = cur.fetchall()
    assert len(rows) == 1
    assert len(events_of(db, str(rows[0][0]))) == 1


# ---------------------------------------------------------------- ot_update_status

@pytest.mark.parametrize("frm", STATUSES)
@pytest.mark.parametrize("to", STATUSES)
def test_transition_table(db, frm, to):
    user = mk_user(db)
    _, order, _ = create(db, user)
    for st in PATH_TO[frm]:
        assert update(db, order["id"], st)[0] == "ok"
    version = 1 + len(PATH_TO[frm])
    res, o, ev = update(db, order["id"], to)
    if (frm, to) in ALLOWED:
        assert res == "ok"
        assert o["status"] == to and o["version"] == version + 1
        assert ev["version"] == version + 1 and ev["status"] == to
        expected_type = {"DELIVERED": "order.completed", "CANCELED": "order.canceled"}.get(to, "order.updated")
        assert ev["type"] == expected_type
        assert ev["payload"] == {"items": ITEMS}
    else:
        assert res == "invalid_transition"
        assert ev is None
        assert o["status"] == frm and o["version"] == version
    assert len(events_of(db, order["id"])) == version + (1 if res == "ok" else 0)


def test_full_life_cycle_versions_and_events(db):
    user, admin = mk_user(db), mk_user(db, "ADMIN")
    _, order, _ = create(db, user)
    for i, st in enumerate(["ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"], start=2):
        res, o, ev = update(db, order["id"], st, expected=i - 1, actor=admin)
        assert res == "ok" and o["version"] == i and ev["actor"] == admin
        assert set(o) == ORDER_KEYS and set(ev) == EVENT_KEYS
        assert o["createdAt"] == order["createdAt"] and o["updatedAt"] >= o["createdAt"]
    evs = events_of(db, order["id"])
    assert [e["version"] for e in evs] == [1, 2, 3, 4, 5]
    assert [e["type"] for e in evs] == ["order.created"] + ["order.updated"] * 3 + ["order.completed"]
    seqs = [e["seq"] for e in evs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert len({e["eventId"] for e in evs}) == 5


def test_version_mismatch_changes_nothing(db):
    _, order, _ = create(db, mk_user(db))
    res, o, ev = update(db, order["id"], "ACCEPTED", expected=7)
    assert res == "version_mismatch" and ev is None
    assert o["version"] == 1 and o["status"] == "CREATED"
    assert len(events_of(db, order["id"])) == 1
    assert update(db, order["id"], "ACCEPTED", expected=1)[0] == "ok"


def test_unknown_order_is_not_found(db):
    assert update(db, str(uuid.uuid4()), "ACCEPTED") == ("not_found", None, None)


# ---------------------------------------------------------------- NOTIFY and rollback

def _listen(db_url):
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("LISTEN ot_events")
    return conn


def _drain(conn, wait):
    """Notifications arriving within `wait` seconds (returns early once one came)."""
    if select.select([conn], [], [], wait) != ([], [], []):
        conn.poll()
    out = [n.payload for n in conn.notifies]
    conn.notifies.clear()
    return out


def test_a_write_commits_without_a_notify_and_the_wake_names_its_seq(db, db_url):
    """sql/012: a NOTIFY in the writing transaction serialized every commit
    behind one lock, so the writes send none; ot_wake_listeners, called after
    the COMMIT, sends {"seq":N} from a transaction of its own that skips the
    flush, and the caller's session keeps its synchronous_commit."""
    lconn = _listen(db_url)
    try:
        _, order, ev = create(db, mk_user(db))
        _, _, ev2 = update(db, order["id"], "CANCELED")
        assert _drain(lconn, 0.5) == []
        with db.cursor() as cur:
            cur.execute("SHOW synchronous_commit")
            before = cur.fetchone()[0]
            cur.execute("SELECT ot_wake_listeners(%s)", (ev2["seq"],))
            cur.execute("SHOW synchronous_commit")
            assert cur.fetchone()[0] == before
        assert [json.loads(p) for p in _drain(lconn, 5.0)] == [{"seq": ev2["seq"]}]
        # Inside the call's transaction the commit is asynchronous.
        with db.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT ot_wake_listeners(%s)", (ev["seq"],))
            cur.execute("SHOW synchronous_commit")
            assert cur.fetchone()[0] == "off"
            cur.execute("COMMIT")
        assert [json.loads(p) for p in _drain(lconn, 5.0)] == [{"seq": ev["seq"]}]
    finally:
        lconn.close()


def test_rolled_back_transaction_leaves_no_event_and_no_notify(db, db_url):
    user = mk_user(db)
    lconn = _listen(db_url)
    tx = psycopg2.connect(db_url)
    try:
        with tx.cursor() as cur:
            cur.execute("SELECT order_json FROM ot_create_order(%s, %s, NULL, NULL)", (user, json.dumps(ITEMS)))
            order_id = json.loads(cur.fetchone()[0])["id"]
            cur.execute("SELECT count(*) FROM order_events WHERE order_id = %s", (order_id,))
            assert cur.fetchone()[0] == 1  # visible inside the transaction...
        tx.rollback()
        assert _drain(lconn, 0.5) == []
        with db.cursor() as cur:  # ...and gone after the rollback
            cur.execute("SELECT (SELECT count(*) FROM order_events WHERE order_id = %s),"
                        " (SELECT count(*) FROM orders WHERE id = %s)", (order_id, order_id))
            assert cur.fetchone() == (0, 0)
        # Same for a status change rolled back.
        _, order, _ = create(db, user)
        _drain(lconn, 2.0)
        with tx.cursor() as cur:
            cur.execute("SELECT result FROM ot_update_status(%s, 'ACCEPTED', NULL, NULL)", (order["id"],))
            assert cur.fetchone()[0] == "ok"
        tx.rollback()
        assert _drain(lconn, 0.5) == []
        assert len(events_of(db, order["id"])) == 1
        assert update(db, order["id"], "ACCEPTED")[1]["version"] == 2
    finally:
        tx.close()
        lconn.close()


def test_tail_query_reads_events_in_seq_order(db):
    user = mk_user(db)
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM order_events")
        start = cur.fetchone()[0]
    made = [create(db, user)[2] for _ in range(3)]
    with db.cursor() as cur:
        cur.execute("SELECT seq, ot_event_json(e) FROM order_events e WHERE seq > %s ORDER BY seq LIMIT %s",
                    (start, 100))
        rows = cur.fetchall()
    mine = [json.loads(j) for s, j in rows if json.loads(j)["userId"] == user]
    assert mine == made
    assert all(s == json.loads(j)["seq"] for s, j in rows)


# ---------------------------------------------------------------- 011: the stint each event ends

STINT_CHECK = ("SELECT count(*) FROM order_events n LEFT JOIN order_events e "
               "ON e.order_id = n.order_id AND e.version = n.version - 1 "
               "WHERE n.prev_status IS DISTINCT FROM e.status OR n.prev_at IS DISTINCT FROM e.created_at")


def test_011_backfills_the_stint_columns_and_every_writer_fills_them_after(db_url, tmp_path):
    """Events written before 011 get prev_status / prev_at from their
    previous version (the events themselves untouched, the table still
    append-only); events written after get them on insert, through the API's
    functions or straight into the table."""
    import shutil
    import psycopg2
    old = tmp_path / "sql"
    old.mkdir()
    for f in sorted(os.listdir(os.path.join(ROOT, "sql"))):
        if f.endswith(".sql") and f < "011":
            shutil.copy(os.path.join(ROOT, "sql", f), old / f)
    with own_database(db_url, "stint", sql_dir=old) as (url, conn):
        cur = conn.cursor()
        cur.execute("INSERT INTO users (name, email, password_hash, role) VALUES ('s', 's@x', 'x', 'CUSTOMER') RETURNING id")
        user = cur.fetchone()[0]
        ids = []
        for _ in range(3):
            cur.execute("SELECT (order_json::json->>'id') FROM ot_create_order(%s, '[]', NULL, NULL)", (user,))
            ids.append(cur.fetchone()[0])
        for oid in ids:
            for st in ("ACCEPTED", "PREPARED"):
                cur.execute("SELECT result FROM ot_update_status(%s, %s, NULL, NULL)", (oid, st))
                assert cur.fetchone()[0] == "ok"
        cur.execute("SELECT string_agg(ot_event_json(e), ',' ORDER BY seq) FROM order_events e")
        before = cur.fetchone()[0]
        r = run_cli("migrate", "--database-url", url)
        assert r.returncode == 0, r.stderr
        cur.execute("SELECT string_agg(ot_event_json(e), ',' ORDER BY seq) FROM order_events e")
        assert cur.fetchone()[0] == before, "the events are unchanged"
        cur.execute("SELECT count(*) FROM order_events WHERE prev_at IS NOT NULL")
        assert cur.fetchone()[0] == 6
        cur.execute(STINT_CHECK)
        assert cur.fetchone()[0] == 0
        # After: the API's function, and a bare INSERT (a bulk load, a faulty writer).
        cur.execute("SELECT result FROM ot_update_status(%s, 'SHIPPED', NULL, NULL)", (ids[0],))
        cur.execute("INSERT INTO order_events (order_id, version, user_id, type, status, payload) "
                    "SELECT order_id, 4, user_id, 'order.updated', 'SHIPPED', '{}' FROM order_events "
                    "WHERE order_id = %s AND version = 3", (ids[1],))
        cur.execute("SELECT count(*) FROM order_events WHERE prev_at IS NOT NULL")
        assert cur.fetchone()[0] == 8
        cur.execute(STINT_CHECK)
        assert cur.fetchone()[0] == 0
        with pytest.raises(psycopg2.Error) as exc:
            cur.execute("UPDATE order_events SET prev_at = NULL")
        assert "append-only" in exc.value.pgerror
