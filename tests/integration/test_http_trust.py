"""Issue 10 on the HTTP side: memory safety of parsed heads across buffer
moves, the per-connection output cap, a minimum transfer rate for slow readers,
the per-IP connection cap, valid JSON error bodies whatever is truncated, and
config values refused with the flag named."""

import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import OT_BIN, ASAN, free_port, run_cli, scaled

from test_http import Reader, connect, error_body, req

SAN_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error:")


def access_lines(srv):
    return [l for l in srv.log_lines() if l.get("type") == "access"]


# ---------------------------------------------------------------- finding 1

def test_incomplete_head_timing_out_logs_its_own_method_and_path_not_freed_memory(server):
    # The request line and one header arrive in one segment after the first
    # (empty) read; the read buffer then grows while the parsed head points
    # into it. The 408 and its access log line must use live bytes.
    srv = server(workers=1, args=["--header-timeout-ms", "300"])
    path = "/some/path/" + "A" * 31
    with connect(srv.port) as s:
        time.sleep(0.2)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n" % path).encode())
        r = Reader(s)
        s.settimeout(scaled(3))
        status, hdrs, body = r.response()
        assert status == 408
        assert error_body(body)["code"] == "request_timeout"
        assert r.closed(timeout=scaled(2))
    deadline = time.monotonic() + scaled(2)
    while time.monotonic() < deadline:
        lines = [l for l in access_lines(srv) if l.get("status") == 408]
        if lines:
            break
        time.sleep(0.05)
    text = srv.log_text()
    assert not any(m in text for m in SAN_MARKS), srv.log_tail(80)
    assert srv.alive()
    assert lines, srv.log_tail()
    assert lines[-1]["method"] == "GET"
    assert lines[-1]["path"] == path
