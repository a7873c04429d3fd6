"""A small RFC 6455 client for the tests (stdlib only), written independently
of the server's code. It can also misbehave on purpose: unmasked frames, bad
UTF-8, oversized messages, not answering pings, not reading at all."""

import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    def __init__(self, status, headers, body):
        super().__init__("handshake refused: %s %r" % (status, body[:200]))
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class Closed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


def _read_http_head(sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no handshake answer")
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


class WS:
    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.auto_pong = True
        self.pings = []  # payloads of pings the server sent

    # ------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, port, token=None, query="", headers=None, bearer=True, timeout=5.0, rcvbuf=None,
                version="13", key=None):
        """Opens /ws/orders; raises HandshakeError unless the answer is 101.
        token goes in the Authorization header (bearer=True) or ?access_token=."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        key = key or base64.b64encode(os.urandom(16)).decode()
        q = query
        if token and not bearer:
            q = (q + "&" if q else "") + "access_token=" + token
        path = "/ws/orders" + ("?" + q if q else "")
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key]
        if version is not None:
            lines.append("Sec-WebSocket-Version: " + version)
        if token and bearer:
            lines.append("Authorization: Bearer " + token)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, hdrs, rest = _read_http_head(sock, time.monotonic() + timeout)
        if status != 101:
            body = rest
            n = int(hdrs.get("content-length", "0"))
            while len(body) < n:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
            sock.close()
            raise HandshakeError(status, hdrs, body)
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert hdrs.get("sec-websocket-accept") == want, hdrs
        assert hdrs.get("upgrade", "").lower() == "websocket", hdrs
        return cls(sock, rest)

    # ------------------------------------------------------------ sending

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            mk = os.urandom(4)
            payload = bytes(b ^ mk[i & 3] for i, b in enumerate(payload))
            head += mk
        self.sock.sendall(head + payload)

    def send_json(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj))

    def close(self, code=1000, reason=""):
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())

    # ------------------------------------------------------------ receiving

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for a frame")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise Closed("reset")
        if not chunk:
            raise Closed("eof")
        self.buf += chunk

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next frame, answering pings when
        auto_pong (and still returning them)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames must not be masked (RFC 6455 5.1)"
                n, h = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, h = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, h = struct.unpack("!Q", self.buf[2:10])[0], 10
                if (b1 & 0x7F) < 126 or h > 2:
                    if len(self.buf) >= h + n:
                        payload = bytes(self.buf[h:h + n])
                        del self.buf[:h + n]
                        op = b0 & 0x0F
                        if op == OP_PING:
                            self.pings.append(payload)
                            if self.auto_pong:
                                self.send_frame(OP_PONG, payload)
                        return bool(b0 & 0x80), op, payload
            self._fill(deadline)

    def recv_msg(self, timeout=5.0):
        """Next data message as parsed JSON; control frames are skipped (a
        Close raises Closed with its code in .code)."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_CLOSE:
                e = Closed("close frame")
                e.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                e.reason = payload[2:].decode()
                raise e
            if op == OP_TEXT:
                assert fin, "the server does not fragment"
                return json.loads(payload)

    def wait_for(self, pred, timeout=5.0):
        """Messages until pred(msg) is true: (match, messages seen before it)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            m = self.recv_msg(max(0.0, deadline - time.monotonic()))
            if pred(m):
                return m, seen
            seen.append(m)

    def collect(self, duration):
        """Every data message that arrives within `duration` seconds."""
        out = []
        deadline = time.monotonic() + duration
        while True:
            try:
                out.append(self.recv_msg(max(0.0, deadline - time.monotonic())))
            except socket.timeout:
                return out

    def wait_close(self, timeout=5.0):
        """Reads until the server's Close frame: (code, reason)."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return code, payload[2:].decode()

    def wait_eof(self, timeout=5.0):
        """True once the server closed TCP (frames before it are discarded)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                self.buf.clear()
        except Closed:
            return True

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
