"""The plans of the statements the server prepares (`ordertrack statements`),
EXPLAINed on a copy of the schema holding 60,000 events.

What they guard: a page read of the event log costs O(page) whatever the
planner believes. On a log it has no statistics for (a fresh load; rows
appended past the last ANALYZE look the same), the planner estimated a
range of seq as ~200 rows and chose a bitmap scan of the whole range, the
event JSON built for every row in it, then a sort: each 500-row page of a
catch-up cost O(backlog), 240 ms at 30,000 events. The batch lookup of the
indexer hashed both whole tables on every batch, statistics or not.
"""
import json

import psycopg2
import pytest

from conftest import mk_user, run_cli

ORDERS = 20000


@pytest.fixture(scope="module")
def statements():
    p = run_cli("statements")
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in map(json.loads, p.stdout.splitlines())}


@pytest.fixture(scope="module", params=["never analyzed", "analyzed"])
def log_copy(request, db_url):
    """plan_t.orders and plan_t.order_events (indexes included) first on the
    search_path, 3 events per order; yields (cursor, user id, orders ids)."""
    db = psycopg2.connect(db_url)
    db.autocommit = True
    with db, db.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS plan_t CASCADE")
        cur.execute("CREATE SCHEMA plan_t")
        try:
            cur.execute("CREATE TABLE plan_t.orders (LIKE public.orders INCLUDING ALL)")
            cur.execute("CREATE TABLE plan_t.order_events (LIKE public.order_events INCLUDING ALL)")
            cur.execute("ALTER TABLE plan_t.orders SET (autovacuum_enabled = off)")
            cur.execute("ALTER TABLE plan_t.order_events SET (autovacuum_enabled = off)")
            cur.execute("SET search_path = plan_t, public")
            # The event JSON function over the copy's row type: the same body.
            cur.execute("SELECT pg_get_functiondef('public.ot_event_json(public.order_events)'::regprocedure)")
            body = cur.fetchone()[0]
            head = body.split("\n", 1)[0]
            assert head.startswith("CREATE OR REPLACE FUNCTION public.ot_event_json("), head
            cur.execute("CREATE FUNCTION plan_t.ot_event_json(e plan_t.order_events)\n" + body.split("\n", 1)[1])
            uid = mk_user(db)
            cur.execute("INSERT INTO orders (id, user_id, status, items, created_at, updated_at, version) "
                        "SELECT gen_random_uuid(), %s, 'PREPARED', '[]', now(), now(), 3 FROM generate_series(1, %s)",
                        (uid, ORDERS))
            cur.execute("INSERT INTO order_events (order_id, version, user_id, type, status, payload, actor) "
                        "SELECT o.id, v, o.user_id, 'order.updated', "
                        "(ARRAY['CREATED', 'ACCEPTED', 'PREPARED'])[v]::order_status, '{}', o.user_id "
                        "FROM orders o, generate_series(1, 3) v ORDER BY o.id, v")
            if request.param == "analyzed":
                cur.execute("ANALYZE orders; ANALYZE order_events")
            cur.execute("SELECT array_agg(id) FROM (SELECT id FROM orders LIMIT 1000) x")
            ids = cur.fetchone()[0]
            yield cur, uid, ids
        finally:
            cur.execute("SET search_path = public")
            cur.execute("DROP SCHEMA plan_t CASCADE")
    db.close()


def plan(cur, stmt, args, types, verbose=False):
    """EXPLAIN of the statement as the server runs its first executions (a
    custom plan for these values)."""
    cur.execute("DEALLOCATE ALL")
    cur.execute("PREPARE s_plan (%s) AS %s" % (", ".join(types), stmt["sql"]))
    cur.execute("EXPLAIN %sEXECUTE s_plan (%s)" % ("(VERBOSE) " if verbose else "", ", ".join(["%s"] * len(args))),
                args)
    text = "\n".join(r[0] for r in cur.fetchall())
    cur.execute("DEALLOCATE s_plan")
    return text


def event_range(cur):
    cur.execute("SELECT min(seq), max(seq) FROM order_events")
    lo, hi = cur.fetchone()
    return lo - 1, hi + 1


REPLAYS = [("sink_replay", [500]), ("hub_replay_all", []), ("hub_replay_user", ["uid"])]


def replay_plan(statements, log_copy, name, extra, verbose=False):
    cur, uid, _ = log_copy
    lo, hi = event_range(cur)
    stmt = statements[name]
    args = [lo, hi] + [uid if x == "uid" else x for x in extra]
    types = ["bigint", "bigint"] + ["uuid" if x == "uid" else "int" for x in extra]
    assert stmt["params"] == len(args)
    return plan(cur, stmt, args, types, verbose)


@pytest.mark.parametrize("name,extra", REPLAYS)
def test_a_replay_page_builds_event_json_only_for_the_rows_it_returns(statements, log_copy, name, extra):
    """Whatever the plan below it, the JSON is built above the LIMIT: the one
    customer here owns all 60,000 events, which the planner cannot know
    without statistics, so it may sort them (seq and row only, no JSON)."""
    text = replay_plan(statements, log_copy, name, extra, verbose=True)
    outputs = [l for l in text.splitlines() if l.strip().startswith("Output:")]
    # sink_replay selects the columns (the server writes the JSON from them)
    # and only the timestamp's text, ot_iso's to_char, is computed.
    built = "to_char" if name == "sink_replay" else "json_build_object"
    assert built in outputs[0], text
    assert not any(built in l for l in outputs[1:]), text


@pytest.mark.parametrize("name,extra", [r for r in REPLAYS if r[0] != "hub_replay_user"])
def test_a_replay_page_of_the_whole_log_reads_its_rows_in_index_order(statements, log_copy, name, extra):
    text = replay_plan(statements, log_copy, name, extra)
    assert "Index Scan" in text and "Limit" in text, text
    assert "Sort" not in text and "Bitmap" not in text and "Seq Scan" not in text, text


@pytest.mark.parametrize("name", ["ev_read", "ev_tail"])
def test_the_event_tail_reads_one_page_in_index_order(statements, log_copy, name):
    cur, _, _ = log_copy
    lo, _ = event_range(cur)
    # ev_tail's $2 bounds the page (with no bound: the largest bigint).
    args = [lo + 1] if name == "ev_read" else [lo + 1, 2 ** 63 - 1]
    text = plan(cur, statements[name], args, ["bigint"] * len(args))
    # (A sort of the page itself, above its LIMIT, is harmless.)
    below_limit = text.split("Limit", 1)[1] if "Limit" in text else ""
    assert "Index Scan" in below_limit, text
    assert "Sort" not in below_limit and "Bitmap" not in text and "Seq Scan" not in text, text


def test_the_indexer_lookup_probes_indexes_and_never_scans_a_whole_table(statements, log_copy):
    """A batch's lookup costs O(batch), not O(log)."""
    cur, _, ids = log_copy
    text = plan(cur, statements["indexer_created"], [ids, [2] * len(ids)], ["uuid[]", "int[]"])
    assert "Seq Scan" not in text and "Hash" not in text, text
    assert text.count("Index Scan") == 3, text
