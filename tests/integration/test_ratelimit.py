"""Per-client-IP token bucket: bursts beyond the limit get 429 with Retry-After,
monitoring endpoints stay reachable, and the bucket refills."""
import time

from conftest import request

NO_DB = {"DATABASE_URL": None}


def test_ip_limit_gives_429_with_retry_after_and_spares_healthz(server):
    srv = server(workers=1, env=NO_DB, args=["--rate-ip", "2", "--rate-ip-burst", "5"])
    codes = [request(srv.port, "GET", "/no-such-route")[0] for _ in range(8)]
    assert codes[:5] == [404] * 5
    assert 429 in codes[5:]
    status, headers, body = request(srv.port, "GET", "/no-such-route")
    if status == 429:
        assert int(headers["retry-after"]) >= 1
        assert body["error"]["code"] == "rate_limited"
    # Health and metrics are never throttled.
    assert all(request(srv.port, "GET", "/healthz")[0] == 200 for _ in range(10))
    time.sleep(1.1)  # 2 tokens/s: at least one back
    assert request(srv.port, "GET", "/no-such-route")[0] == 404


def test_ip_limit_off_by_default(server):
    srv = server(workers=1, env=NO_DB)
    assert all(request(srv.port, "GET", "/nope")[0] == 404 for _ in range(150))
