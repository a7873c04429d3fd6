/* libFuzzer target for the HTTP connection layer (src/http/http.c) on a fake
 * loop and a fake socket, so one input is a deterministic script of what the
 * network, the clock and the handlers do:
 *
 *   byte 0        picks the limits (tiny ones reach 408/413/414/431, the
 *                 output high-water mark and the output cap quickly)
 *   then ops      0 peer sends n bytes          1 spurious readable/writable
 *                 2 peer reads n bytes (n = 0: window closed, EAGAIN)
 *                 3 clock advances, timers fire  4 read buffer moves
 *                 5 peer EOF                     6 async handler answers
 *                 7 async handler answers an error with input bytes
 *                 8 connection reset             9 drain (SIGTERM)
 *
 * Checks beyond "no sanitizer report": after every op, a request a handler
 * holds is read in full (method, path, headers, body, params), so a pointer
 * left behind by a buffer move is a use-after-free ASan sees; every byte the
 * server writes starts a response; every connection is closed and freed by
 * the end (timers and EOF), with its per-IP slot released (leak check). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sanitizer/common_interface_defs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ot/core/log.h"
#include "ot/event/io.h"
#include "ot/event/loop.h"
#include "ot/http/http.h"

static int devnull = -1, saved_err = 2;

/* fd 2 is /dev/null while a script runs (access logs): report on the real one. */
#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            dprintf(saved_err, "invariant failed: %s (line %d)\n", #c, __LINE__);    \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* ---------------------------------------------------------------- fake loop */

struct ot_loop {
    uint64_t now_ms;
    ot_fd_cb *cb;
    void *data;
    int fd;
    ot_timer *timers[16];
    size_t ntimers;
    ot_defer *defers;
};

static ot_loop fake_loop;

uint64_t ot_loop_now_ms(ot_loop *l) { return l->now_ms; }
uint64_t ot_now_us(void) { return fake_loop.now_ms * 1000; }
int ot_loop_add_fd(ot_loop *l, int fd, unsigned mask, ot_fd_cb *cb, void *data)
{
    l->fd = fd, l->cb = cb, l->data = data;
    return 0;
}
void ot_loop_del_fd(ot_loop *l, int fd)
{
    if (l->fd == fd)
        l->cb = NULL, l->fd = -1;
}
void ot_timer_init(ot_timer *t, ot_timer_cb *cb, void *data) { *t = (ot_timer){ .cb = cb, .data = data }; }
void ot_timer_stop(ot_loop *l, ot_timer *t)
{
    if (!t->heap_idx)
        return;
    for (size_t i = 0; i < l->ntimers; i++)
        if (l->timers[i] == t) {
            l->timers[i] = l->timers[--l->ntimers];
            break;
        }
    t->heap_idx = 0;
}
void ot_timer_start(ot_loop *l, ot_timer *t, uint64_t after_ms)
{
    ot_timer_stop(l, t);
    CHECK(l->ntimers < 16);
    l->timers[l->ntimers++] = t;
    t->heap_idx = l->ntimers;
    t->when_ms = l->now_ms + after_ms;
}
void ot_defer_init(ot_defer *d, ot_defer_cb *cb, void *data) { *d = (ot_defer){ NULL, false, cb, data }; }
void ot_defer_queue(ot_loop *l, ot_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = l->defers;
    l->defers = d;
}
void ot_defer_cancel(ot_loop *l, ot_defer *d)
{
    if (!d->queued)
        return;
    for (ot_defer **pp = &l->defers; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    d->queued = false;
}
static void run_defers(void)
{
    while (fake_loop.defers) {
        ot_defer *d = fake_loop.defers;
        fake_loop.defers = d->next;
        d->queued = false;
        d->cb(&fake_loop, d);
    }
}
static void advance(uint64_t ms)
{
    fake_loop.now_ms += ms;
    for (;;) {
        ot_timer *due = NULL;
        for (size_t i = 0; i < fake_loop.ntimers; i++)
            if (fake_loop.timers[i]->when_ms <= fake_loop.now_ms && (!due || fake_loop.timers[i]->when_ms < due->when_ms))
                due = fake_loop.timers[i];
        if (!due)
            break;
        ot_timer_stop(&fake_loop, due);
        due->cb(&fake_loop, due);
    }
    run_defers();
}

/* ---------------------------------------------------------------- fake socket */

static struct {
    char in[1 << 16];
    size_t in_len, in_off;
    bool eof, reset, closed;
    size_t write_budget; /* bytes the peer's window takes before EAGAIN */
    size_t out_total;
    bool out_started;
} sock;

void ot_io_init(ot_io *io, int fd, SSL_CTX *tls) { *io = (ot_io){ .fd = fd }; }
ssize_t ot_io_read(ot_io *io, void *buf, size_t len)
{
    if (sock.reset)
        return OT_ERR;
    if (sock.in_off < sock.in_len) {
        size_t n = sock.in_len - sock.in_off;
        if (n > len)
            n = len;
        memcpy(buf, sock.in + sock.in_off, n);
        sock.in_off += n;
        return (ssize_t)n;
    }
    return sock.eof ? 0 : OT_EAGAIN;
}
ssize_t ot_io_writev(ot_io *io, const struct iovec *iov, int iovcnt)
{
    if (sock.reset)
        return OT_ERR;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (sock.write_budget == 0)
        return OT_EAGAIN;
    size_t n = total < sock.write_budget ? total : sock.write_budget;
    if (!sock.out_started && n > 0) {
        /* The first bytes the server ever writes begin a response. */
        CHECK(iovcnt >= 1 && iov[0].iov_len >= 9 && memcmp(iov[0].iov_base, "HTTP/1.1 ", 9) == 0);
        sock.out_started = true;
    }
    sock.write_budget -= n;
    sock.out_total += n;
    return (ssize_t)n;
}
void ot_io_close(ot_io *io) { sock.closed = true; }
void ot_io_shutdown(ot_io *io) {}

/* ---------------------------------------------------------------- handlers */

static ot_req *held;
static volatile unsigned sink;

static void touch(ot_str s)
{
    for (size_t i = 0; i < s.len; i++)
        sink += (unsigned char)s.base[i];
}

/* Reads every byte the held request points at: a stale pointer is caught here. */
static void touch_held(void)
{
    if (!held)
        return;
    ot_http_request *h = &held->head;
    touch(h->method), touch(h->path), touch(h->query), touch(h->host), touch(h->authorization);
    for (size_t i = 0; i < h->num_headers; i++)
        touch(h->headers[i].name), touch(h->headers[i].value);
    touch(held->body);
    for (int i = 0; i < held->nparams; i++)
        touch(held->params[i]);
}

static void on_abort(ot_req *r) { held = NULL; }
static void h_async(ot_req *r)
{
    held = r;
    r->on_abort = on_abort;
}
static void h_echo(ot_req *r) { ot_respond(r, 200, "text/plain", r->body); }
static void h_big(ot_req *r)
{
    static char big[100000];
    memset(big, 'b', sizeof(big));
    ot_respond(r, 200, "text/plain", ot_str_make(big, sizeof(big)));
}
static void h_path(ot_req *r) { ot_respond_error(r, 404, "nope", "no %.*s", (int)r->head.path.len, r->head.path.base); }

/* ---------------------------------------------------------------- the script */

static ot_config cfg;
static ot_http_server w;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Access logs go to fd 2 on every response: point it at /dev/null, but
     * keep sanitizer reports on the real stderr. */
    saved_err = dup(2);
    __sanitizer_set_report_fd((void *)(intptr_t)saved_err);
    if (!getenv("FUZZ_VERBOSE"))
        devnull = open("/dev/null", O_WRONLY);
    ot_log_set_worker(0);
    ot_router_init(&w.router);
    ot_router_add(&w.router, "GET", "/slow/:id", "slow", h_async, NULL);
    ot_router_add(&w.router, "POST", "/slow/:id", "slow_post", h_async, NULL);
    ot_router_add(&w.router, "POST", "/echo", "echo", h_echo, NULL);
    ot_router_add(&w.router, "GET", "/big", "big", h_big, NULL);
    ot_router_add(&w.router, "GET", "/p/:x", "p", h_path, NULL);
    return 0;
}

static void deliver(unsigned ev)
{
    if (fake_loop.cb)
        fake_loop.cb(&fake_loop, fake_loop.fd, ev, fake_loop.data);
    run_defers();
}

static void finish_held(int status)
{
    if (!held)
        return;
    ot_req *r = held;
    held = NULL;
    r->on_abort = NULL;
    ot_respond(r, status, "text/plain", r->head.path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (devnull >= 0)
        dup2(devnull, 2);
    memset(&sock, 0, sizeof(sock));
    memset(&fake_loop, 0, sizeof(fake_loop));
    fake_loop.fd = -1;
    sock.write_budget = SIZE_MAX;
    held = NULL;
    ot_config_defaults(&cfg);
    uint8_t k = data[0];
    if (k & 1) {
        cfg.max_uri_bytes = 64, cfg.max_header_bytes = 256, cfg.max_headers = 4, cfg.max_body_bytes = 128;
    }
    cfg.http_output_high_water = (k & 2) ? 1024 : 65536;
    cfg.max_output_bytes = (k & 4) ? 150000 : 8u << 20;
    cfg.header_timeout_ms = 50, cfg.idle_timeout_ms = 200, cfg.write_timeout_ms = 100;
    cfg.max_conns_per_ip = (k & 8) ? 1 : 256;
    w.cfg = &cfg;
    w.loop = &fake_loop;
    w.max_conns = 10;
    w.conns = NULL;
    w.nconns = 0;
    w.draining = false;

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000001) };
    ot_http_conn_new(&w, 7, (struct sockaddr *)&sa, sizeof(sa));
    run_defers();

    size_t i = 1;
    while (i < size && w.conns) {
        uint8_t op = data[i++] % 10;
        uint8_t n = i < size ? data[i++] : 0;
        switch (op) {
        case 0: { /* peer sends n bytes of the input */
            size_t m = n;
            if (m > size - i)
                m = size - i;
            if (sock.in_len + m <= sizeof(sock.in)) {
                memcpy(sock.in + sock.in_len, data + i, m);
                sock.in_len += m;
            }
            i += m;
            deliver(OT_READABLE);
            break;
        }
        case 1:
            deliver(n & 1 ? OT_WRITABLE : OT_READABLE | OT_HANGUP);
            break;
        case 2:
            sock.write_budget = n == 255 ? SIZE_MAX : (size_t)n * 64;
            deliver(OT_WRITABLE);
            break;
        case 3:
            advance((uint64_t)n * 2);
            break;
        case 4:
            if (w.conns)
                ot_http_conn_move_rbuf(w.conns);
            break;
        case 5:
            sock.eof = true;
            deliver(OT_READABLE | OT_HANGUP);
            break;
        case 6:
            finish_held(n & 1 ? 200 : 503);
            run_defers();
            break;
        case 7:
            if (held) {
                ot_req *r = held;
                held = NULL;
                r->on_abort = NULL;
                size_t m = n < size - i ? n : size - i;
                ot_respond_error(r, 400, "bad", "%.*s", (int)m, (const char *)data + i);
                i += m;
                run_defers();
            }
            break;
        case 8:
            sock.reset = true;
            deliver(OT_READABLE | OT_WRITABLE | OT_HANGUP);
            break;
        case 9:
            w.draining = true;
            ot_http_drain(&w);
            run_defers();
            break;
        }
        touch_held();
    }

    /* Wind down: the handler answers, the peer reads everything and leaves,
     * and every timer runs out; nothing may stay open or allocated. */
    /* One held request is answered per round, and a peer may have pipelined
     * as many requests as the input buffer holds before its EOF (each is
     * still answered): bound the rounds by that, not by a small constant. */
    for (int round = 0; round < (int)sizeof(sock.in) / 16 + 8 && w.conns; round++) {
        finish_held(200);
        sock.write_budget = SIZE_MAX;
        sock.eof = true;
        deliver(OT_READABLE | OT_WRITABLE | OT_HANGUP);
        advance(100000);
    }
    run_defers();
    CHECK(w.conns == NULL && w.nconns == 0);
    CHECK(held == NULL);
    CHECK(fake_loop.ntimers == 0);
    if (devnull >= 0)
        dup2(saved_err, 2);
    return 0;
}
