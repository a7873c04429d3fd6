/* RFC 6455 on the reactor: frames in and out of one upgraded socket.
 * Reads are edge-triggered (read until EAGAIN every time); writes are gathered
 * from the queue of shared frames with writev. */
#include "ot/http/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "ot/core/log.h"
#include "ot/core/metrics.h"

/* How long a closing socket may take to flush our Close frame and see the
 * peer's FIN before we cut it: the close handshake of §7.1 without letting a
 * silent peer hold the fd. */
#define OT_WS_LINGER_MS 2000
#define OT_WS_IOV 64
#define OT_WS_READ_STEP 16384
/* A ring of this size stays allocated once used (64 bytes): an idle socket
 * that gets an event a minute should not malloc per event. */
#define OT_WS_RING_MIN 8

#define OT_WS_SCRATCH 65536 /* one read buffer per worker, shared by every socket */

struct ot_ws_server {
    ot_loop *loop;
    const ot_config *cfg;
    ot_ws_conn **dirty; /* sockets with bytes to flush after this batch */
    uint32_t ndirty, dirty_cap;
    ot_ws_conn *zombies; /* dead, freed after this batch */
    ot_defer after;
    ot_wsbuf *ping;      /* the shared empty Ping frame */
    uint8_t scratch[OT_WS_SCRATCH];
};

static const ot_config *cfg_of(const ot_ws_conn *c) { return c->srv->cfg; }
static ot_loop *loop_of(const ot_ws_conn *c) { return c->srv->loop; }
ot_loop *ot_ws_loop(const ot_ws_conn *c) { return c->srv->loop; }
const ot_config *ot_ws_cfg(const ot_ws_conn *c) { return c->srv->cfg; }

/* ---------------------------------------------------------------- shared frames */

static ot_wsbuf *wsbuf_alloc(size_t len)
{
    if (len > UINT32_MAX - 64)
        return NULL;
    ot_wsbuf *b = malloc(sizeof(*b) + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    b->seq = 0;
    b->seen_us = 0;
    return b;
}

ot_wsbuf *ot_wsbuf_frame(uint8_t opcode, ot_str a, ot_str b, ot_str c)
{
    uint64_t plen = (uint64_t)a.len + b.len + c.len;
    uint8_t hdr[10];
    size_t hl = plen < UINT32_MAX ? ot_ws_write_header(hdr, opcode, true, plen) : 0;
    ot_wsbuf *w = hl ? wsbuf_alloc(hl + plen) : NULL;
    if (!w)
        return NULL;
    uint8_t *p = w->data;
    memcpy(p, hdr, hl);
    p += hl;
    if (a.len)
        memcpy(p, a.base, a.len);
    p += a.len;
    if (b.len)
        memcpy(p, b.base, b.len);
    p += b.len;
    if (c.len)
        memcpy(p, c.base, c.len);
    return w;
}

ot_wsbuf *ot_wsbuf_raw(ot_str bytes)
{
    ot_wsbuf *w = wsbuf_alloc(bytes.len);
    if (w && bytes.len)
        memcpy(w->data, bytes.base, bytes.len);
    return w;
}

void ot_wsbuf_unref(ot_wsbuf *b)
{
    if (b && --b->refs == 0)
        free(b);
}

int ot_wsq_push(ot_wsq *q, ot_wsbuf *b)
{
    if (q->len == q->cap) {
        uint32_t ncap = q->cap ? q->cap * 2 : OT_WS_RING_MIN;
        ot_wsbuf **n = malloc(ncap * sizeof(*n));
        if (!n)
            return OT_ERR;
        for (uint32_t i = 0; i < q->len; i++)
            n[i] = ot_wsq_peek(q, i);
        free(q->items);
        q->items = n;
        q->head = 0;
        q->cap = ncap;
    }
    q->items[(q->head + q->len) & (q->cap - 1)] = b;
    q->len++;
    q->bytes += b->len;
    return 0;
}

ot_wsbuf *ot_wsq_pop(ot_wsq *q)
{
    if (q->len == 0)
        return NULL;
    ot_wsbuf *b = q->items[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    q->bytes -= b->len;
    return b;
}

void ot_wsq_clear(ot_wsq *q)
{
    ot_wsbuf *b;
    while ((b = ot_wsq_pop(q)))
        ot_wsbuf_unref(b);
    free(q->items);
    *q = (ot_wsq){ 0 };
}

/* ---------------------------------------------------------------- the per-worker transport */

static void conn_free(ot_ws_conn *c);

static void on_after(ot_loop *loop, ot_defer *d)
{
    ot_ws_server *s = d->data;
    /* Entries may be appended while flushing (a drained socket fetches its
     * next replay page): iterate by index. */
    for (uint32_t i = 0; i < s->ndirty; i++) {
        ot_ws_conn *c = s->dirty[i];
        c->dirty = false;
        if (c->state != OT_WS_DEAD)
            ot_ws_flush(c);
    }
    s->ndirty = 0;
    /* Only now: the dirty list above was the last thing naming them. */
    ot_ws_conn *c;
    while ((c = s->zombies)) {
        s->zombies = c->zombie;
        conn_free(c);
    }
}

ot_ws_server *ot_ws_server_new(ot_loop *loop, const ot_config *cfg)
{
    ot_ws_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = cfg;
    s->ping = ot_wsbuf_frame(OT_WS_OP_PING, OT_STR_NULL, OT_STR_NULL, OT_STR_NULL);
    if (!s->ping) {
        free(s);
        return NULL;
    }
    ot_defer_init(&s->after, on_after, s);
    return s;
}

void ot_ws_server_free(ot_ws_server *s)
{
    if (!s)
        return;
    ot_defer_cancel(s->loop, &s->after);
    s->ndirty = 0;
    ot_ws_conn *c;
    while ((c = s->zombies)) {
        s->zombies = c->zombie;
        conn_free(c);
    }
    free(s->dirty);
    ot_wsbuf_unref(s->ping);
    free(s);
}

/* The socket has bytes queued: flush it after the current batch. */
static void mark_dirty(ot_ws_conn *c)
{
    ot_ws_server *s = c->srv;
    if (c->dirty)
        return;
    if (s->ndirty == s->dirty_cap) {
        uint32_t n = s->dirty_cap ? s->dirty_cap * 2 : 64;
        ot_ws_conn **d = realloc(s->dirty, n * sizeof(*d));
        if (!d) {
            ot_ws_flush(c); /* no list: flush now rather than lose the wake-up */
            return;
        }
        s->dirty = d;
        s->dirty_cap = n;
    }
    c->dirty = true;
    s->dirty[s->ndirty++] = c;
    ot_defer_queue(s->loop, &s->after);
}

/* ---------------------------------------------------------------- queueing and closing */

size_t ot_ws_queued(const ot_ws_conn *c)
{
    return c->out.bytes - c->out_off + (c->ops->held_bytes ? c->ops->held_bytes(c) : 0);
}
size_t ot_ws_unsent(const ot_ws_conn *c) { return c->out.bytes - c->out_off; }

/* Frees every frame not yet on the wire; a half-written head is kept so what
 * follows still lands on a frame boundary. */
static int discard_unsent(ot_ws_conn *c)
{
    ot_wsbuf *keep = c->out_off > 0 ? ot_wsq_pop(&c->out) : NULL;
    ot_wsq_clear(&c->out);
    if (keep && ot_wsq_push(&c->out, keep) < 0) {
        ot_wsbuf_unref(keep);
        c->out_off = 0;
        return OT_ERR;
    }
    if (!keep)
        c->out_off = 0;
    return 0;
}

/* A client that does not read cannot make us buffer without limit: past the
 * cap everything not yet on the wire is dropped and the socket is closed. */
void ot_ws_drop_slow(ot_ws_conn *c)
{
    if (c->state != OT_WS_OPEN)
        return;
    ot_metrics_inc(OT_C_WS_SLOW_DROPPED, 1);
    if (discard_unsent(c) < 0) {
        ot_ws_abort(c);
        return;
    }
    ot_ws_close(c, 1008, "slow consumer");
}

int ot_ws_enqueue(ot_ws_conn *c, ot_wsbuf *b, ot_wsq *q)
{
    if (c->state != OT_WS_OPEN)
        return OT_ERR;
    if (ot_ws_queued(c) + b->len > cfg_of(c)->ws_max_queue) {
        ot_ws_drop_slow(c);
        return OT_ERR;
    }
    if (ot_wsq_push(q ? q : &c->out, b) < 0) {
        ot_ws_abort(c);
        return OT_ERR;
    }
    ot_wsbuf_ref(b); /* the queue's reference */
    if (!q)
        mark_dirty(c);
    return 0;
}

int ot_ws_send(ot_ws_conn *c, ot_wsbuf *b) { return ot_ws_enqueue(c, b, NULL); }

int ot_ws_send_text(ot_ws_conn *c, ot_str json)
{
    if (c->state != OT_WS_OPEN)
        return OT_ERR;
    ot_wsbuf *b = ot_wsbuf_frame(OT_WS_OP_TEXT, json, OT_STR_NULL, OT_STR_NULL);
    if (!b) {
        ot_ws_abort(c);
        return OT_ERR;
    }
    int rc = ot_ws_send(c, b);
    ot_wsbuf_unref(b);
    return rc;
}

void ot_ws_close(ot_ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state != OT_WS_OPEN)
        return;
    uint8_t pl[OT_WS_MAX_CONTROL_PAYLOAD];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > sizeof(pl) - 2)
        rl = sizeof(pl) - 2;
    pl[0] = (uint8_t)(code >> 8);
    pl[1] = (uint8_t)code;
    if (rl)
        memcpy(pl + 2, reason, rl);
    c->state = OT_WS_CLOSING;
    ot_timer_start(loop_of(c), &c->timer, OT_WS_LINGER_MS);
    ot_wsbuf *b = ot_wsbuf_frame(OT_WS_OP_CLOSE, ot_str_make((const char *)pl, 2 + rl), OT_STR_NULL, OT_STR_NULL);
    /* The one frame allowed past the cap (see ot_ws_enqueue): it is the last. */
    if (!b || (ot_ws_queued(c) + b->len > cfg_of(c)->ws_max_queue && discard_unsent(c) < 0) ||
        ot_wsq_push(&c->out, b) < 0) {
        ot_wsbuf_unref(b);
        ot_ws_abort(c);
        return;
    }
    mark_dirty(c);
}

void ot_ws_abort(ot_ws_conn *c)
{
    if (c->state == OT_WS_DEAD)
        return;
    c->state = OT_WS_DEAD;
    ot_loop *loop = loop_of(c);
    ot_timer_stop(loop, &c->timer);
    if (c->io.fd >= 0)
        ot_loop_del_fd(loop, c->io.fd);
    ot_io_close(&c->io);
    ot_wsq_clear(&c->out);
    c->ops->on_close(c);
    c->zombie = c->srv->zombies;
    c->srv->zombies = c;
    ot_defer_queue(loop, &c->srv->after);
}

static void conn_free(ot_ws_conn *c)
{
    ot_wsq_clear(&c->out);
    free(c->rbuf);
    free(c->msg);
    if (c->ops->on_free)
        c->ops->on_free(c);
    else
        free(c);
}

static void ws_read(ot_ws_conn *c);

void ot_ws_flush(ot_ws_conn *c)
{
    uint64_t pushed = 0, now = 0;
    while (c->state != OT_WS_DEAD && c->out.len) {
        struct iovec iov[OT_WS_IOV];
        int n = 0;
        for (uint32_t i = 0; i < c->out.len && n < OT_WS_IOV; i++) {
            ot_wsbuf *b = ot_wsq_peek(&c->out, i);
            size_t off = i == 0 ? c->out_off : 0;
            iov[n++] = (struct iovec){ b->data + off, b->len - off };
        }
        ssize_t w = ot_io_writev(&c->io, iov, n);
        if (w == OT_EAGAIN)
            break; /* the writable edge resumes us */
        if (w <= 0) {
            ot_ws_abort(c);
            break;
        }
        size_t left = (size_t)w;
        while (left) {
            ot_wsbuf *b = ot_wsq_peek(&c->out, 0);
            size_t rem = b->len - c->out_off;
            if (left < rem) {
                c->out_off += (uint32_t)left;
                break;
            }
            left -= rem;
            c->out_off = 0;
            ot_wsq_pop(&c->out);
            if (b->seen_us) {
                if (!now)
                    now = ot_now_us();
                ot_metrics_push_latency(now > b->seen_us ? now - b->seen_us : 0);
                pushed++;
            }
            ot_wsbuf_unref(b);
        }
    }
    if (pushed)
        ot_metrics_inc(OT_C_WS_MESSAGES_PUSHED, pushed);
    if (c->rd_paused && c->state != OT_WS_DEAD &&
        (c->state != OT_WS_OPEN || ot_ws_unsent(c) <= OT_WS_LOW_WATER(cfg_of(c)->ws_max_queue))) {
        /* No edge will come for input already in the kernel: read it now. */
        c->rd_paused = false;
        ws_read(c);
    }
    if (c->state == OT_WS_DEAD || c->out.len)
        return;
    if (c->out.cap > OT_WS_RING_MIN)
        ot_wsq_clear(&c->out); /* give a burst's grown ring back */
    if (c->state == OT_WS_CLOSING && !c->shut) {
        /* Our Close frame is out. §7.1.1: the server closes TCP first. Half-
         * close and wait (bounded by the linger timer) for the peer's FIN, so
         * unread input does not turn our close into an RST that could destroy
         * the Close frame before the client reads it. */
        ot_io_shutdown(&c->io);
        c->shut = true;
        return;
    }
    if (c->ops->on_drained)
        c->ops->on_drained(c);
}

/* ---------------------------------------------------------------- timers */

static void on_timer(ot_loop *loop, ot_timer *t)
{
    ot_ws_conn *c = t->data;
    if (c->state != OT_WS_OPEN || c->ping_out) {
        /* The close linger ran out, or no Pong came back in time (§5.5.2-3):
         * the peer is gone or not reading; a handshake would just wait again. */
        ot_ws_abort(c);
        return;
    }
    if (ot_ws_send(c, c->srv->ping) < 0)
        return;
    c->ping_out = true;
    ot_timer_start(loop, &c->timer, cfg_of(c)->ws_pong_timeout_ms);
}

/* ---------------------------------------------------------------- input */

static void fail(ot_ws_conn *c, int code)
{
    const char *reason = code == 1007 ? "invalid UTF-8" : code == 1009 ? "message too big" : "protocol error";
    /* §7.1.7: fail the connection; nothing after the bad frame is trusted. */
    c->drop_input = true;
    if (c->state == OT_WS_OPEN)
        ot_ws_close(c, (uint16_t)code, reason);
    else
        ot_ws_abort(c);
}

static void deliver(ot_ws_conn *c, uint8_t op, const uint8_t *p, size_t n)
{
    if (op == OT_WS_OP_TEXT) {
        c->ops->on_text(c, p, n);
        return;
    }
    ot_ws_send_text(c, OT_STR("{\"event\":\"error\",\"data\":{\"code\":\"unsupported\","
                              "\"message\":\"binary messages are not supported; send JSON text\"}}"));
}

static int msg_append(ot_ws_conn *c, const uint8_t *p, size_t n)
{
    if (c->msg_len + n > c->msg_cap) {
        size_t ncap = c->msg_cap ? (size_t)c->msg_cap * 2 : 1024;
        while (ncap < c->msg_len + n)
            ncap *= 2;
        uint8_t *m = realloc(c->msg, ncap);
        if (!m)
            return OT_ERR;
        c->msg = m;
        c->msg_cap = (uint32_t)ncap;
    }
    if (n)
        memcpy(c->msg + c->msg_len, p, n);
    c->msg_len += (uint32_t)n;
    return 0;
}

static void on_control(ot_ws_conn *c, const ot_ws_frame *f, const uint8_t *p, size_t n)
{
    if (f->opcode == OT_WS_OP_PING) {
        /* §5.5.3: a Pong echoes the Ping's application data. */
        if (c->state == OT_WS_OPEN) {
            ot_wsbuf *b = ot_wsbuf_frame(OT_WS_OP_PONG, ot_str_make((const char *)p, n), OT_STR_NULL, OT_STR_NULL);
            if (!b)
                ot_ws_abort(c);
            else
                ot_ws_send(c, b);
            ot_wsbuf_unref(b);
        }
        return;
    }
    if (f->opcode == OT_WS_OP_PONG) {
        c->ping_out = false;
        if (c->state == OT_WS_OPEN)
            ot_timer_start(loop_of(c), &c->timer, cfg_of(c)->ws_ping_ms);
        return;
    }
    uint16_t code;
    ot_str reason;
    int rc = ot_ws_parse_close(p, n, &code, &reason);
    if (rc < 0) {
        fail(c, -rc);
        return;
    }
    c->close_rcvd = true;
    /* §5.5.1: answer with a Close, echoing the status code. */
    ot_ws_close(c, (uint16_t)rc, NULL);
}

static void on_frame(ot_ws_conn *c, const ot_ws_frame *f, const uint8_t *p, size_t n)
{
    if (ot_ws_is_control(f->opcode)) {
        on_control(c, f, p, n);
        return;
    }
    if (c->state != OT_WS_OPEN)
        return; /* §7.1.2: after our Close, data is read and dropped */
    size_t max = cfg_of(c)->ws_max_message;
    /* §5.4: continuation only inside a message, a new message only after the last one ended. */
    if (f->opcode == OT_WS_OP_CONT ? c->msg_op == 0 : c->msg_op != 0) {
        fail(c, 1002);
        return;
    }
    if (f->fin && f->opcode != OT_WS_OP_CONT) {
        if (f->opcode == OT_WS_OP_TEXT && !ot_utf8_valid(p, n)) {
            fail(c, 1007); /* §8.1 */
            return;
        }
        deliver(c, f->opcode, p, n);
        return;
    }
    if (f->opcode != OT_WS_OP_CONT) {
        c->msg_op = f->opcode;
        c->msg_len = 0;
        ot_utf8_init(&c->utf8);
    }
    if ((uint64_t)c->msg_len + n > max) {
        fail(c, 1009);
        return;
    }
    /* Validate as fragments arrive: a bad byte fails the connection at once
     * rather than after the rest of the message was buffered. */
    if (c->msg_op == OT_WS_OP_TEXT && ot_utf8_feed(&c->utf8, p, n) < 0) {
        fail(c, 1007);
        return;
    }
    if (msg_append(c, p, n) < 0) {
        ot_ws_abort(c);
        return;
    }
    if (!f->fin)
        return;
    if (c->msg_op == OT_WS_OP_TEXT && !ot_utf8_complete(&c->utf8)) {
        fail(c, 1007);
        return;
    }
    uint8_t op = c->msg_op;
    c->msg_op = 0;
    deliver(c, op, c->msg, c->msg_len);
    free(c->msg); /* idle sockets keep no reassembly buffer */
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
}

static bool input_open(const ot_ws_conn *c)
{
    return c->state != OT_WS_DEAD && !c->drop_input && !c->close_rcvd;
}

static int rbuf_reserve(ot_ws_conn *c, size_t need)
{
    if (need <= c->rcap)
        return 0;
    size_t ncap = c->rcap ? (size_t)c->rcap * 2 : OT_WS_READ_STEP;
    if (ncap < need)
        ncap = need;
    uint8_t *p = realloc(c->rbuf, ncap);
    if (!p)
        return OT_ERR;
    c->rbuf = p;
    c->rcap = (uint32_t)ncap;
    return 0;
}

/* Parses whole frames from buf[0..len) and keeps the incomplete tail. */
static void consume(ot_ws_conn *c, uint8_t *buf, size_t len, bool in_rbuf)
{
    size_t off = 0, max = cfg_of(c)->ws_max_message, high = OT_WS_HIGH_WATER(cfg_of(c)->ws_max_queue);
    while (off < len && input_open(c)) {
        if (c->state == OT_WS_OPEN && ot_ws_unsent(c) > high) {
            /* Back-pressure: the rest waits (here and in the kernel) until
             * the client has read our answers to what came before. */
            c->rd_paused = true;
            break;
        }
        ot_ws_frame f;
        int hl = ot_ws_parse_header(buf + off, len - off, max, &f);
        if (hl == OT_WS_INCOMPLETE)
            break;
        if (hl < 0) {
            fail(c, -hl);
            break;
        }
        if (f.payload_len > len - off - (size_t)hl)
            break; /* bounded by max: the header check refused anything larger */
        uint8_t *p = buf + off + hl;
        size_t n = (size_t)f.payload_len;
        ot_ws_unmask(p, n, f.mask, 0);
        off += (size_t)hl + n;
        on_frame(c, &f, p, n);
    }
    size_t rest = input_open(c) ? len - off : 0;
    if (in_rbuf) {
        if (rest && off)
            memmove(c->rbuf, c->rbuf + off, rest);
        c->rlen = (uint32_t)rest;
        if (!rest) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
    } else if (rest) {
        if (rbuf_reserve(c, rest) < 0) {
            ot_ws_abort(c);
            return;
        }
        memcpy(c->rbuf, buf + off, rest);
        c->rlen = (uint32_t)rest;
    }
}

/* Input waits only while the socket is open and would be answered. */
static bool read_paused(const ot_ws_conn *c) { return c->rd_paused && c->state == OT_WS_OPEN && input_open(c); }

static void ws_read(ot_ws_conn *c)
{
    if (c->in_read)
        return;
    c->in_read = true;
    size_t scap;
    uint8_t *scratch = c->srv->scratch;
    scap = sizeof(c->srv->scratch);
    size_t limit = cfg_of(c)->ws_max_message + OT_WS_MAX_HEADER + OT_WS_READ_STEP;
    if (c->rlen && input_open(c) && !read_paused(c))
        consume(c, c->rbuf, c->rlen, true); /* whole frames a pause left behind */
    while (c->state != OT_WS_DEAD && !read_paused(c)) {
        uint8_t *dst = scratch;
        size_t room = scap;
        if (c->rlen) {
            /* An incomplete frame is pending: read behind it (never beyond one
             * maximal frame plus a read step). */
            size_t want = c->rlen + OT_WS_READ_STEP;
            if (rbuf_reserve(c, want < limit ? want : limit) < 0) {
                ot_ws_abort(c);
                break;
            }
            dst = c->rbuf + c->rlen;
            room = c->rcap - c->rlen;
        }
        ssize_t n = ot_io_read(&c->io, dst, room);
        if (n == OT_EAGAIN)
            break;
        if (n <= 0) {
            /* EOF: the end of a lingering close, or a peer that vanished
             * without a Close (1006, §7.1.5). Either way we are done. */
            ot_ws_abort(c);
            break;
        }
        if (!input_open(c))
            continue; /* drained and dropped */
        if (c->rlen) {
            c->rlen += (uint32_t)n;
            consume(c, c->rbuf, c->rlen, true);
        } else {
            consume(c, scratch, (size_t)n, false);
        }
    }
    c->in_read = false;
}

static void on_io(ot_loop *loop, int fd, unsigned ev, void *data)
{
    ot_ws_conn *c = data;
    /* TLS may need the other direction to progress: with TLS, try both. */
    if ((ev & (OT_READABLE | OT_HANGUP)) || c->io.ssl)
        ws_read(c);
    if (c->state != OT_WS_DEAD && c->out.len)
        ot_ws_flush(c);
}


/* ---------------------------------------------------------------- a new socket */

void ot_ws_conn_init(ot_ws_server *s, ot_ws_conn *c, const ot_ws_ops *ops, void *data, ot_io io)
{
    c->io = io;
    c->srv = s;
    c->ops = ops;
    c->data = data;
    c->out_off = 0;
    ot_timer_init(&c->timer, on_timer, c);
}

int ot_ws_open(ot_ws_conn *c, ot_wsbuf *hello, const ot_buf *early)
{
    if (ot_wsq_push(&c->out, hello) < 0)
        ot_wsbuf_unref(hello);
    if (c->out.len == 0 || ot_loop_add_fd(loop_of(c), c->io.fd, OT_READABLE | OT_WRITABLE | OT_EDGE, on_io, c) < 0) {
        ot_ws_abort(c);
        return OT_ERR;
    }
    mark_dirty(c);
    ot_timer_start(loop_of(c), &c->timer, cfg_of(c)->ws_ping_ms);
    size_t n = early ? ot_buf_rlen(early) : 0;
    if (n > 0) {
        if (rbuf_reserve(c, n) < 0) {
            ot_ws_abort(c);
            return OT_ERR;
        }
        memcpy(c->rbuf, ot_buf_rptr(early), n);
        c->rlen = (uint32_t)n;
        c->in_read = true; /* a flush from in here must not re-enter consume */
        consume(c, c->rbuf, c->rlen, true);
        c->in_read = false;
    }
    return c->state == OT_WS_DEAD ? OT_ERR : 0;
}
