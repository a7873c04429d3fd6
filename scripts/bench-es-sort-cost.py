#!/usr/bin/env python3
"""What the orders index sort (index.sort createdUs desc, orderId desc; the
orders template in src/app/indexer.c) costs Elasticsearch at write time: the
same stream of order documents (each order's three versions, the second and
third 20 and 40 orders later, as the indexer writes them in seq order) into
an unsorted and a sorted index, in alternating rounds, then a refresh and a
force-merge to one segment. Prints the node's CPU seconds (its own
_nodes/stats) and wall seconds per round. Not a test; the first round warms
the JVM. Run against a node nobody else loads (ES_PORT, default 9200):
  ES_PORT=19300 scripts/bench-es-sort-cost.py [orders=150000] [rounds=4]
The mapping is read from src/app/indexer.c (OT_ES_MAPPINGS), so it follows the code."""
import json
import os
import random
import re
import sys
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ES = "http://127.0.0.1:%s" % os.environ.get("ES_PORT", "9200")
SORT = {"sort.field": ["createdUs", "orderId"], "sort.order": ["desc", "desc"]}


def req(method, path, body=None, ctype="application/json"):
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    r = urllib.request.Request(ES + path, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(r, timeout=600) as a:
        return json.load(a)


def node_cpu_s():
    nodes = req("GET", "/_nodes/_local/stats/process?filter_path=nodes.*.process.cpu.total_in_millis")["nodes"]
    return next(iter(nodes.values()))["process"]["cpu"]["total_in_millis"] / 1000.0


def mappings():
    src = open(os.path.join(ROOT, "src", "app", "indexer.c")).read()
    macro = re.search(r"#define OT_ES_MAPPINGS(.*?)\n\n", src, re.S).group(1)
    return json.loads("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', macro)).encode().decode("unicode_escape"))


def bulks(n):
    rnd = random.Random(1)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(n)]
    users = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(1000)]
    stream = [(k - lag, v) for k in range(n + 40) for v, lag in ((1, 0), (2, 20), (3, 40)) if 0 <= k - lag < n]
    out = []
    for j in range(0, len(stream), 2000):
        lines = []
        for i, v in stream[j:j + 2000]:
            lines.append(json.dumps({"index": {"_id": ids[i]}}))
            lines.append(json.dumps({
                "id": ids[i], "orderId": ids[i], "userId": users[i % 1000],
                "status": ["CREATED", "ACCEPTED", "PREPARED"][v - 1], "items": [{"productId": "sku-1", "qty": 2}],
                "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "version": v,
                "createdUs": 1767225600000000 + i * 29000000, "seq": i * 3 + v, "createdHour": i % 24,
                "createdDow": i % 7}))
        out.append(("\n".join(lines) + "\n").encode())
    return len(stream), out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 150000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    m = mappings()
    writes, bs = bulks(n)
    for r in range(rounds):
        sort = r % 2 == 1
        name = "ot-sortcost-%d-%d" % (os.getpid(), r)
        settings = dict({"number_of_shards": 1, "number_of_replicas": 0}, **(SORT if sort else {}))
        req("PUT", "/" + name, {"settings": settings, "mappings": m})
        try:
            c0, w0 = node_cpu_s(), time.monotonic()
            for b in bs:
                a = req("POST", "/%s/_bulk?filter_path=errors" % name, b, "application/x-ndjson")
                assert not a.get("errors"), a
            req("POST", "/%s/_refresh" % name)
            req("POST", "/%s/_forcemerge?max_num_segments=1" % name)
            c1, w1 = node_cpu_s(), time.monotonic()
        finally:
            req("DELETE", "/" + name)
        print("round %d %-8s %d writes: node CPU %.1f s, wall %.1f s" % (
            r + 1, "sorted" if sort else "unsorted", writes, c1 - c0, w1 - w0), flush=True)
    print("(load average %s)" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
