#!/usr/bin/env bash
# timeInStatus of /search/analytics on PostgreSQL: the stint columns of
# sql/011 (one range scan) against the self-join of sql/007 they replaced (one
# (order_id, version) probe per event), on the same data in the same run.
#   scripts/bench-search-stints.sh [orders=300000] [ranges=20]
# The data set is scripts/lib/search-data.sql (one order every 29 s, so a
# 30-day range holds ~89,000 orders and ~230,000 events whatever the total);
# each range is 30 days from a different day, each query run once per range
# per form, alternating; the results of both forms must be equal.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
orders=${1:-300000}
ranges=${2:-20}
[ -x build/ordertrack ] || make -j2 >/dev/null
# shellcheck source=lib/benchdb.sh
. scripts/lib/benchdb.sh
bench_db "ot_bench_stints_$$"
t0=$(date +%s)
"${pg[@]}" -d "$db" -v orders="$orders" -f scripts/lib/search-data.sql
echo "data: $orders orders, $("${pg[@]}" -d "$db" -tAc "SELECT count(*) FROM order_events") events, $(( $(date +%s) - t0 )) s"
# The form sql/007 had, as a function of the scratch database.
"${pg[@]}" -d "$db" <<'SQL'
CREATE FUNCTION bench_tis_join(p_user uuid, f timestamptz, t timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_object_agg(s::text, json_build_object('avgSeconds', x.avg_s, 'p95Seconds', x.p95_s) ORDER BY s)
    FROM unnest(enum_range(NULL::order_status)) s
    LEFT JOIN (
        SELECT e.status AS st, round(avg(d)::numeric, 3) AS avg_s,
               round((percentile_cont(0.95) WITHIN GROUP (ORDER BY d))::numeric, 3) AS p95_s
        FROM (SELECT e.status, extract(epoch FROM n.created_at - e.created_at)::float8 AS d
              FROM order_events e
              JOIN order_events n ON n.order_id = e.order_id AND n.version = e.version + 1
              WHERE e.created_at >= f AND e.created_at < t AND n.created_at >= f AND n.created_at < t
                AND (p_user IS NULL OR e.user_id = p_user)) e
        GROUP BY e.status) x ON x.st = s
$$;
SQL
/usr/bin/python3 - "$url" "$ranges" <<'PY'
import sys, time
import psycopg2
url, ranges = sys.argv[1], int(sys.argv[2])
c = psycopg2.connect(url)
cur = c.cursor()
times = {"join (007)": [], "stints (011)": []}
for i in range(ranges):
    f = "2026-01-%02d" % (1 + i % 28) if i < 28 else "2026-02-%02d" % (1 + i % 28)
    got = {}
    for name, fn in (("join (007)", "bench_tis_join"), ("stints (011)", "ot_search_time_in_status")):
        t0 = time.perf_counter()
        cur.execute("SELECT %s(NULL, %%s::timestamptz, %%s::timestamptz + interval '30 days')::text" % fn,
                    (f, f))
        got[name] = cur.fetchone()[0]
        times[name].append((time.perf_counter() - t0) * 1000)
    assert got["join (007)"] == got["stints (011)"], got
# One customer's year (the index by user, not everyone's range).
cur.execute("SELECT user_id FROM orders LIMIT 1")
user = cur.fetchone()[0]
for name, fn in (("join (007)", "bench_tis_join"), ("stints (011)", "ot_search_time_in_status")):
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        cur.execute("SELECT %s(%%s, '2026-01-01', '2027-01-01')::text" % fn, (user,))
        got[name] = cur.fetchone()[0]
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    print("%-14s a customer's year: p50 %.1f ms" % (name, ts[2]))
assert got["join (007)"] == got["stints (011)"], got
for name, ts in times.items():
    ts.sort()
    print("%-14s 30-day timeInStatus over %d ranges: p50 %.1f ms, max %.1f ms" % (name, len(ts), ts[len(ts) // 2], ts[-1]))
j, s = sorted(times["join (007)"]), sorted(times["stints (011)"])
print("join / stints (p50): %.1f" % (j[len(j) // 2] / s[len(s) // 2]))
PY
