"""Soak load and sampler behind scripts/soak.sh (`make soak`). Not a unit test.

Mixed load for SOAK_SECONDS: REST writers and readers (POST /orders, GET
/orders/:id, PATCH status) on keep-alive connections, SOAK_WS WebSockets on
/ws/orders with churn (SOAK_CHURN sockets/s closed and reopened with
?since=<last seq>, the resume path). Every SOAK_SAMPLE_S seconds one CSV row:
t, server RSS (KiB, master + workers), open fds, REST p99 (ms) of that window,
outbox backlog (sum over workers from /metrics), WebSockets open, requests,
errors. Exit status 1 when RSS grows (least-squares slope past warm-up over
SOAK_MAX_RSS_SLOPE_KB_MIN KiB/min), fds grow (over SOAK_MAX_FD_GROWTH), or
more than 1% of requests fail (any answer but the expected 2xx counts, a 429
included: a soak that the server's abuse limits throttle measures nothing), or
fewer than 95% of the WebSockets stay open.""" 

import asyncio
import base64
import json
import os
import random
import statistics
import sys
import time

PORT = int(os.environ["SOAK_PORT"])
MASTER = int(os.environ["SOAK_MASTER_PID"])
SECONDS = float(os.environ.get("SOAK_SECONDS", "1800"))
NWS = int(os.environ.get("SOAK_WS", "10000"))
CHURN = float(os.environ.get("SOAK_CHURN", "20"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10"))
RESTN = int(os.environ.get("SOAK_REST_CONNS", "8"))
# Paced, so the soak is a steady mixed load rather than a throughput race.
REST_RPS = float(os.environ.get("SOAK_REST_RPS", "400"))
CSV = os.environ["SOAK_CSV"]
MAX_SLOPE = float(os.environ.get("SOAK_MAX_RSS_SLOPE_KB_MIN", "1024"))
MAX_FD_GROWTH = int(os.environ.get("SOAK_MAX_FD_GROWTH", "100"))
ADMIN = os.environ["SOAK_ADMIN_TOKEN"]
CUSTOMERS = json.loads(os.environ["SOAK_CUSTOMERS"])  # [[uid, token], ...]

lat = []            # REST latencies (s) of the current window
stats = {"req": 0, "err": 0, "ws_open": 0, "ws_frames": 0, "ws_fail": 0, "resumes": 0}
last_seq = [0]
ALL = set()  # every task still running, cancelled at the end


def spawn(coro):
    t = asyncio.ensure_future(coro)
    ALL.add(t)
    t.add_done_callback(ALL.discard)
    return t
stop_at = time.monotonic() + SECONDS


async def http(reader, writer, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n" % (
        method, path, token, len(data))
    if body is not None:
        head += "Content-Type: application/json\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    n = 0
    for h in lines[1:]:
        if h.lower().startswith("content-length:"):
            n = int(h.split(":", 1)[1])
    payload = await reader.readexactly(n) if n else b""
    return status, payload


async def rest_worker(i):
    reader = writer = None
    next_at = time.monotonic()
    orders = []
    while time.monotonic() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
            uid, tok = random.choice(CUSTOMERS)
            r = random.random()
            t0 = time.monotonic()
            if r < 0.3 or not orders:
                st, p = await http(reader, writer, "POST", "/orders", tok,
                                   {"items": [{"productId": "soak-%d" % random.randint(1, 50), "qty": 1}]})
                ok = st == 201
                if st == 201:
                    orders.append(json.loads(p)["id"])
                    orders[:] = orders[-200:]
            elif r < 0.5:
                oid = random.choice(orders)
                st, p = await http(reader, writer, "PATCH", "/orders/%s/status" % oid, ADMIN,
                                   {"status": random.choice(["ACCEPTED", "CANCELED"])})
                ok = st in (200, 409)  # 409: a repeated transition is a fine answer
            else:
                st, p = await http(reader, writer, "GET", "/orders/%s" % random.choice(orders), ADMIN)
                ok = st == 200
            lat.append(time.monotonic() - t0)
            stats["req"] += 1
            if not ok:
                stats["err"] += 1
                stats["status_%d" % st] = stats.get("status_%d" % st, 0) + 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            stats["err"] += 1
            if writer:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
        next_at += RESTN / REST_RPS
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def mask_frame(opcode, payload):
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + masked


class Ws:
    def __init__(self, token):
        self.token = token
        self.writer = None
        self.task = None
        self.closing = False

    async def run(self, since=None):
        path = "/ws/orders?access_token=%s" % self.token + ("&since=%d" % since if since else "")
        try:
            reader, self.writer = await asyncio.open_connection("127.0.0.1", PORT)
            key = base64.b64encode(os.urandom(16)).decode()
            self.writer.write(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                stats["ws_fail"] += 1
                return
            stats["ws_open"] += 1
            try:
                while True:
                    h = await reader.readexactly(2)
                    op, n = h[0] & 0x0F, h[1] & 0x7F
                    if n == 126:
                        n = int.from_bytes(await reader.readexactly(2), "big")
                    elif n == 127:
                        n = int.from_bytes(await reader.readexactly(8), "big")
                    payload = await reader.readexactly(n)
                    if op == 0x9:
                        self.writer.write(mask_frame(0xA, payload))
                    elif op == 0x1:
                        stats["ws_frames"] += 1
                        try:
                            seq = json.loads(payload)["data"]["seq"]
                            last_seq[0] = max(last_seq[0], seq)
                        except (ValueError, KeyError, TypeError):
                            pass
                    elif op == 0x8:
                        return
            finally:
                stats["ws_open"] -= 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            if not self.closing:  # our own churn close ends the read loop too
                stats["ws_fail"] += 1
        finally:
            if self.writer:
                self.writer.close()

    def start(self, since=None):
        self.closing = False
        self.task = spawn(self.run(since))

    async def churn(self):
        self.closing = True
        if self.writer:
            try:
                self.writer.write(mask_frame(0x8, b"\x03\xe8"))
                self.writer.close()
            except OSError:
                pass
        if self.task:
            try:
                await asyncio.wait_for(self.task, 5)
            except (asyncio.TimeoutError, Exception):
                self.task.cancel()
        if time.monotonic() < stop_at:
            stats["resumes"] += 1
            self.start(since=last_seq[0] or None)


def procs():
    pids = [MASTER]
    try:
        with open("/proc/%d/task/%d/children" % (MASTER, MASTER)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return pids


def sample_proc():
    rss = fds = 0
    for p in procs():
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            fds += len(os.listdir("/proc/%d/fd" % p))
        except OSError:
            pass
    return rss, fds


async def backlog():
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        st, body = await http(reader, writer, "GET", "/metrics", ADMIN)
        writer.close()
        total = 0
        for line in body.decode().splitlines():
            if line.startswith("ordertrack_outbox_backlog_events{"):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return -1


def slope(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


async def main():
    t_start = time.monotonic()
    socks = [Ws(random.choice(CUSTOMERS)[1] if i % 50 else ADMIN) for i in range(NWS)]
    for i, s in enumerate(socks):  # ramp up without a SYN storm
        s.start()
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(rest_worker(i)) for i in range(RESTN)]
    rows = []
    out = open(CSV, "w")
    out.write("t_s,rss_kb,fds,p99_ms,outbox_backlog,ws_open,requests,errors\n")
    next_sample = time.monotonic() + SAMPLE_S
    churn_acc = 0.0
    while time.monotonic() < stop_at:
        await asyncio.sleep(0.1)
        churn_acc += CHURN * 0.1
        while churn_acc >= 1:
            churn_acc -= 1
            spawn(random.choice(socks).churn())
        if time.monotonic() >= next_sample:
            next_sample += SAMPLE_S
            window, lat[:] = lat[:], []
            p99 = sorted(window)[int(0.99 * (len(window) - 1))] * 1000 if window else 0.0
            rss, fds = sample_proc()
            bl = await backlog()
            row = (round(time.monotonic() - t_start, 1), rss, fds, round(p99, 2), bl, stats["ws_open"],
                   stats["req"], stats["err"])
            rows.append(row)
            out.write(",".join(str(x) for x in row) + "\n")
            out.flush()
            print("soak: t=%6.1fs rss=%d KiB fds=%d p99=%.1f ms backlog=%d ws=%d req=%d err=%d" % row, flush=True)
    for t in rest:
        t.cancel()
    pending = list(ALL) + rest
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out.close()

    verdict = []
    warm = max(1, len(rows) // 5)
    body = rows[warm:]
    if len(body) >= 3:
        s_kb_min = slope([r[0] / 60 for r in body], [r[1] for r in body])
        fd_growth = statistics.median([r[2] for r in body[-3:]]) - statistics.median([r[2] for r in body[:3]])
        print("soak: RSS slope %.1f KiB/min (limit %.0f), fd growth %d (limit %d), %d requests, %d errors, "
              "%d resumes, %d WebSocket frames" % (s_kb_min, MAX_SLOPE, fd_growth, MAX_FD_GROWTH, stats["req"],
                                                   stats["err"], stats["resumes"], stats["ws_frames"]))
        if s_kb_min > MAX_SLOPE:
            verdict.append("RSS grows %.1f KiB/min" % s_kb_min)
        if fd_growth > MAX_FD_GROWTH:
            verdict.append("fds grew by %d" % fd_growth)
    else:
        verdict.append("too few samples (%d) to judge growth: run longer" % len(rows))
    if stats["req"] == 0 or stats["err"] > 0.01 * stats["req"]:
        by = ", ".join("%s: %d" % (k, v) for k, v in sorted(stats.items()) if k.startswith("status_"))
        verdict.append("%d of %d requests failed (%s)" % (stats["err"], stats["req"], by or "connection errors"))
    if body:
        ws_med = statistics.median([r[5] for r in body])
        print("soak: WebSockets open (median after warm-up) %d of %d, %d failed opens"
              % (ws_med, NWS, stats["ws_fail"]), flush=True)
        if ws_med < 0.95 * NWS:
            verdict.append("only %d of %d WebSockets open" % (ws_med, NWS))
    if verdict:
        print("soak: FAIL: " + "; ".join(verdict), flush=True)
        return 1
    print("soak: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
