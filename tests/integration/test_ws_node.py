"""Interop: Node's `ws` package, an independent RFC 6455 implementation, as the
client. It must upgrade, receive pushes caused by real HTTP writes, get a pong
for its ping, and finish a clean close handshake (1000 echoed)."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, request, scaled
from test_ws import env  # noqa: F401  (fixture: server + users + live events)

NODE_DIR = os.path.join(ROOT, "tests", "integration", "node")


def run_node(url, want, timeout_ms):
    assert shutil.which("node"), "node is required (scripts/setup-deps.sh installs it)"
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")), \
        "run scripts/test-integration.sh (it installs the ws package)"
    return subprocess.Popen(["node", os.path.join(NODE_DIR, "ws_client.js"), url, str(want), str(timeout_ms)],
                            stdout=subprocess.PIPE, text=True)


def lines(proc, timeout):
    out, _ = proc.communicate(timeout=timeout)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def test_node_ws_client_receives_pushes_from_http_writes(env):
    url = "ws://127.0.0.1:%d/ws/orders?access_token=%s" % (env.port, env.ta)
    proc = run_node(url, 2, int(scaled(8000)))
    # Wait for the upgrade before writing, so both events are live pushes.
    first = proc.stdout.readline()
    assert json.loads(first) == {"open": True}
    st, _, order = request(env.port, "POST", "/orders", {"items": [{"productId": "node-1", "qty": 3}]}, token=env.ta)
    assert st == 201
    st, _, _ = request(env.port, "PATCH", "/orders/%s/status" % order["id"], {"status": "ACCEPTED"}, token=env.tadmin)
    assert st == 200
    seen = lines(proc, scaled(10))
    msgs = [l["message"] for l in seen if "message" in l]
    assert [m["event"] for m in msgs] == ["order.updated", "order.updated"]
    assert [(m["data"]["orderId"], m["data"]["version"], m["data"]["status"]) for m in msgs] == [
        (order["id"], 1, "CREATED"), (order["id"], 2, "ACCEPTED")]
    assert msgs[0]["data"]["payload"]["items"] == [{"productId": "node-1", "qty": 3}]
    assert all(l.get("binary") is False for l in seen if "message" in l)
    assert {"pong": "interop"} in seen
    closes = [l for l in seen if "close" in l]
    assert closes and closes[0]["close"] == 1000
    assert not [l for l in seen if "error" in l or "timeout" in l]


def test_node_ws_client_without_token_is_refused_with_401(env):
    proc = run_node("ws://127.0.0.1:%d/ws/orders" % env.port, 1, int(scaled(5000)))
    seen = lines(proc, scaled(8))
    assert {"status": 401} in seen
