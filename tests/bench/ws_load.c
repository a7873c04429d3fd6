/* ws_load: the WebSocket load generator behind scripts/bench-ws.sh. Not a test.
 *
 * One epoll loop per process, non-blocking sockets, level-triggered (the tool
 * reads once per wake-up; simpler than edge-triggered and the loop is not what
 * is being measured). Three modes:
 *
 *   e2e     one subscribed socket + a few keep-alive HTTP connections; writes at
 *           a fixed rate, each push matched to its write by orderId+version;
 *           prints p50/p99/p999 of write-sent -> frame-arrived. --ws-port puts
 *           the socket on another server than the writes (bench-kafka.sh:
 *           pushes that reach it only through Kafka); --max-lost 0 fails the
 *           run on a single missing push; --settle 1 starts the timed writes
 *           only once every setup creation has been pushed.
 *   fanout  N sockets across P forked processes; one trigger per round; prints
 *           the median over rounds of trigger-sent -> last socket received.
 *   idle    N sockets across P processes held open (pings answered) for S
 *           seconds; prints READY when all are up so the script samples RSS.
 *
 * --target ordertrack triggers with POST /orders (setup) and PATCH
 * /orders/:id/status; --target peer triggers with POST /publish carrying the
 * frame the peer must broadcast. Times come from CLOCK_MONOTONIC, which is one
 * clock for every process on the machine, so children's arrival times compare
 * directly with the parent's send times.
 *
 * Each process binds its sockets to its own source address 127.0.0.(src-base+k)
 * and ports from 20000 up, so 100k sockets fit without exhausting a 4-tuple range.
 *
 * Limits worth knowing: the handshake's Sec-WebSocket-Accept is not verified
 * (the status line must be 101), frames are assumed unfragmented (both servers
 * send whole frames), and every loop has a deadline (--timeout). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RBUF 65536
#define MAX_ROUNDS 64
#define MAX_PROCS 32
#define HTTP_BUF 16384
#define STATUSES 4

enum { M_E2E, M_FANOUT, M_IDLE };
enum { T_OT, T_PEER };
enum { C_CONNECTING = 1, C_UPGRADING, C_OPEN, C_DEAD };
enum { K_WS = 1, K_HTTP, K_PIPE };

static const char *const status_seq[STATUSES] = { "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED" };

static struct {
    int mode, target;
    int port, ws_port; /* ws_port 0: --port */
    const char *path, *ws_token, *http_token;
    int conns, procs, src_base, inflight;
    int rate, http_conns;
    double duration, warmup;
    int rounds;
    double hold;
    int timeout_s;
    const char *cpu_pids;
    int max_lost; /* e2e: more pushes missing than this fails the run (-1: 1 %) */
    int settle;   /* e2e: wait for every creation's push before the timed writes */
} O = { .port = 8080, .path = "/ws/orders", .conns = 1, .procs = 1, .src_base = 10, .inflight = 128,
        .rate = 1000, .http_conns = 32, .duration = 10, .warmup = 1, .rounds = 7, .hold = 10, .timeout_s = 240, .max_lost = -1 };

static int ep;
static uint8_t rbuf[RBUF];
static char ws_req[4096];
static size_t ws_req_len;
static int64_t deadline_ns;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "ws_load: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void ep_ctl(int op, int fd, uint32_t events, uint32_t kind, uint32_t idx)
{
    struct epoll_event ev = { .events = events, .data.u64 = ((uint64_t)kind << 32) | idx };
    if (epoll_ctl(ep, op, fd, &ev) < 0)
        die("epoll_ctl");
}

/* Waits for at most until_ns (absolute); ns-resolution so a 1 ms send period
 * is kept without spinning a core the server needs. */
static int ep_wait(struct epoll_event *evs, int max, int64_t until_ns)
{
    int64_t d = until_ns - now_ns();
    if (d < 0)
        d = 0;
    struct timespec ts = { .tv_sec = d / 1000000000, .tv_nsec = d % 1000000000 };
    int n = epoll_pwait2(ep, evs, max, &ts, NULL);
    if (n < 0 && errno != EINTR)
        die("epoll_pwait2");
    return n < 0 ? 0 : n;
}

/* ---------------------------------------------------------------- WebSocket clients */

typedef struct {
    int fd;
    uint8_t st;
    uint32_t frames; /* text frames received */
    uint8_t *pend;   /* bytes of an incomplete head or frame, malloc'd only then */
    uint32_t plen;
} wsconn;

static wsconn *ws;
static int nws, ws_next, ws_open, ws_failed, ws_pending;
static struct in_addr src_addr;
static int src_port = 20000; /* 20000-65535: room for 45k sockets per source address */
typedef void text_cb(wsconn *c, const uint8_t *p, size_t n, int64_t t);
static text_cb *on_text;

static void ws_kill(wsconn *c)
{
    if (c->st == C_DEAD)
        return;
    if (c->st == C_OPEN)
        ws_open--;
    else
        ws_pending--;
    ws_failed++;
    c->st = C_DEAD;
    close(c->fd);
    free(c->pend);
    c->pend = NULL;
    c->plen = 0;
}

static void ws_start(int i)
{
    wsconn *c = &ws[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    /* Source ports are chosen here, not by the kernel: with tens of
     * thousands of sockets the kernel's search for a free 4-tuple at connect()
     * (__inet_check_established) turned quadratic and took most of a minute.
     * Each process has its own source address, so its ports are its own;
     * SO_REUSEADDR lets a port whose old connection is in TIME_WAIT be reused. */
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = src_addr };
    for (;;) {
        if (src_port > 65535) {
            fprintf(stderr, "ws_load: out of source ports\n");
            exit(2);
        }
        sa.sin_port = htons((uint16_t)src_port++);
        if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        if (errno != EADDRINUSE)
            die("bind source address");
    }
    struct sockaddr_in da = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(O.ws_port ? O.ws_port : O.port)) };
    da.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->st = C_CONNECTING;
    ws_pending++;
    if (connect(c->fd, (struct sockaddr *)&da, sizeof(da)) < 0 && errno != EINPROGRESS) {
        ws_kill(c);
        return;
    }
    ep_ctl(EPOLL_CTL_ADD, c->fd, EPOLLOUT | EPOLLIN, K_WS, (uint32_t)i);
}

static void ws_start_more(void)
{
    while (ws_next < nws && ws_pending < O.inflight)
        ws_start(ws_next++);
}

/* A client frame must be masked (RFC 6455 §5.3); a pong echoes the ping's
 * application data (§5.5.3). Control payloads are <= 125 bytes (§5.5). */
static void ws_pong(wsconn *c, const uint8_t *p, size_t n)
{
    uint8_t f[2 + 4 + 125];
    static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    f[0] = 0x8A;
    f[1] = (uint8_t)(0x80 | n);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = p[i] ^ mask[i & 3];
    if (write(c->fd, f, 6 + n) < 0 && errno != EAGAIN)
        ws_kill(c);
}

/* Consumes whole frames (and, first, the 101 head); returns bytes used. */
static size_t ws_consume(wsconn *c, const uint8_t *p, size_t n, int64_t t)
{
    size_t off = 0;
    if (c->st == C_UPGRADING) {
        const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
        if (!e) {
            if (n > 8192)
                ws_kill(c);
            return 0;
        }
        if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
            if (ws_failed < 3)
                fprintf(stderr, "ws_load: handshake refused: %.*s\n", (int)(e - p < 200 ? e - p : 200), p);
            ws_kill(c);
            return n;
        }
        c->st = C_OPEN;
        ws_pending--;
        ws_open++;
        off = (size_t)(e - p) + 4;
    }
    while (c->st == C_OPEN && n - off >= 2) {
        const uint8_t *f = p + off;
        size_t avail = n - off, hl = 2;
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            if (avail < 4)
                break;
            len = ((uint64_t)f[2] << 8) | f[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | f[2 + i];
            hl = 10;
        }
        if (f[1] & 0x80) /* servers never mask (§5.1) */
            hl += 4;
        if (len > (1u << 24)) {
            ws_kill(c);
            break;
        }
        if (avail < hl + len)
            break;
        uint8_t op = f[0] & 0x0f;
        if (op == 0x1) {
            c->frames++;
            if (on_text)
                on_text(c, f + hl, (size_t)len, t);
        } else if (op == 0x9) {
            ws_pong(c, f + hl, (size_t)len);
        } else if (op == 0x8) {
            ws_kill(c);
        }
        off += hl + (size_t)len;
    }
    return off;
}

static void ws_readable(wsconn *c)
{
    ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        ws_kill(c);
        return;
    }
    int64_t t = now_ns();
    if (c->plen == 0) {
        size_t used = ws_consume(c, rbuf, (size_t)r, t);
        if (c->st != C_DEAD && used < (size_t)r) {
            c->plen = (uint32_t)((size_t)r - used);
            c->pend = malloc(c->plen);
            if (!c->pend)
                die("malloc");
            memcpy(c->pend, rbuf + used, c->plen);
        }
        return;
    }
    uint8_t *np = realloc(c->pend, c->plen + (size_t)r);
    if (!np)
        die("realloc");
    memcpy(np + c->plen, rbuf, (size_t)r);
    c->pend = np;
    size_t total = c->plen + (size_t)r;
    size_t used = ws_consume(c, np, total, t);
    if (c->st == C_DEAD)
        return;
    if (used == total) {
        free(c->pend);
        c->pend = NULL;
        c->plen = 0;
    } else if (used) {
        memmove(c->pend, c->pend + used, total - used);
        c->plen = (uint32_t)(total - used);
    } else {
        c->plen = (uint32_t)total;
    }
}

static void ws_event(uint32_t idx, uint32_t events)
{
    wsconn *c = &ws[idx];
    if (c->st == C_DEAD)
        return;
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            ws_kill(c);
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        if (write(c->fd, ws_req, ws_req_len) != (ssize_t)ws_req_len) {
            ws_kill(c);
            return;
        }
        c->st = C_UPGRADING;
        ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN, K_WS, idx);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        ws_readable(c);
}

/* ---------------------------------------------------------------- HTTP trigger connections */

typedef struct {
    int fd;
    bool busy;
    int64_t op; /* what the outstanding request was for */
    size_t len;
    char buf[HTTP_BUF];
} httpc;

static httpc *hc;
static int nhc;
static int http_errors;
typedef void http_cb(httpc *h, int status, const char *body, size_t blen);
static http_cb *on_http;

static void http_connect(int i)
{
    httpc *h = &hc[i];
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in da = { .sin_family = AF_INET, .sin_port = htons((uint16_t)O.port) };
    da.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&da, sizeof(da)) < 0)
        die("HTTP connect");
    int one = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(h->fd, F_SETFL, O_NONBLOCK);
    h->busy = false;
    h->len = 0;
    ep_ctl(EPOLL_CTL_ADD, h->fd, EPOLLIN, K_HTTP, (uint32_t)i);
}

static bool http_any_busy(void)
{
    for (int i = 0; i < nhc; i++)
        if (hc[i].busy)
            return true;
    return false;
}

static httpc *http_free_conn(void)
{
    for (int i = 0; i < nhc; i++)
        if (!hc[i].busy)
            return &hc[i];
    return NULL;
}

static void http_send(httpc *h, const char *method, const char *path, const char *token, const char *body,
                      size_t blen, int64_t op)
{
    char req[HTTP_BUF];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%.*s",
                     method, path, token ? token : "-", blen, (int)blen, body);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        fprintf(stderr, "ws_load: request too large\n");
        exit(2);
    }
    size_t off = 0;
    while (off < (size_t)n) { /* small requests on loopback: a partial write is rare */
        ssize_t w = write(h->fd, req + off, (size_t)n - off);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            die("HTTP write");
        off += w > 0 ? (size_t)w : 0;
    }
    h->busy = true;
    h->op = op;
}

static void http_readable(int i)
{
    httpc *h = &hc[i];
    ssize_t r = read(h->fd, h->buf + h->len, sizeof(h->buf) - h->len - 1);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        fprintf(stderr, "ws_load: HTTP connection closed by server; reconnecting\n");
        close(h->fd);
        bool was = h->busy;
        http_connect(i);
        if (was) {
            http_errors++;
            if (on_http)
                on_http(h, 0, "", 0);
        }
        return;
    }
    if (r < 0)
        return;
    h->len += (size_t)r;
    h->buf[h->len] = 0;
    char *e = memmem(h->buf, h->len, "\r\n\r\n", 4);
    if (!e)
        return;
    size_t head = (size_t)(e - h->buf) + 4, cl = 0;
    int status = atoi(h->buf + 9);
    char *p = strcasestr(h->buf, "\r\ncontent-length:");
    if (p && p < e)
        cl = strtoul(p + 17, NULL, 10);
    else if (status != 204 && status != 304 && status >= 200)
        fprintf(stderr, "ws_load: response without Content-Length (chunked is not supported)\n");
    if (h->len < head + cl)
        return;
    if (status < 200 || status > 299) {
        if (http_errors++ < 3)
            fprintf(stderr, "ws_load: HTTP %d: %.*s\n", status, (int)(cl < 300 ? cl : 300), h->buf + head);
    }
    h->busy = false;
    if (on_http)
        on_http(h, status, h->buf + head, cl);
    size_t rest = h->len - head - cl;
    memmove(h->buf, h->buf + head + cl, rest);
    h->len = rest;
}

/* ---------------------------------------------------------------- events and their frames */

static int norders;
static char (*order_id)[37];
static int32_t *otab; /* open addressing: order index + 1, 0 = empty */
static uint32_t otab_mask;

static uint32_t hash36(const uint8_t *p)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 36; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void otab_put(int idx)
{
    uint32_t i = hash36((const uint8_t *)order_id[idx]) & otab_mask;
    while (otab[i])
        i = (i + 1) & otab_mask;
    otab[i] = idx + 1;
}

static int otab_get(const uint8_t *id)
{
    for (uint32_t i = hash36(id) & otab_mask; otab[i]; i = (i + 1) & otab_mask)
        if (memcmp(order_id[otab[i] - 1], id, 36) == 0)
            return otab[i] - 1;
    return -1;
}

/* The frame the peer broadcasts: the same shape and about the same size as
 * ordertrack's push for an order of one item. */
static size_t peer_event(char *out, size_t cap, int64_t seq, int version, const char *oid, const char *status)
{
    int n = snprintf(out, cap,
                     "{\"event\":\"order.updated\",\"data\":{\"seq\" : %" PRId64 ", \"version\" : %d, "
                     "\"eventId\" : \"6f1d2c3b-4a59-4e8f-9b7a-%012" PRId64 "\", \"orderId\" : \"%s\", "
                     "\"userId\" : \"5b3e8a4f-2c1d-4e6b-8a9f-0c1d2e3f4a5b\", \"type\" : \"order.status_changed\", "
                     "\"status\" : \"%s\", \"timestamp\" : \"2026-11-25T19:35:51.632Z\", "
                     "\"payload\" : {\"items\": [{\"qty\": 1, \"productId\": \"p1\"}]}, "
                     "\"actor\" : \"9249e2a0-4489-4d50-9a04-5532a45f3d14\"}}",
                     seq, version, seq, oid, status);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---------------------------------------------------------------- e2e */

static int64_t *sent_at, *arrived_at, *answered_at;
static int nops, created, create_asked, created_pushed;
static bool *create_seen; /* per order: its creation's push arrived */
/* Creation pushes of ids not known yet: a push may be read before the answer
 * that names its order (both ready in one epoll batch). */
#define EARLY_MAX 4096
static char early[EARLY_MAX][36];
static int nearly;

/* The value after "key" and its colon: PostgreSQL's jsonb text puts spaces
 * around the colon, a JavaScript peer does not. key includes its quotes. */
static const char *json_val(const char *p, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const char *end = p + n, *s = p;
    while ((s = memmem(s, (size_t)(end - s), key, kl))) {
        const char *v = s + kl;
        while (v < end && *v == ' ')
            v++;
        if (v < end && *v == ':') {
            for (v++; v < end && *v == ' ';)
                v++;
            return v;
        }
        s += kl;
    }
    return NULL;
}

static void e2e_text(wsconn *c, const uint8_t *p, size_t n, int64_t t)
{
    const char *s = (const char *)p;
    const char *o = json_val(s, n, "\"orderId\"");
    const char *v = json_val(s, n, "\"version\"");
    if (!o || !v || *o != '"' || (size_t)(s + n - o) < 1 + 36)
        return;
    int idx = otab_get((const uint8_t *)o + 1);
    int version = atoi(v); /* the digits end at ',' or ' ' inside the frame */
    int round = version - 2; /* version 1 is the creation */
    if (idx < 0 && round == -1 && nearly < EARLY_MAX)
        memcpy(early[nearly++], o + 1, 36);
    if (idx >= 0 && round == -1 && !create_seen[idx]) {
        create_seen[idx] = true;
        created_pushed++;
    }
    if (idx < 0 || round < 0 || round >= STATUSES)
        return;
    int op = round * norders + idx;
    if (sent_at[op] && !arrived_at[op])
        arrived_at[op] = t;
}

static void e2e_http(httpc *h, int status, const char *body, size_t blen)
{
    if (h->op >= 0) {
        answered_at[h->op] = now_ns();
        return;
    }
    if (status != 201) {
        create_asked--; /* asked again */
        return;
    }
    const char *p = json_val(body, blen, "\"id\"");
    if (!p || *p != '"' || (size_t)(body + blen - p) < 1 + 36 || created >= norders)
        return;
    memcpy(order_id[created], p + 1, 36);
    order_id[created][36] = 0;
    for (int i = 0; i < nearly; i++)
        if (memcmp(early[i], p + 1, 36) == 0 && !create_seen[created]) {
            create_seen[created] = true;
            created_pushed++;
        }
    otab_put(created++);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void pump(int64_t until)
{
    struct epoll_event evs[256];
    int n = ep_wait(evs, 256, until);
    for (int i = 0; i < n; i++) {
        uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32), idx = (uint32_t)evs[i].data.u64;
        if (kind == K_WS)
            ws_event(idx, evs[i].events);
        else if (kind == K_HTTP)
            http_readable((int)idx);
    }
}

static int run_e2e(void)
{
    int warm = (int)(O.rate * O.warmup);
    norders = (int)((O.rate * (O.duration + O.warmup) + STATUSES - 1) / STATUSES);
    nops = norders * STATUSES;
    order_id = calloc((size_t)norders, sizeof(*order_id));
    uint32_t cap = 1;
    while (cap < (uint32_t)norders * 2)
        cap <<= 1;
    otab = calloc(cap, sizeof(*otab));
    otab_mask = cap - 1;
    sent_at = calloc((size_t)nops, sizeof(int64_t));
    arrived_at = calloc((size_t)nops, sizeof(int64_t));
    answered_at = calloc((size_t)nops, sizeof(int64_t));
    create_seen = calloc((size_t)norders, sizeof(bool));
    if (!create_seen || !order_id || !otab || !sent_at || !arrived_at || !answered_at)
        die("calloc");

    nws = 1;
    ws = calloc(1, sizeof(*ws));
    on_text = e2e_text;
    ws_start_more();
    int64_t dl = now_ns() + 10 * 1000000000LL;
    while (ws_open == 0 && ws_failed == 0 && now_ns() < dl)
        pump(dl);
    if (ws_open != 1) {
        fprintf(stderr, "ws_load: subscriber did not open\n");
        return 1;
    }
    nhc = O.http_conns;
    hc = calloc((size_t)nhc, sizeof(*hc));
    for (int i = 0; i < nhc; i++)
        http_connect(i);
    on_http = e2e_http;

    char body[2048];
    if (O.target == T_OT) {
        /* Setup, untimed: the orders the timed phase moves through their life cycle. */
        static const char items[] = "{\"items\":[{\"productId\":\"p1\",\"qty\":1}]}";
        dl = now_ns() + 120 * 1000000000LL;
        while (created < norders && now_ns() < dl && http_errors < 100) {
            httpc *h;
            while (create_asked < norders && (h = http_free_conn())) {
                http_send(h, "POST", "/orders", O.http_token, items, sizeof(items) - 1, -1);
                create_asked++;
            }
            pump(now_ns() + 100000000);
        }
        if (created < norders) {
            fprintf(stderr, "ws_load: created only %d of %d orders\n", created, norders);
            return 1;
        }
        while (http_any_busy() && now_ns() < dl) /* let the last creates answer */
            pump(now_ns() + 10000000);
        fprintf(stderr, "ws_load: %d orders created (%d refused)\n", created, http_errors);
        http_errors = 0;
        /* A backlog left by the creations' burst would be timed as the
         * writes' latency: start from a drained event path. */
        dl = now_ns() + 120 * 1000000000LL;
        while (O.settle && created_pushed < norders && now_ns() < dl)
            pump(now_ns() + 100000000);
        if (O.settle && created_pushed < norders) {
            fprintf(stderr, "ws_load: %d of %d creations pushed within 120 s\n", created_pushed, norders);
            return 1;
        }
        if (O.settle)
            fprintf(stderr, "ws_load: settled, every creation pushed\n");
    } else {
        for (int i = 0; i < norders; i++) {
            snprintf(order_id[i], 37, "0b8e4c1a-7d2f-4e3a-9c5b-%012d", i);
            otab_put(i);
        }
    }

    int64_t period = 1000000000LL / O.rate;
    int64_t t0 = now_ns() + 20000000, last_send = t0;
    int next = 0, late = 0;
    bool late_counted = false;
    while (next < nops && now_ns() < deadline_ns) {
        int64_t due = t0 + (int64_t)next * period;
        int64_t now = now_ns();
        if (now >= due) {
            httpc *h = http_free_conn();
            if (!h) {
                if (!late_counted)
                    late++;
                late_counted = true;
                pump(now + 1000000); /* woken by the first answer */
                continue;
            }
            int round = next / norders, idx = next % norders;
            char path[128];
            if (O.target == T_OT) {
                int bl = snprintf(body, sizeof(body), "{\"status\":\"%s\"}", status_seq[round]);
                snprintf(path, sizeof(path), "/orders/%s/status", order_id[idx]);
                sent_at[next] = now_ns();
                http_send(h, "PATCH", path, O.http_token, body, (size_t)bl, next);
            } else {
                size_t bl = peer_event(body, sizeof(body), next + 1, round + 2, order_id[idx], status_seq[round]);
                sent_at[next] = now_ns();
                http_send(h, "POST", "/publish", NULL, body, bl, next);
            }
            last_send = sent_at[next];
            next++;
            late_counted = false;
            continue;
        }
        pump(due);
    }
    int64_t drain = last_send + 3000000000LL;
    int got = 0;
    while (now_ns() < drain) {
        got = 0;
        for (int i = warm; i < next; i++)
            got += arrived_at[i] != 0;
        if (got == next - warm)
            break;
        pump(now_ns() + 50000000);
    }
    /* The HTTP answer's latency too: the push cannot precede the commit, so
     * what the push adds beyond the answer is the event path's own share. */
    int64_t *lat = malloc(sizeof(int64_t) * (size_t)(nops > 0 ? nops : 1));
    int64_t *ans = malloc(sizeof(int64_t) * (size_t)(nops > 0 ? nops : 1));
    int64_t *gap = malloc(sizeof(int64_t) * (size_t)(nops > 0 ? nops : 1)); /* push - answer */
    if (!lat || !ans || !gap)
        die("malloc");
    int nl = 0, na = 0, ng = 0, lost = 0;
    for (int i = warm; i < next; i++) {
        if (arrived_at[i])
            lat[nl++] = arrived_at[i] - sent_at[i];
        else
            lost++;
        if (answered_at[i])
            ans[na++] = answered_at[i] - sent_at[i];
        if (answered_at[i] && arrived_at[i])
            gap[ng++] = arrived_at[i] - answered_at[i];
    }
    if (nl == 0 || na == 0) {
        fprintf(stderr, "ws_load: no push matched a write\n");
        return 1;
    }
    qsort(lat, (size_t)nl, sizeof(*lat), cmp_i64);
    qsort(ans, (size_t)na, sizeof(*ans), cmp_i64);
    qsort(gap, (size_t)(ng ? ng : 1), sizeof(*gap), cmp_i64);
#define PCT(a, n, q) ((a)[(size_t)((double)((n)-1) * (q))] / 1000.0)
    double secs = (double)(sent_at[next - 1] - sent_at[warm]) / 1e9;
    printf("e2e target=%s rate=%d achieved=%.0f n=%d p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f "
           "http_p50_us=%.0f http_p99_us=%.0f http_p999_us=%.0f push_minus_http_p50_us=%.0f push_minus_http_p99_us=%.0f "
           "lost=%d late=%d http_errors=%d\n",
           O.target == T_OT ? "ordertrack" : "peer", O.rate, secs > 0 ? (next - 1 - warm) / secs : 0, nl,
           PCT(lat, nl, 0.50), PCT(lat, nl, 0.99), PCT(lat, nl, 0.999), lat[nl - 1] / 1000.0, PCT(ans, na, 0.50),
           PCT(ans, na, 0.99), PCT(ans, na, 0.999), ng ? PCT(gap, ng, 0.50) : 0, ng ? PCT(gap, ng, 0.99) : 0, lost,
           late, http_errors);
#undef PCT
    free(ans);
    free(gap);
    free(lat);
    return lost > (O.max_lost >= 0 ? O.max_lost : nl / 100) || http_errors ? 1 : 0;
}

/* ---------------------------------------------------------------- children: hold sockets, report */

/* Arrival of the r-th text frame on each socket: round r is complete in this
 * process when every open socket has had its r-th frame. */
static int64_t rmin[MAX_ROUNDS + 1], rmax[MAX_ROUNDS + 1];
static int rcnt[MAX_ROUNDS + 1], rdone;

static void count_text(wsconn *c, const uint8_t *p, size_t n, int64_t t)
{
    uint32_t r = c->frames;
    if (r > MAX_ROUNDS)
        return;
    if (!rcnt[r] || t < rmin[r])
        rmin[r] = t;
    if (t > rmax[r])
        rmax[r] = t;
    rcnt[r]++;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && write(fd, line, (size_t)n) < 0)
        _exit(3); /* the parent is gone */
}

static void child(int k, int n, int report_fd, int stop_fd)
{
    char a[32];
    snprintf(a, sizeof(a), "127.0.0.%d", O.src_base + k);
    inet_pton(AF_INET, a, &src_addr);
    nws = n;
    ws = calloc((size_t)n, sizeof(*ws));
    if (!ws)
        die("calloc");
    on_text = count_text;
    ep_ctl(EPOLL_CTL_ADD, stop_fd, EPOLLIN, K_PIPE, 0);
    int64_t start = now_ns();
    bool ready = false;
    struct epoll_event evs[512];
    while (now_ns() < deadline_ns) {
        ws_start_more();
        if (!ready && ws_next == nws && ws_pending == 0) {
            say(report_fd, "R %d %d %d %.3f\n", k, ws_open, ws_failed, (double)(now_ns() - start) / 1e9);
            ready = true;
        }
        while (ready && rdone < MAX_ROUNDS && ws_open > 0 && rcnt[rdone + 1] >= ws_open) {
            rdone++;
            say(report_fd, "E %d %" PRId64 " %" PRId64 " %d\n", rdone, rmin[rdone], rmax[rdone], rcnt[rdone]);
        }
        int m = ep_wait(evs, 512, now_ns() + 200000000);
        for (int i = 0; i < m; i++) {
            uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32);
            if (kind == K_PIPE)
                _exit(0); /* EOF: the parent is done (or dead); the kernel closes the sockets */
            if (kind == K_WS)
                ws_event((uint32_t)evs[i].data.u64, evs[i].events);
        }
    }
    _exit(4);
}

/* ---------------------------------------------------------------- parent of the children */

typedef struct {
    int fd;
    char buf[4096];
    size_t len;
} lineq;

static pid_t kids[MAX_PROCS];
static lineq kq[MAX_PROCS];
static int stop_w = -1;

/* One line from any child, or NULL at until_ns. Child pipes are watched in
 * the same epoll set as the trigger connection, so HTTP answers are read too. */
static char *next_line(int *who, int64_t until_ns)
{
    static char line[4096];
    for (;;) {
        for (int k = 0; k < O.procs; k++) {
            char *nl = memchr(kq[k].buf, '\n', kq[k].len);
            if (!nl)
                continue;
            size_t l = (size_t)(nl - kq[k].buf);
            memcpy(line, kq[k].buf, l);
            line[l] = 0;
            memmove(kq[k].buf, nl + 1, kq[k].len - l - 1);
            kq[k].len -= l + 1;
            *who = k;
            return line;
        }
        if (now_ns() >= until_ns)
            return NULL;
        struct epoll_event evs[64];
        int n = ep_wait(evs, 64, until_ns);
        for (int i = 0; i < n; i++) {
            uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32), idx = (uint32_t)evs[i].data.u64;
            if (kind == K_HTTP) {
                http_readable((int)idx);
            } else if (kind == K_PIPE) {
                lineq *q = &kq[idx];
                ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
                if (r <= 0) {
                    fprintf(stderr, "ws_load: child %u exited early\n", idx);
                    epoll_ctl(ep, EPOLL_CTL_DEL, q->fd, NULL);
                } else {
                    q->len += (size_t)r;
                }
            }
        }
    }
}

static void spawn(void)
{
    int sp[2];
    if (pipe2(sp, O_CLOEXEC) < 0)
        die("pipe");
    stop_w = sp[1];
    int base = O.conns / O.procs, extra = O.conns % O.procs;
    for (int k = 0; k < O.procs; k++) {
        int rp[2];
        if (pipe2(rp, O_CLOEXEC) < 0)
            die("pipe");
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            close(rp[0]);
            close(sp[1]);
            close(ep);
            ep = epoll_create1(EPOLL_CLOEXEC);
            child(k, base + (k < extra), rp[1], sp[0]);
        }
        close(rp[1]);
        kids[k] = pid;
        kq[k].fd = rp[0];
        ep_ctl(EPOLL_CTL_ADD, rp[0], EPOLLIN, K_PIPE, (uint32_t)k);
    }
    close(sp[0]);
}

static int wait_ready(int *open_total)
{
    int ready = 0, who, failed = 0;
    double slowest = 0;
    *open_total = 0;
    char *l;
    while (ready < O.procs && (l = next_line(&who, deadline_ns))) {
        int k, o, f;
        double s;
        if (sscanf(l, "R %d %d %d %lf", &k, &o, &f, &s) == 4) {
            ready++;
            *open_total += o;
            failed += f;
            if (s > slowest)
                slowest = s;
        }
    }
    fprintf(stderr, "ws_load: %d sockets open, %d failed, connected in %.1f s\n", *open_total, failed, slowest);
    return ready == O.procs ? 0 : -1;
}

static void reap(void)
{
    if (stop_w >= 0)
        close(stop_w); /* every child sees EOF and exits */
    stop_w = -1;
    int64_t dl = now_ns() + 20000000000LL;
    for (int k = 0; k < O.procs; k++) {
        while (kids[k] > 0) {
            pid_t r = waitpid(kids[k], NULL, WNOHANG);
            if (r == kids[k] || r < 0) {
                kids[k] = 0;
                break;
            }
            if (now_ns() > dl) {
                kill(kids[k], SIGKILL);
                waitpid(kids[k], NULL, 0);
                kids[k] = 0;
                break;
            }
            usleep(10000);
        }
    }
}

/* CPU time the server's processes (every thread: Node has helper threads)
 * have run, in ns, from /proc/PID/task/TID/schedstat; -1 without --cpu-pids. */
static int64_t server_cpu_ns(void)
{
    if (!O.cpu_pids)
        return -1;
    int64_t total = 0;
    const char *p = O.cpu_pids;
    while (*p) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        p = *end ? end + 1 : end;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/task", pid);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char sp[320];
            snprintf(sp, sizeof(sp), "/proc/%ld/task/%s/schedstat", pid, de->d_name);
            FILE *f = fopen(sp, "r");
            long long ns;
            if (f && fscanf(f, "%lld", &ns) == 1)
                total += ns;
            if (f)
                fclose(f);
        }
        closedir(d);
    }
    return total;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run_fanout(void)
{
    spawn();
    int open_total;
    if (wait_ready(&open_total) < 0 || open_total == 0) {
        reap();
        return 1;
    }
    nhc = 1;
    hc = calloc(1, sizeof(*hc));
    http_connect(0);
    double last_ms[MAX_ROUNDS], first_ms[MAX_ROUNDS], cpu_ms[MAX_ROUNDS];
    int done = 0;
    static const char items[] = "{\"items\":[{\"productId\":\"p1\",\"qty\":1}]}";
    for (int r = 1; r <= O.rounds && r <= MAX_ROUNDS; r++) {
        int64_t pause = now_ns() + 300000000; /* let the previous round's writes settle */
        int who;
        while (next_line(&who, pause))
            ;
        char body[2048];
        int64_t cpu0 = server_cpu_ns();
        int64_t t0 = now_ns();
        if (O.target == T_OT) {
            http_send(&hc[0], "POST", "/orders", O.http_token, items, sizeof(items) - 1, r);
        } else {
            size_t bl = peer_event(body, sizeof(body), r, 1, "0b8e4c1a-7d2f-4e3a-9c5b-000000000001", "CREATED");
            http_send(&hc[0], "POST", "/publish", NULL, body, bl, r);
        }
        int reports = 0, got = 0;
        int64_t first = INT64_MAX, last = 0;
        int64_t dl = now_ns() + 15000000000LL;
        char *l;
        while (reports < O.procs && (l = next_line(&who, dl))) {
            int rr, cnt;
            int64_t a, b;
            if (sscanf(l, "E %d %" SCNd64 " %" SCNd64 " %d", &rr, &a, &b, &cnt) == 4 && rr == r) {
                reports++;
                got += cnt;
                first = a < first ? a : first;
                last = b > last ? b : last;
            }
        }
        while (hc[0].busy && now_ns() < dl)
            next_line(&who, now_ns() + 10000000);
        if (reports < O.procs) {
            fprintf(stderr, "ws_load: round %d incomplete (%d of %d processes)\n", r, reports, O.procs);
            break;
        }
        int64_t cpu1 = server_cpu_ns();
        cpu_ms[done] = cpu0 >= 0 ? (double)(cpu1 - cpu0) / 1e6 : -1;
        first_ms[done] = (double)(first - t0) / 1e6;
        last_ms[done] = (double)(last - t0) / 1e6;
        fprintf(stderr, "ws_load: round %d: %d frames, first %.2f ms, last %.2f ms, server cpu %.2f ms\n", r, got,
                first_ms[done], last_ms[done], cpu_ms[done]);
        done++;
    }
    reap();
    if (done == 0)
        return 1;
    double sl[MAX_ROUNDS], sf[MAX_ROUNDS], sc[MAX_ROUNDS];
    memcpy(sl, last_ms, sizeof(double) * (size_t)done);
    memcpy(sf, first_ms, sizeof(double) * (size_t)done);
    memcpy(sc, cpu_ms, sizeof(double) * (size_t)done);
    qsort(sl, (size_t)done, sizeof(double), cmp_dbl);
    qsort(sf, (size_t)done, sizeof(double), cmp_dbl);
    qsort(sc, (size_t)done, sizeof(double), cmp_dbl);
    printf("fanout target=%s conns=%d open=%d rounds=%d last_ms_median=%.2f last_ms_min=%.2f last_ms_max=%.2f "
           "first_ms_median=%.2f server_cpu_ms_median=%.2f http_errors=%d\n",
           O.target == T_OT ? "ordertrack" : "peer", O.conns, open_total, done, sl[done / 2], sl[0], sl[done - 1],
           sf[done / 2], sc[done / 2], http_errors);
    return done == O.rounds && open_total == O.conns ? 0 : 1;
}

static int run_idle(void)
{
    int64_t t0 = now_ns();
    spawn();
    int open_total;
    int rc = wait_ready(&open_total);
    printf("READY open=%d conns=%d secs=%.1f\n", open_total, O.conns, (double)(now_ns() - t0) / 1e9);
    fflush(stdout);
    int64_t hold = now_ns() + (int64_t)(O.hold * 1e9);
    int who;
    while (next_line(&who, hold))
        ;
    reap();
    printf("idle done open=%d\n", open_total);
    return rc < 0 || open_total != O.conns ? 1 : 0;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: ws_load e2e|fanout|idle [--target ordertrack|peer] [--port P] [--path /ws/orders]\n"
            "  [--ws-token T] [--http-token T] [--conns N] [--procs P] [--src-base 10] [--inflight 128]\n"
            "  [--rate 1000] [--duration 10] [--warmup 1] [--http-conns 32] [--rounds 7] [--hold 10]\n"
            "  [--timeout 240] [--cpu-pids PID,PID,...] [--ws-port P (default --port)]\n"
            "  [--max-lost N (e2e; default 1 %% of the pushes)] [--settle 0|1 (e2e: wait for the creations' pushes)]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "e2e"))
        O.mode = M_E2E;
    else if (!strcmp(argv[1], "fanout"))
        O.mode = M_FANOUT;
    else if (!strcmp(argv[1], "idle"))
        O.mode = M_IDLE;
    else
        usage();
    static const struct {
        const char *name;
        char type; /* i: int, d: double, s: string */
        void *dst;
    } opt[] = {
        { "--port", 'i', &O.port },         { "--path", 's', &O.path },
        { "--ws-token", 's', &O.ws_token }, { "--http-token", 's', &O.http_token },
        { "--conns", 'i', &O.conns },       { "--procs", 'i', &O.procs },
        { "--src-base", 'i', &O.src_base }, { "--inflight", 'i', &O.inflight },
        { "--rate", 'i', &O.rate },         { "--duration", 'd', &O.duration },
        { "--warmup", 'd', &O.warmup },     { "--http-conns", 'i', &O.http_conns },
        { "--rounds", 'i', &O.rounds },     { "--hold", 'd', &O.hold },
        { "--timeout", 'i', &O.timeout_s }, { "--cpu-pids", 's', &O.cpu_pids },
        { "--target", 't', &O.target },     { "--ws-port", 'i', &O.ws_port },
        { "--max-lost", 'i', &O.max_lost },   { "--settle", 'i', &O.settle },
    };
    if (argc % 2) /* the mode, then name/value pairs */
        usage();
    for (int i = 2; i < argc; i += 2) {
        size_t j = 0;
        while (j < sizeof(opt) / sizeof(opt[0]) && strcmp(argv[i], opt[j].name))
            j++;
        if (j == sizeof(opt) / sizeof(opt[0]))
            usage();
        const char *v = argv[i + 1];
        if (opt[j].type == 'i')
            *(int *)opt[j].dst = atoi(v);
        else if (opt[j].type == 'd')
            *(double *)opt[j].dst = atof(v);
        else if (opt[j].type == 's')
            *(const char **)opt[j].dst = v;
        else
            *(int *)opt[j].dst = !strcmp(v, "peer") ? T_PEER : T_OT;
    }
    if (O.conns < 1 || O.procs < 1 || O.procs > MAX_PROCS || O.rate < 1 || O.http_conns < 1 || O.inflight < 1 ||
        O.src_base < 1 || O.src_base + O.procs > 254 || O.rounds < 1 || O.duration <= 0 || O.warmup < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    deadline_ns = now_ns() + (int64_t)O.timeout_s * 1000000000;
    int n = snprintf(ws_req, sizeof(ws_req),
                     "GET %s%saccess_token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     O.path, strchr(O.path, '?') ? "&" : "?", O.ws_token ? O.ws_token : "-",
                     O.ws_port ? O.ws_port : O.port);
    if (n < 0 || (size_t)n >= sizeof(ws_req))
        usage();
    ws_req_len = (size_t)n;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    char a[32];
    snprintf(a, sizeof(a), "127.0.0.%d", O.src_base);
    inet_pton(AF_INET, a, &src_addr);
    if (O.mode == M_E2E)
        return run_e2e();
    return O.mode == M_FANOUT ? run_fanout() : run_idle();
}
