/* libFuzzer: the WebSocket connection layer (ws.c + the hub) driven by a
 * script, on a real loop over a socketpair with small kernel buffers, so
 * back-pressure, the queue cap, slow-consumer drops, pings/pong timeouts and
 * close lingering all happen. Each input opens one socket through the real
 * HTTP upgrade and runs ops until the script ends; then the client closes and
 * the socket must be gone (and freed: leaks are checked) within a bound.
 *
 * Ops (one byte each, arguments follow):
 *   0 n bytes...    raw bytes from the client (n <= 255)
 *   1 b0 n bytes... one client frame with first byte b0, masked, payload n
 *   2 n             n loop turns
 *   3 n             the client reads up to n * 64 bytes
 *   4 k             an event for the socket's user (k & 1: another user's)
 *   5               ~2 ms pass, at most 4 times (ping / pong timers are 2 ms here)
 *   6               a canned client message (subscribe/resume/auth/ping/...)
 * Invariant: whatever the client reads parses as server frames (unmasked,
 * RSV 0, known opcodes, control payloads <= 125, text = a JSON object). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ot/app/hub.h"
#include "ot/cmd/app.h"
#include "ot/cmd/worker.h"
#include "ot/codec/json.h"
#include "ot/codec/jwt.h"
#include "ot/core/log.h"
#include "ot/http/http.h"
#include "ot/http/ws.h"
#include "ot/http/ws_handshake.h"
#include "ot/app/gateway.h"
#include "ot/app/hub_msg.h"
#include "ot/app/replay.h"

#define SECRET "fuzz-secret-0123456789"
#define USER_A "11111111-1111-4111-8111-111111111111"
#define USER_B "22222222-2222-4222-8222-222222222222"
#define OID "0b6f3a2e-8c1d-4e5f-9a7b-1c2d3e4f5a6b"

static ot_config cfg;
static ot_http_server wk;
static ot_app app;

/* The worker's rule (cmd/app.c): WebSockets and HTTP connections share its fd budget. */
static bool worker_room(void *data, int open)
{
    ot_http_server *w = data;
    return !w->draining && open + w->nconns <= w->max_conns;
}
static char *tok_a;
static int64_t next_seq = 1;

static uint8_t cbuf[1 << 16]; /* what the client read, not yet parsed */
static size_t clen;

static void spin(int n)
{
    for (int i = 0; i < n; i++)
        ot_loop_run_once(wk.loop, 0);
}

static void init(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the worker does: a peer gone mid-write is EPIPE */
    ot_log_set_level(OT_LOG_ERROR);
    ot_config_defaults(&cfg);
    cfg.jwt_secret = SECRET;
    cfg.ws_max_message = 512;
    cfg.ws_max_queue = 4096;
    cfg.ws_ping_ms = 2;
    cfg.ws_pong_timeout_ms = 2;
    cfg.ws_rate = 1000;
    cfg.ws_rate_burst = 8;
    cfg.ws_max_per_user = 4;
    wk.cfg = &cfg;
    wk.loop = ot_loop_new(64);
    wk.max_conns = 16;
    ot_router_init(&wk.router);
    app.hub = ot_hub_new(&(ot_hub_env){ .loop = wk.loop, .cfg = &cfg, .room = worker_room, .data = &wk });
    ot_router_add(&wk.router, "GET", "/ws/orders", "ws", ot_h_ws, app.hub);
    ot_jwt_claims c = { 0 };
    snprintf(c.sub, sizeof(c.sub), "%s", USER_A);
    c.role = OT_ROLE_CUSTOMER;
    c.iat = time(NULL);
    c.exp = c.iat + 365 * 86400;
    ot_buf b = OT_BUF_INIT;
    if (!wk.loop || !app.hub || ot_jwt_sign(OT_STR(SECRET), &c, &b) < 0)
        abort();
    ot_buf_append(&b, "", 1);
    tok_a = b.data;
}

/* Checks and drops every complete server frame in cbuf. */
static void check_frames(void)
{
    size_t off = 0;
    while (clen - off >= 2) {
        uint8_t b0 = cbuf[off], b1 = cbuf[off + 1];
        size_t h = 2, n = b1 & 0x7f;
        if (b1 & 0x80 || b0 & 0x70)
            abort(); /* masked or RSV set */
        if (n == 126) {
            if (clen - off < 4)
                break;
            n = (size_t)cbuf[off + 2] << 8 | cbuf[off + 3];
            h = 4;
        } else if (n == 127) {
            abort(); /* nothing we send is that large with these limits */
        }
        if (clen - off < h + n)
            break;
        uint8_t op = b0 & 0x0f;
        const uint8_t *p = cbuf + off + h;
        if (!(b0 & 0x80))
            abort(); /* the server never fragments */
        if (op == OT_WS_OP_TEXT) {
            ot_json_tok toks[64];
            ot_json d;
            if (ot_json_parse(&d, (const char *)p, n, toks, 64) < 0 || !ot_json_is_obj(&d, 0))
                abort();
        } else if (op == OT_WS_OP_CLOSE || op == OT_WS_OP_PING || op == OT_WS_OP_PONG) {
            if (n > 125 || (op == OT_WS_OP_CLOSE && n == 1))
                abort();
        } else {
            abort();
        }
        off += h + n;
    }
    memmove(cbuf, cbuf + off, clen - off);
    clen -= off;
}

static void client_read(int fd, size_t max)
{
    while (max > 0 && clen < sizeof(cbuf)) {
        size_t room = sizeof(cbuf) - clen;
        ssize_t r = read(fd, cbuf + clen, room < max ? room : max);
        if (r <= 0)
            break;
        clen += (size_t)r;
        max -= (size_t)r;
        check_frames();
    }
}

static void client_write(int fd, const uint8_t *p, size_t n)
{
    for (int tries = 0; n > 0 && tries < 4; tries++) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else {
            spin(1); /* let the server read; a paused one will not */
        }
    }
}

static void fake_event(bool other)
{
    char json[256];
    int n = snprintf(json, sizeof(json),
                     "{\"seq\":%lld,\"version\":1,\"orderId\":\"" OID "\",\"userId\":\"%s\",\"type\":\"order.created\","
                     "\"status\":\"CREATED\"}",
                     (long long)next_seq++, other ? USER_B : USER_A);
    ot_event ev;
    if (ot_event_parse(ot_str_make(json, (size_t)n), &ev) < 0)
        abort();
    ev.seen_us = ot_now_us();
    ot_hub_event(app.hub, &ev);
}

static const char *canned[] = {
    "{\"action\":\"subscribe\",\"orderId\":\"" OID "\"}",
    "{\"action\":\"unsubscribe\",\"orderId\":\"" OID "\"}",
    "{\"action\":\"resume\",\"since\":3}",
    "{\"action\":\"ping\"}",
    "{\"action\":\"auth\",\"token\":\"x.y.z\"}",
    "not json",
    "",
};

static int ws_open(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    int small = 4096;
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    struct sockaddr sa = { .sa_family = AF_UNIX };
    ot_http_conn_new(&wk, sv[0], &sa, sizeof(sa));
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws/orders?access_token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     tok_a);
    if (write(sv[1], req, (size_t)n) != n)
        abort();
    /* The 101, then frames. */
    char resp[256];
    size_t got = 0;
    for (int i = 0; i < 50 && !memmem(resp, got, "\r\n\r\n", 4); i++) {
        spin(1);
        ssize_t r = read(sv[1], resp + got, sizeof(resp) - got);
        if (r > 0)
            got += (size_t)r;
    }
    char *end = memmem(resp, got, "\r\n\r\n", 4);
    if (!end || memcmp(resp, "HTTP/1.1 101 ", 13) != 0)
        abort();
    size_t rest = got - (size_t)(end + 4 - resp);
    memcpy(cbuf, end + 4, rest);
    clen = rest;
    check_frames();
    return sv[1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!wk.loop)
        init();
    uint64_t t0 = ot_now_us();
    int fd = ws_open();
    if (ot_hub_count(app.hub) != 1)
        abort();
    uint8_t frame[300];
    size_t i = 0;
    int sleeps = 0;
    while (i < size) {
        uint8_t op = data[i++] % 7;
        size_t n;
        switch (op) {
        case 0:
            n = i < size ? data[i++] : 0;
            if (n > size - i)
                n = size - i;
            client_write(fd, data + i, n);
            i += n;
            break;
        case 1: {
            if (size - i < 2) {
                i = size;
                break;
            }
            uint8_t b0 = data[i++];
            n = data[i++] % 126;
            if (n > size - i)
                n = size - i;
            frame[0] = b0;
            frame[1] = (uint8_t)(0x80 | n);
            memset(frame + 2, 0, 4); /* mask key 0: the payload goes as is */
            memcpy(frame + 6, data + i, n);
            client_write(fd, frame, 6 + n);
            i += n;
            break;
        }
        case 2:
            spin(i < size ? data[i++] % 8 : 1);
            break;
        case 3:
            client_read(fd, (size_t)(i < size ? data[i++] : 1) * 64);
            break;
        case 4:
            fake_event(i < size && (data[i++] & 1));
            break;
        case 5: {
            /* Bounded per input: wall time is what limits execs/s here. */
            struct timespec ts = { 0, 2000000 };
            if (sleeps++ < 4)
                nanosleep(&ts, NULL);
            spin(2);
            break;
        }
        case 6: {
            const char *m = canned[(i < size ? data[i++] : 0) % OT_ARRAY_LEN(canned)];
            size_t ml = strlen(m);
            frame[0] = 0x81;
            frame[1] = (uint8_t)(0x80 | ml);
            memset(frame + 2, 0, 4);
            memcpy(frame + 6, m, ml);
            client_write(fd, frame, 6 + ml);
            break;
        }
        }
    }
    client_read(fd, sizeof(cbuf));
    close(fd);
    clen = 0;
    /* EOF (or a failed write) ends the socket; the linger timer bounds a close in progress. */
    for (int t = 0; t < 3000 && ot_hub_count(app.hub) > 0; t++) {
        spin(1);
        if (t > 20) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
    }
    if (ot_hub_count(app.hub) != 0)
        abort();
    if (getenv("FUZZ_WS_DEBUG"))
        fprintf(stderr, "end after %d ms of script\n", (int)((ot_now_us() - t0) / 1000));
    spin(1); /* frees the struct (after the batch) */
    return 0;
}
