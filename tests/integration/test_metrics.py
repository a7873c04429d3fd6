"""GET /metrics: Prometheus text from every worker, request counters by route
and status, the latency histogram, and the database pool gauges."""
import re
import time

from conftest import request, scaled


def metrics(port):
    st, _, body = request(port, "GET", "/metrics")
    assert st == 200
    return body.decode() if isinstance(body, bytes) else body


def sample(text, name, **labels):
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(lab.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            found = True
    return total if found else None


def test_request_counters_histogram_and_pool_gauges(server):
    srv = server(workers=2)
    for _ in range(7):
        assert request(srv.port, "GET", "/healthz")[0] == 200
    for _ in range(3):
        assert request(srv.port, "GET", "/orders/not-a-uuid")[0] == 401
    deadline = time.monotonic() + scaled(5)
    while True:
        text = metrics(srv.port)
        up = sample(text, "ordertrack_pg_connections_up")
        if up and up >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert up == 8, "2 workers x 4 pooled connections should be up, got %r" % up
    assert sample(text, "ordertrack_http_requests_total", route="healthz", code="200") >= 7
    assert sample(text, "ordertrack_http_requests_total", route="orders_get", code="401") == 3
    # Histogram: cumulative buckets, +Inf equals the count.
    inf = sample(text, "ordertrack_http_request_duration_seconds_bucket", route="healthz", le="+Inf")
    cnt = sample(text, "ordertrack_http_request_duration_seconds_count", route="healthz")
    assert inf == cnt and cnt >= 7
    # Both workers report, each with its own label.
    workers = set(re.findall(r'ordertrack_connections_open\{worker="(\d+)"\}', text))
    assert workers == {"0", "1"}
