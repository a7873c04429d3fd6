#!/usr/bin/env python3
"""Keep-alive load for instruction counting (scripts/bench-cpu.sh): CONNS
connections, each sending REQS requests one at a time (all connections in
lock step), every answer read whole before the next request. The client's own
cost is not measured; only the server runs under callgrind.

  ka_client.py HOST PORT CONNS REQS METHOD PATH [BODY_FILE] [TOKEN]
Exits non-zero if any answer is not 2xx."""
import socket
import sys


def read_answer(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("ka_client: connection closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += s.recv(65536)
    if not 200 <= status < 300:
        raise SystemExit("ka_client: status %d: %r" % (status, rest[:200]))
    return rest[length:]


def main():
    host, port, conns, reqs, method, path = sys.argv[1:7]
    body = open(sys.argv[7], "rb").read() if len(sys.argv) > 7 and sys.argv[7] else b""
    token = sys.argv[8] if len(sys.argv) > 8 else ""
    head = "%s %s HTTP/1.1\r\nHost: bench\r\n" % (method, path)
    if token:
        head += "Authorization: Bearer %s\r\n" % token
    if body:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    req = head.encode() + b"\r\n" + body
    socks = [socket.create_connection((host, int(port))) for _ in range(int(conns))]
    bufs = [b""] * len(socks)
    for _ in range(int(reqs)):
        for s in socks:
            s.sendall(req)
        for i, s in enumerate(socks):
            bufs[i] = read_answer(s, bufs[i])


main()
