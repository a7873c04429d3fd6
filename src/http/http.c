/* HTTP/1.1 connections on the reactor: edge-triggered reads until EAGAIN,
 * strict parsing, one request in service at a time, responses gathered in a
 * write buffer and flushed with as few syscalls as possible. */
#include "ot/http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ot/codec/json.h"
#include "ot/core/fmt.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/core/ratelimit.h"
#include "ot/core/list.h"

enum conn_state {
    ST_IDLE,     /* between requests: idle timer armed */
    ST_HEAD,     /* receiving a head: request timer armed */
    ST_BODY,     /* receiving a body: request timer still armed */
    ST_HANDLING, /* a handler owns the request; reading paused */
    ST_CLOSING,  /* flush what is queued, then close */
};

#define OT_READ_CHUNK 16384
#define OT_MAX_HEADER_ARRAY 128
/* Buffers larger than this are freed once empty, so an idle keep-alive
 * connection does not keep the memory of its biggest response. */
#define OT_BUF_KEEP (64u * 1024)

/* Output policy (issue 10, finding 7). Every byte queued to the client (100
 * Continue, responses) goes through wbuf and counts against one cap:
 *  - above cfg->http_output_high_water no further pipelined request is read
 *    or parsed; reading resumes once the client has drained below it, so a
 *    client that pipelines without reading holds at most high-water + one
 *    response (plus the kernel's socket buffer);
 *  - a response that would take wbuf past cfg->max_output_bytes closes the
 *    connection instead of being queued;
 *  - minimum transfer rate: once a write would block, everything queued must
 *    drain within cfg->write_timeout_ms. Partial progress does not extend the
 *    deadline (the wtimer is started on the first EAGAIN and stopped only when
 *    wbuf is empty), so a peer reading a few bytes per interval is closed. */

struct ot_http_conn {
    ot_io io;
    ot_http_server *srv;
    ot_http_conn *prev, *next;
    enum conn_state state;
    ot_buf rbuf, wbuf;
    ot_timer timer;
    ot_timer wtimer;     /* write deadline, see the output policy above */
    ot_defer resume;     /* continue processing after an async response */
    ot_defer reap;       /* free after the current event batch */
    bool closed;
    bool close_after;    /* Connection: close on the current/next response */
    bool sent_continue;
    bool dispatching;    /* inside the handler call: a response now is synchronous */
    bool chunked;
    bool ip_counted;     /* holds a slot in the per-IP connection count */
    /* The socket was read dry (a short read or EAGAIN) and no readiness edge
     * has come since: with edge-triggered epoll, another read now could only
     * return EAGAIN, one wasted system call per request (issue 12). */
    bool rdrained;
    size_t head_len;
    uint64_t body_need;  /* Content-Length */
    size_t body_raw;     /* raw body bytes consumed from rbuf after the head */
    size_t body_len;     /* decoded bytes (== body_raw for Content-Length) */
    ot_http_chunked chunk;
    ot_req req;
    ot_http_header *hdrs;
    size_t nhdrs_cap;
};

static void conn_process(ot_http_conn *c);
static void conn_close(ot_http_conn *c);
static void conn_flush(ot_http_conn *c);
static void on_resume(ot_loop *loop, ot_defer *d);
static void reset_request(ot_http_conn *c);
static void fail(ot_http_conn *c, int status, const char *code, const char *msg);

/* ---- date header, formatted once per second ---- */

/* "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n" (RFC 9110 §5.6.7 IMF-fixdate),
 * kept whole with its length so a response head copies it in one go. */
static char date_line[64];
static size_t date_len;
static time_t date_sec = (time_t)-1;

static void two_digits(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

static ot_str http_date_line(void)
{
    time_t now = time(NULL);
    if (now != date_sec) {
        static const char days[] = "SunMonTueWedThuFriSat";
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        struct tm tm;
        gmtime_r(&now, &tm);
        char *p = date_line;
        memcpy(p, "Date: ", 6), p += 6;
        memcpy(p, days + 3 * tm.tm_wday, 3), p += 3;
        *p++ = ',', *p++ = ' ';
        two_digits(p, tm.tm_mday), p += 2;
        *p++ = ' ';
        memcpy(p, months + 3 * tm.tm_mon, 3), p += 3;
        *p++ = ' ';
        int y = tm.tm_year + 1900;
        two_digits(p, y / 100), two_digits(p + 2, y % 100), p += 4;
        *p++ = ' ';
        two_digits(p, tm.tm_hour), p[2] = ':', two_digits(p + 3, tm.tm_min), p[5] = ':';
        two_digits(p + 6, tm.tm_sec), p += 8;
        memcpy(p, " GMT\r\n", 6), p += 6;
        date_len = (size_t)(p - date_line);
        date_sec = now;
    }
    return ot_str_make(date_line, date_len);
}

const char *ot_http_status_text(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- timers ---- */

static void on_timer(ot_loop *loop, ot_timer *t)
{
    ot_http_conn *c = t->data;
    switch (c->state) {
    case ST_HEAD:
    case ST_BODY:
        /* Slow senders (slowloris) get a 408 and lose the connection. */
        c->close_after = true;
        ot_respond_error(&c->req, 408, "request_timeout", "request not received within %u ms",
                         c->srv->cfg->header_timeout_ms);
        conn_flush(c);
        if (c->state != ST_CLOSING || ot_buf_rlen(&c->wbuf) == 0)
            conn_close(c);
        break;
    case ST_IDLE:
        /* Still sending the last response: the write deadline governs. */
        if (ot_buf_rlen(&c->wbuf) > 0)
            break;
        conn_close(c);
        break;
    case ST_CLOSING: /* closing bound: the peer stopped reading */
    default:
        conn_close(c);
        break;
    }
}

static void arm(ot_http_conn *c, uint32_t ms) { ot_timer_start(c->srv->loop, &c->timer, ms); }

static void on_write_timeout(ot_loop *loop, ot_timer *t)
{
    ot_http_conn *c = t->data;
    ot_logf(OT_LOG_DEBUG, "closing %s: %zu bytes not drained within %u ms", c->req.remote, ot_buf_rlen(&c->wbuf),
            c->srv->cfg->write_timeout_ms);
    conn_close(c);
}

/* ---- per-IP connection count ----
 * Chained hash of the client addresses with open HTTP connections in this
 * worker (workers share nothing, so the cap is per worker, like max_conns).
 * An entry lives while its count is > 0. */
typedef struct ip_slot {
    struct ip_slot *next;
    uint8_t key[16];
    uint8_t len;
    uint32_t n;
} ip_slot;

#define IP_BUCKETS 4096
static ip_slot *ip_table[IP_BUCKETS];

static ip_slot **ip_find(const uint8_t *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 16777619u;
    ip_slot **pp = &ip_table[h & (IP_BUCKETS - 1)];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->key, key, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* Takes a slot for this address; false when it already holds `cap` (0 = no cap). */
static bool ip_take(const uint8_t *key, size_t len, uint32_t cap)
{
    if (cap == 0 || len == 0)
        return true;
    ip_slot **pp = ip_find(key, len);
    if (!*pp) {
        ip_slot *e = calloc(1, sizeof(*e));
        if (!e)
            return false;
        memcpy(e->key, key, len);
        e->len = (uint8_t)len;
        *pp = e;
    }
    if ((*pp)->n >= cap)
        return false;
    (*pp)->n++;
    return true;
}

static void ip_release(const uint8_t *key, size_t len)
{
    ip_slot **pp = ip_find(key, len), *e = *pp;
    if (e && --e->n == 0) {
        *pp = e->next;
        free(e);
    }
}

/* ---- lifecycle ---- */

static void on_reap(ot_loop *loop, ot_defer *d)
{
    ot_http_conn *c = d->data;
    ot_buf_free(&c->rbuf);
    ot_buf_free(&c->wbuf);
    free(c->hdrs);
    free(c);
}

static void conn_unlink(ot_http_conn *c)
{
    ot_http_server *w = c->srv;
    OT_LIST_UNLINK(&w->conns, c);
    if (c->ip_counted) {
        ip_release(c->req.remote_key, c->req.remote_key_len);
        c->ip_counted = false;
    }
    w->nconns--;
    ot_metrics_set(OT_G_CONNS_OPEN, w->nconns);
}

static void conn_close(ot_http_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    ot_loop *loop = c->srv->loop;
    if (c->state == ST_HANDLING && !c->req.responded && c->req.on_abort) {
        c->req.on_abort(&c->req);
        c->req.on_abort = NULL;
    }
    ot_timer_stop(loop, &c->timer);
    ot_timer_stop(loop, &c->wtimer);
    ot_defer_cancel(loop, &c->resume);
    ot_loop_del_fd(loop, c->io.fd);
    ot_io_close(&c->io);
    conn_unlink(c);
    /* Free after the batch: a later event in this epoll batch may name us. */
    ot_defer_queue(loop, &c->reap);
    if (c->srv->on_closed)
        c->srv->on_closed(c->srv->data);
}

static void on_io(ot_loop *loop, int fd, unsigned ev, void *data);

static void fill_remote(ot_req *r, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, r->remote, sizeof(r->remote));
        memcpy(r->remote_key, &in->sin_addr, 4);
        r->remote_key_len = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, r->remote, sizeof(r->remote));
        memcpy(r->remote_key, &in6->sin6_addr, 16);
        r->remote_key_len = 16;
    } else {
        snprintf(r->remote, sizeof(r->remote), "local");
        r->remote_key_len = 0;
    }
}

void ot_http_conn_new(ot_http_server *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
    ot_http_conn *c = calloc(1, sizeof(*c));
    size_t cap = w->cfg->max_headers < OT_MAX_HEADER_ARRAY ? w->cfg->max_headers + 1 : OT_MAX_HEADER_ARRAY;
    /* calloc: rbuf_moved walks every slot, and stale slots must hold defined values. */
    ot_http_header *h = c ? calloc(cap, sizeof(*h)) : NULL;
    if (!c || !h) {
        free(c);
        free(h);
        close(fd);
        return;
    }
    c->hdrs = h;
    c->nhdrs_cap = cap;
    c->srv = w;
    ot_io_init(&c->io, fd, w->tls);
    ot_timer_init(&c->timer, on_timer, c);
    ot_timer_init(&c->wtimer, on_write_timeout, c);
    ot_defer_init(&c->reap, on_reap, c);
    ot_defer_init(&c->resume, on_resume, c);
    reset_request(c);
    fill_remote(&c->req, sa);
    c->req.srv = w;
    c->req.conn = c;
    c->state = ST_IDLE;
    OT_LIST_PUSH_FRONT(&w->conns, c);
    w->nconns++;
    ot_metrics_set(OT_G_CONNS_OPEN, w->nconns);
    if (ot_loop_add_fd(w->loop, fd, OT_READABLE | OT_WRITABLE | OT_EDGE, on_io, c) < 0) {
        conn_close(c);
        return;
    }
    arm(c, w->cfg->header_timeout_ms);
    c->ip_counted = ip_take(c->req.remote_key, c->req.remote_key_len, w->cfg->max_conns_per_ip);
    if (!c->ip_counted) {
        /* Over the per-address cap: a client-specific limit, hence 429 (the
         * worker-wide limit is 503), answered without reading the request. */
        ot_metrics_inc(OT_C_CONNS_REJECTED, 1);
        ot_resp_header(&c->req, "Retry-After", "1");
        fail(c, 429, "too_many_connections_from_address", "too many open connections from this address");
        conn_flush(c);
        return;
    }
    /* Data usually arrives with the connection: try now instead of waiting
     * for the first edge (it may already have fired before registration). */
    conn_process(c);
}

/* ---- writing ---- */

static void conn_flush(ot_http_conn *c)
{
    while (ot_buf_rlen(&c->wbuf) > 0) {
        struct iovec iov = { (void *)ot_buf_rptr(&c->wbuf), ot_buf_rlen(&c->wbuf) };
        ssize_t n = ot_io_writev(&c->io, &iov, 1);
        if (n == OT_EAGAIN) {
            if (!ot_timer_active(&c->wtimer))
                ot_timer_start(c->srv->loop, &c->wtimer, c->srv->cfg->write_timeout_ms);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        ot_buf_consume(&c->wbuf, (size_t)n);
    }
    ot_timer_stop(c->srv->loop, &c->wtimer);
    if (c->wbuf.cap > OT_BUF_KEEP)
        ot_buf_free(&c->wbuf);
    if (c->state == ST_CLOSING) {
        ot_io_shutdown(&c->io);
        conn_close(c);
    } else if (c->state == ST_IDLE && !ot_timer_active(&c->timer)) {
        arm(c, c->srv->cfg->idle_timeout_ms);
    }
}

void ot_resp_header(ot_req *r, const char *name, const char *value)
{
    /* All or nothing: a header that does not fit is left out whole, never cut. */
    size_t nl = strlen(name), vl = strlen(value), need = nl + 2 + vl + 2;
    if (need > sizeof(r->extra) - r->extra_len)
        return;
    char *p = r->extra + r->extra_len;
    memcpy(p, name, nl), p += nl;
    *p++ = ':', *p++ = ' ';
    memcpy(p, value, vl), p += vl;
    *p++ = '\r', *p++ = '\n';
    r->extra_len += need;
}

static void request_done(ot_http_conn *c);

void ot_respond(ot_req *r, int status, const char *content_type, ot_str body)
{
    ot_http_conn *c = r->conn;
    if (r->responded || c->closed)
        return;
    r->responded = true;
    ot_http_server *w = c->srv;
    if (w->draining)
        c->close_after = true;
    ot_buf *b = &c->wbuf;
    size_t before = ot_buf_rlen(b);
    if (before + (r->head_only ? 0 : body.len) > w->cfg->max_output_bytes) {
        ot_logf(OT_LOG_WARN, "closing %s: a %zu-byte response over %zu queued exceeds --max-output-bytes", r->remote,
                body.len, before);
        ot_log_access(r->head.method, r->head.path, status, 0, ot_now_us() - r->start_us, ot_str_c(r->remote));
        conn_close(c);
        return;
    }
    /* The head is assembled in one stack buffer and appended once: no printf
     * on the path every request takes (issue 12). Every part is bounded: the
     * status text and content types are the server's own constants. */
    char head[512];
    size_t hl = 0;
    const char *reason = ot_http_status_text(status);
    size_t rlen = strlen(reason);
    size_t ctlen = content_type ? strlen(content_type) : 0;
    if (status < 100 || status > 999 || rlen > 64 || ctlen > 200)
        status = 500, reason = ot_http_status_text(500), rlen = strlen(reason), content_type = NULL, ctlen = 0;
    memcpy(head, "HTTP/1.1 ", 9), hl = 9;
    head[hl++] = (char)('0' + status / 100);
    head[hl++] = (char)('0' + status / 10 % 10);
    head[hl++] = (char)('0' + status % 10);
    head[hl++] = ' ';
    memcpy(head + hl, reason, rlen), hl += rlen;
    head[hl++] = '\r', head[hl++] = '\n';
    ot_str date = http_date_line();
    memcpy(head + hl, date.base, date.len), hl += date.len;
    memcpy(head + hl, "Content-Length: ", 16), hl += 16;
    hl += ot_fmt_u64(head + hl, body.len);
    head[hl++] = '\r', head[hl++] = '\n';
    if (content_type) {
        memcpy(head + hl, "Content-Type: ", 14), hl += 14;
        memcpy(head + hl, content_type, ctlen), hl += ctlen;
        head[hl++] = '\r', head[hl++] = '\n';
    }
    ot_buf_append(b, head, hl);
    if (c->close_after)
        ot_buf_append_str(b, "Connection: close\r\n");
    else if (r->head.minor_version == 0)
        ot_buf_append_str(b, "Connection: keep-alive\r\n");
    /* RFC 6797: over TLS, tell browsers never to use plain HTTP for a year. */
    if (w->tls)
        ot_buf_append_str(b, "Strict-Transport-Security: max-age=31536000\r\n");
    ot_buf_append(b, r->extra, r->extra_len);
    ot_buf_append(b, "\r\n", 2);
    if (!r->head_only)
        ot_buf_append(b, body.base, body.len);
    uint64_t bytes = ot_buf_rlen(b) - before;
    uint64_t dur = ot_now_us() - r->start_us;
    ot_metrics_http(r->route, status, dur, bytes);
    ot_log_access(r->head.method, r->head.path, status, bytes, dur, ot_str_c(r->remote));
    request_done(c);
}

void ot_respond_json(ot_req *r, int status, ot_str json) { ot_respond(r, status, "application/json", json); }

/* Length of s[0..n) without a trailing UTF-8 sequence that was cut short:
 * messages are truncated by snprintf here and by callers' fixed buffers, and
 * a cut must fall on a code point boundary (issue 10, finding 8). Invalid
 * bytes elsewhere are left to ot_json_escape, which replaces them (so not
 * ot_utf8_valid_prefix, which would cut the message at the first of them). */
static size_t utf8_trim_cut(const char *s, size_t n)
{
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char ch = (unsigned char)s[n - back];
        if ((ch & 0xC0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        size_t want = ch >= 0xF0 && ch <= 0xF7 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC2 && ch < 0xE0 ? 2 : 1;
        return want > back ? n - back : n;
    }
    return n;
}

void ot_respond_error(ot_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    len = utf8_trim_cut(msg, len);
    /* ot_json_escape validates UTF-8, so the body is valid JSON whatever the
     * message holds; no fixed-size body buffer can cut it again. */
    ot_buf body = OT_BUF_INIT;
    int rc = ot_buf_append_str(&body, "{\"error\":{\"code\":\"");
    rc |= ot_json_escape(&body, code, strlen(code));
    rc |= ot_buf_append_str(&body, "\",\"message\":\"");
    rc |= ot_json_escape(&body, msg, len);
    rc |= ot_buf_append_str(&body, "\"}}");
    if (rc < 0) {
        /* Out of memory: a fixed body is still a valid answer. */
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        ot_buf_free(&body);
        ot_respond(r, status, "application/json", ot_str_make(oom, sizeof(oom) - 1));
        return;
    }
    ot_respond(r, status, "application/json", ot_buf_str(&body));
    ot_buf_free(&body);
}

/* ---- reading and request framing ---- */

static void reset_request(ot_http_conn *c)
{
    ot_req *r = &c->req;
    memset(&r->head, 0, sizeof(r->head));
    r->body = OT_STR_NULL;
    r->nparams = 0;
    r->route = -1;
    r->responded = false;
    r->head_only = false;
    r->authed = false;
    r->on_abort = NULL;
    r->ctx = NULL;
    r->extra_len = 0;
    c->head_len = 0;
    c->body_raw = c->body_len = 0;
    c->body_need = 0;
    c->chunked = false;
    c->sent_continue = false;
}

/* Called when the current request has its response queued. */
static void request_done(ot_http_conn *c)
{
    bool was_async = c->state == ST_HANDLING && !c->dispatching;
    if (c->head_len > 0)
        ot_buf_consume(&c->rbuf, c->head_len + c->body_raw);
    if (ot_buf_rlen(&c->rbuf) == 0 && c->rbuf.cap > OT_BUF_KEEP)
        ot_buf_free(&c->rbuf);
    if (c->close_after) {
        c->state = ST_CLOSING;
        arm(c, c->srv->cfg->write_timeout_ms);
        if (was_async)
            conn_flush(c);
        return;
    }
    c->state = ST_IDLE;
    reset_request(c);
    arm(c, c->srv->cfg->idle_timeout_ms);
    if (was_async) {
        /* Resume from the loop, not from inside the handler's callback. */
        ot_defer_queue(c->srv->loop, &c->resume);
    }
}

static void on_resume(ot_loop *loop, ot_defer *d)
{
    ot_http_conn *c = d->data;
    if (!c->closed)
        conn_process(c);
}

/* The parsed request (head fields, header array, body, route params) points
 * into rbuf, and so does a partial parse (an incomplete head still names its
 * method and path, which the 408 logs). rbuf moves only through the two
 * functions below, and both re-anchor every such pointer right after the
 * move, by its offset from the old read position, so no parsed pointer can
 * outlive a buffer move (issue 10, finding 1). Pointers outside the old
 * unconsumed bytes (the parser's static "/", stale header slots) are left
 * alone. Addresses are compared as integers: the old block may be freed. */
static void rebase_str(ot_str *s, uintptr_t old, size_t len, const char *now)
{
    uintptr_t p = (uintptr_t)s->base;
    if (s->base && p >= old && p + s->len <= old + len)
        s->base = now + (p - old);
}

/* The read position as an integer; an empty ot_buf has no data pointer. */
static uintptr_t rbuf_pos(const ot_http_conn *c) { return c->rbuf.data ? (uintptr_t)ot_buf_rptr(&c->rbuf) : 0; }

static void rbuf_moved(ot_http_conn *c, uintptr_t old, size_t len)
{
    if (rbuf_pos(c) == old || !c->rbuf.data || len == 0)
        return;
    const char *now = ot_buf_rptr(&c->rbuf);
    ot_req *r = &c->req;
    ot_http_request *h = &r->head;
    ot_str *f[] = { &h->method, &h->target, &h->path, &h->query, &h->host, &h->authorization,
                    &h->content_type, &h->idempotency_key, &h->if_match, &r->body };
    for (size_t i = 0; i < OT_ARRAY_LEN(f); i++)
        rebase_str(f[i], old, len, now);
    for (size_t i = 0; i < c->nhdrs_cap; i++) {
        rebase_str(&c->hdrs[i].name, old, len, now);
        rebase_str(&c->hdrs[i].value, old, len, now);
    }
    for (int i = 0; i < OT_MAX_PARAMS; i++)
        rebase_str(&r->params[i], old, len, now);
}

static int rbuf_reserve(ot_http_conn *c, size_t n)
{
    uintptr_t old = rbuf_pos(c);
    size_t len = ot_buf_rlen(&c->rbuf);
    int rc = ot_buf_reserve(&c->rbuf, n); /* may realloc, or compact in place */
    rbuf_moved(c, old, len);
    return rc;
}

void ot_http_conn_move_rbuf(ot_http_conn *c)
{
    ot_buf *b = &c->rbuf;
    if (!b->data)
        return;
    char *p = malloc(b->cap);
    if (!p)
        return;
    uintptr_t old = rbuf_pos(c);
    size_t len = ot_buf_rlen(b);
    memcpy(p, b->data, b->len);
    /* Poison the old block so a missed pointer reads garbage even without ASan. */
    memset(b->data, 0xA5, b->cap);
    free(b->data);
    b->data = p;
    rbuf_moved(c, old, len);
}

/* Reads until EAGAIN (edge-triggered contract) or until `limit` bytes are buffered. */
static int conn_read(ot_http_conn *c, size_t limit)
{
    for (;;) {
        if (ot_buf_rlen(&c->rbuf) >= limit || c->rdrained)
            return 0;
        if (rbuf_reserve(c, OT_READ_CHUNK) < 0)
            return OT_ERR;
        size_t room = c->rbuf.cap - c->rbuf.len;
        ssize_t n = ot_io_read(&c->io, c->rbuf.data + c->rbuf.len, room);
        if (n == OT_EAGAIN) {
            /* TLS may want to write (a key update) rather than read: only a
             * read-side EAGAIN means the socket is dry. */
            c->rdrained = !c->io.ssl || c->io.want_read;
            return 0;
        }
        if (n <= 0)
            return OT_ERR; /* EOF or error: nothing more will come */
        c->rbuf.len += (size_t)n;
        /* A short read means the kernel had no more at that moment (the next
         * bytes bring a new edge). Not for TLS: OpenSSL may hold decrypted
         * bytes of a record it read whole (SSL_pending), which no edge announces. */
        if ((size_t)n < room && !c->io.ssl) {
            c->rdrained = true;
            return 0;
        }
    }
}

static void fail(ot_http_conn *c, int status, const char *code, const char *msg)
{
    c->close_after = true;
    ot_respond_error(&c->req, status, code, "%s", msg);
}

static void dispatch(ot_http_conn *c)
{
    ot_req *r = &c->req;
    ot_http_server *w = c->srv;
    r->body = ot_str_make(c->rbuf.data + c->rbuf.off + c->head_len, c->body_len);
    char allow[128];
    int idx = ot_router_match(&w->router, r->head.method, r->head.path, r->params, &r->nparams, allow, sizeof(allow));
    /* Unknown paths count too: a scanner is throttled like any client. */
    uint32_t retry;
    bool unlimited = idx >= 0 && (w->router.routes[idx].flags & OT_ROUTE_UNLIMITED);
    if (w->rl_ip && r->remote_key_len && !unlimited &&
        ot_ratelimit_take(w->rl_ip, r->remote_key, r->remote_key_len, ot_loop_now_ms(w->loop), &retry) < 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", retry);
        ot_resp_header(r, "Retry-After", ra);
        ot_metrics_inc(OT_C_RATE_LIMITED, 1);
        ot_respond_error(r, 429, "rate_limited", "too many requests from this address");
        return;
    }
    if (idx == OT_ROUTE_NOT_FOUND) {
        ot_respond_error(r, 404, "not_found", "no route for this path");
        return;
    }
    if (idx == OT_ROUTE_BAD_METHOD) {
        ot_resp_header(r, "Allow", allow);
        ot_respond_error(r, 405, "method_not_allowed", "allowed: %s", allow);
        return;
    }
    r->route = idx;
    c->state = ST_HANDLING;
    /* The handler owns the clock now (its backends have their own timeouts). */
    ot_timer_stop(w->loop, &c->timer);
    c->dispatching = true;
    r->data = w->router.routes[idx].data;
    w->router.routes[idx].handler(r);
    c->dispatching = false;
}

/* Returns true when the body is complete. */
static bool body_ready(ot_http_conn *c)
{
    char *body = c->rbuf.data + c->rbuf.off + c->head_len;
    size_t avail = ot_buf_rlen(&c->rbuf) - c->head_len;
    if (!c->chunked) {
        c->body_raw = c->body_len = avail < c->body_need ? avail : (size_t)c->body_need;
        return c->body_len == c->body_need;
    }
    /* Decode in place: output lands right after what is already decoded and
     * never overtakes the input cursor. */
    size_t out = 0;
    ssize_t used = ot_http_chunked_decode(&c->chunk, body + c->body_raw, avail - c->body_raw, body + c->body_len, &out);
    if (used < 0) {
        fail(c, 400, "bad_chunked_body", "malformed chunked body");
        return false;
    }
    c->body_raw += (size_t)used;
    c->body_len += out;
    if (c->body_raw > c->body_len) {
        /* Drop the chunk framing now: only decoded bytes stay buffered, so
         * framing overhead (1-byte chunks are 6x) neither counts against the
         * body limit nor fills the read limit and stalls the request. */
        size_t gap = c->body_raw - c->body_len, tail = avail - c->body_raw;
        memmove(body + c->body_len, body + c->body_raw, tail);
        c->rbuf.len -= gap;
        c->body_raw = c->body_len;
    }
    if (c->body_len > c->srv->cfg->max_body_bytes) {
        fail(c, 413, "body_too_large", "request body exceeds the limit");
        return false;
    }
    return c->chunk.done;
}

static void conn_process(ot_http_conn *c)
{
    const ot_config *cfg = c->srv->cfg;
    ot_http_limits lim = { cfg->max_uri_bytes, cfg->max_header_bytes, cfg->max_headers };
    bool eof = false;
    for (;;) {
        if (c->closed || c->state == ST_HANDLING)
            return;
        if (c->state == ST_CLOSING) {
            conn_flush(c);
            return;
        }
        if (ot_buf_rlen(&c->wbuf) > cfg->http_output_high_water) {
            conn_flush(c);
            if (c->closed || ot_buf_rlen(&c->wbuf) > cfg->http_output_high_water)
                return; /* neither read nor parse: resume on writable */
        }
        bool progress;
        if (c->state == ST_IDLE || c->state == ST_HEAD) {
            int rc = OT_HTTP_INCOMPLETE;
            if (ot_buf_rlen(&c->rbuf) > 0) {
                if (c->state == ST_IDLE) {
                    c->state = ST_HEAD;
                    c->req.start_us = ot_now_us();
                    arm(c, cfg->header_timeout_ms);
                }
                c->req.head.headers = c->hdrs;
                c->req.head.num_headers = c->nhdrs_cap;
                rc = ot_http_parse_request(ot_buf_rptr(&c->rbuf), ot_buf_rlen(&c->rbuf), &c->req.head, &lim);
            }
            if (rc == OT_HTTP_INCOMPLETE) {
                size_t before = ot_buf_rlen(&c->rbuf);
                if (!eof && conn_read(c, cfg->max_header_bytes + 1) < 0)
                    eof = true;
                if (c->closed)
                    return;
                progress = ot_buf_rlen(&c->rbuf) > before;
                if (!progress) {
                    if (eof)
                        conn_close(c);
                    else
                        conn_flush(c);
                    return;
                }
                continue;
            }
            if (rc < 0) {
                /* After a bad head the next request's start is unknowable: close. */
                fail(c, ot_http_error_status(rc), ot_http_error_code(rc), ot_http_error_message(rc));
                continue;
            }
            c->head_len = (size_t)rc;
            /* RFC 9110 §9.3.2: no content in any response to HEAD, errors
             * (404, 405, 413...) included, or the client misframes the stream. */
            c->req.head_only = ot_str_eq_lit(c->req.head.method, "HEAD");
            if (!c->req.head.keep_alive)
                c->close_after = true;
            if (c->req.head.content_length > 0 && (uint64_t)c->req.head.content_length > cfg->max_body_bytes) {
                fail(c, 413, "body_too_large", "request body exceeds the limit");
                continue;
            }
            c->chunked = c->req.head.chunked;
            c->body_need = c->req.head.content_length > 0 ? (uint64_t)c->req.head.content_length : 0;
            if (c->chunked)
                ot_http_chunked_init(&c->chunk);
            c->state = ST_BODY;
        }
        /* ST_BODY */
        if (body_ready(c)) {
            dispatch(c);
            continue;
        }
        if (c->state == ST_CLOSING)
            continue; /* the body was refused and answered */
        /* RFC 9110 §10.1.1: tell a waiting client to send the body. */
        if (c->req.head.expect_continue && !c->sent_continue && c->body_raw == 0) {
            c->sent_continue = true;
            ot_buf_append_str(&c->wbuf, "HTTP/1.1 100 Continue\r\n\r\n");
            conn_flush(c);
            if (c->closed)
                return;
        }
        size_t limit = c->head_len + (c->chunked ? cfg->max_body_bytes + 65536 : c->body_need);
        size_t before = ot_buf_rlen(&c->rbuf);
        if (!eof && conn_read(c, limit) < 0)
            eof = true;
        if (c->closed)
            return;
        if (ot_buf_rlen(&c->rbuf) == before) {
            if (eof)
                conn_close(c);
            else
                conn_flush(c);
            return;
        }
    }
}

static void on_io(ot_loop *loop, int fd, unsigned ev, void *data)
{
    ot_http_conn *c = data;
    if (ev & (OT_READABLE | OT_HANGUP))
        c->rdrained = false; /* a new edge: there may be bytes (or EOF) to read */
    if (ev & OT_WRITABLE) {
        conn_flush(c);
        if (c->closed)
            return;
    }
    if (c->state == ST_HANDLING)
        return; /* reading resumes when the response is queued */
    if ((ev & (OT_READABLE | OT_HANGUP)) || (ev & OT_WRITABLE))
        conn_process(c);
}

void ot_http_drain(ot_http_server *w)
{
    w->draining = true;
    ot_http_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->state == ST_IDLE && ot_buf_rlen(&c->wbuf) == 0)
            conn_close(c);
        else
            c->close_after = true;
    }
}

void ot_http_takeover(ot_req *r, ot_io *io_out, ot_buf *leftover)
{
    ot_http_conn *c = r->conn;
    ot_loop *loop = c->srv->loop;
    r->responded = true;
    ot_buf_consume(&c->rbuf, c->head_len + c->body_raw);
    ot_buf_append(leftover, ot_buf_rptr(&c->rbuf), ot_buf_rlen(&c->rbuf));
    *io_out = c->io;
    /* The accept path set TCP_NOTSENT_LOWAT for HTTP's write deadline; the
     * WebSocket layer has its own queue policy, sized with the kernel's
     * default buffering in mind: 0 restores the system default. */
    int lowat = 0;
    setsockopt(io_out->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
    c->io.fd = -1;
    c->io.ssl = NULL;
    ot_loop_del_fd(loop, io_out->fd);
    c->closed = true;
    ot_timer_stop(loop, &c->timer);
    ot_defer_cancel(loop, &c->resume);
    conn_unlink(c);
    ot_defer_queue(loop, &c->reap);
}
