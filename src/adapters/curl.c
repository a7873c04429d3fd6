#include "ot/adapters/curl.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/core/buf.h"
#include "ot/core/list.h"
#include "ot/core/log.h"
#include "ot/event/backoff.h"
#include "ot/event/watch.h"

struct ot_curl {
    ot_loop *loop;
    CURLM *multi;
    ot_timer timer; /* CURLMOPT_TIMERFUNCTION's one timeout */
    ot_curl_config cfg;
    ot_curl_req *reqs; /* every request not yet finished */
    ot_curl_stats st;
};

struct ot_curl_req {
    ot_curl_req *prev, *next;
    ot_curl *c;
    CURL *easy;
    struct curl_slist *headers;
    ot_buf body, resp;
    ot_backoff backoff;
    ot_timer retry; /* armed between attempts */
    ot_defer unwatched; /* fails the attempt whose socket the loop refused */
    uint32_t attempts;
    bool in_multi;
    char errbuf[CURL_ERROR_SIZE];
    ot_curl_cb *cb;
    void *data;
};

/* One per socket curl asks us to watch, attached with curl_multi_assign. */
typedef struct {
    ot_watch w;
    ot_curl *c;
} sock_ctx;

void ot_curl_config_default(ot_curl_config *c)
{
    *c = (ot_curl_config){ .timeout_ms = 10000, .connect_timeout_ms = 2000, .max_retries = 3,
                           .backoff_min_ms = 100, .backoff_max_ms = 5000, .max_response_bytes = 64u << 20,
                           .max_host_conns = 8 };
}

static void finish(ot_curl *c, ot_curl_req *r, CURLcode code);

/* Hand every finished transfer to its request. */
static void check_done(ot_curl *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        ot_curl_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode code = m->data.result;
        if (r)
            finish(c, r, code);
    }
}

static void on_sock(ot_loop *loop, int fd, unsigned events, void *data)
{
    sock_ctx *s = data;
    ot_curl *c = s->c; /* s may be freed inside socket_action */
    int flags = 0, running;
    if (events & OT_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & OT_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    if (events & OT_HANGUP)
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    check_done(c);
}

/* The loop refused a socket of this transfer (past max_fds, epoll_ctl
 * failed). Answering -1 would make libcurl mark the whole multi handle dead:
 * it then arms no timer and runs no transfer, so every request in flight
 * would never call back. Only this attempt fails instead, after the callback
 * returns (curl forbids removing a handle from inside its callbacks). */
static void watch_failed(ot_curl *c, CURL *easy, curl_socket_t fd)
{
    ot_curl_req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (!r || r->unwatched.queued)
        return;
    ot_logf(OT_LOG_ERROR, "curl: the loop cannot watch socket %d; failing the request", (int)fd);
    snprintf(r->errbuf, sizeof r->errbuf, "the loop cannot watch socket %d", (int)fd);
    ot_defer_queue(c->loop, &r->unwatched);
}

static void on_unwatched(ot_loop *loop, ot_defer *d)
{
    ot_curl_req *r = d->data;
    finish(r->c, r, CURLE_COULDNT_CONNECT);
}

static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    ot_curl *c = userp;
    sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ot_watch_remove(&s->w);
            curl_multi_assign(c->multi, fd, NULL);
            free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            watch_failed(c, easy, fd);
            return 0;
        }
        s->c = c;
        ot_watch_init(&s->w, c->loop, on_sock, s);
        curl_multi_assign(c->multi, fd, s);
    }
    unsigned mask = (what & CURL_POLL_IN ? OT_READABLE : 0) | (what & CURL_POLL_OUT ? OT_WRITABLE : 0);
    if (ot_watch_set(&s->w, fd, mask) < 0)
        watch_failed(c, easy, fd);
    return 0;
}

static void on_timer(ot_loop *loop, ot_timer *t)
{
    ot_curl *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

/* -1: no timeout; 0: as soon as possible, which the loop runs in its next
 * pass (a 0 ms timer armed from a callback never runs in the same pass). */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    ot_curl *c = userp;
    ot_timer_stop(c->loop, &c->timer);
    if (timeout_ms >= 0)
        ot_timer_start(c->loop, &c->timer, (uint64_t)timeout_ms);
    return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *userp)
{
    ot_curl_req *r = userp;
    size_t len = size * n;
    if (ot_buf_rlen(&r->resp) + len > r->c->cfg.max_response_bytes || ot_buf_append(&r->resp, p, len) < 0)
        return 0; /* CURLE_WRITE_ERROR */
    return len;
}

static int start_attempt(ot_curl_req *r)
{
    ot_buf_reset(&r->resp);
    ot_defer_cancel(r->c->loop, &r->unwatched);
    r->errbuf[0] = 0;
    r->attempts++;
    if (curl_multi_add_handle(r->c->multi, r->easy) != CURLM_OK)
        return OT_ERR;
    r->in_multi = true;
    return 0;
}

static void free_req(ot_curl_req *r)
{
    OT_LIST_UNLINK(&r->c->reqs, r);
    ot_timer_stop(r->c->loop, &r->retry);
    ot_defer_cancel(r->c->loop, &r->unwatched);
    if (r->in_multi)
        curl_multi_remove_handle(r->c->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    ot_buf_free(&r->body);
    ot_buf_free(&r->resp);
    r->c->st.in_flight--;
    free(r);
}

static void on_retry(ot_loop *loop, ot_timer *t)
{
    ot_curl_req *r = t->data;
    if (start_attempt(r) < 0)
        finish(r->c, r, CURLE_FAILED_INIT);
}

static bool retryable(CURLcode code, long status)
{
    if (code == CURLE_OK)
        return status == 429 || status >= 500;
    return code == CURLE_COULDNT_CONNECT || code == CURLE_OPERATION_TIMEDOUT || code == CURLE_SEND_ERROR ||
           code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING || code == CURLE_PARTIAL_FILE;
}

static void finish(ot_curl *c, ot_curl_req *r, CURLcode code)
{
    long status = 0, connects = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    c->st.connects += connects;
    ot_defer_cancel(c->loop, &r->unwatched);
    if (r->in_multi) {
        curl_multi_remove_handle(c->multi, r->easy);
        r->in_multi = false;
    }
    if (retryable(code, status) && r->attempts <= c->cfg.max_retries) {
        c->st.retries++;
        ot_timer_start(c->loop, &r->retry, ot_backoff_next(&r->backoff));
        return;
    }
    if (code != CURLE_OK)
        c->st.failures++;
    /* NUL after the body (not counted): callers log it with %s. */
    if (ot_buf_rlen(&r->resp) && ot_buf_append(&r->resp, "", 1) == 0)
        r->resp.len--;
    ot_curl_result res = { .status = code == CURLE_OK ? status : 0, .curl_code = (int)code,
                           .error = code == CURLE_OK ? NULL : (r->errbuf[0] ? r->errbuf : curl_easy_strerror(code)),
                           .body = ot_buf_rptr(&r->resp), .body_len = ot_buf_rlen(&r->resp), .attempts = r->attempts };
    ot_curl_cb *cb = r->cb;
    void *data = r->data;
    /* r is unlinked before the callback, which may send further requests
     * (never free c: documented); the response stays valid during it. */
    OT_LIST_UNLINK(&c->reqs, r);
    cb(data, &res);
    free_req(r);
}

ot_curl *ot_curl_new(ot_loop *loop, const ot_curl_config *cfg)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            ot_logf(OT_LOG_ERROR, "curl: global init failed");
            return NULL;
        }
        global_done = true;
    }
    ot_curl *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cfg = *cfg;
    ot_timer_init(&c->timer, on_timer, c);
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        ot_logf(OT_LOG_ERROR, "curl: multi init failed");
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, cfg->max_host_conns);
    return c;
}

void ot_curl_free(ot_curl *c)
{
    if (!c)
        return;
    while (c->reqs)
        free_req(c->reqs);
    ot_timer_stop(c->loop, &c->timer);
    /* Closes the cached connections: REMOVE for each socket frees its ctx. */
    curl_multi_cleanup(c->multi);
    free(c);
}

ot_curl_req *ot_curl_send(ot_curl *c, const char *method, const char *url, const char *content_type,
                          const void *body, size_t body_len, ot_curl_cb *cb, void *data)
{
    ot_curl_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = c;
    r->cb = cb;
    r->data = data;
    r->easy = curl_easy_init();
    ot_timer_init(&r->retry, on_retry, r);
    ot_defer_init(&r->unwatched, on_unwatched, r);
    ot_backoff_init(&r->backoff, c->cfg.backoff_min_ms, c->cfg.backoff_max_ms);
    OT_LIST_PUSH_FRONT(&c->reqs, r);
    c->st.in_flight++;
    c->st.requests++;
    if (!r->easy || (body_len && ot_buf_append(&r->body, body, body_len) < 0))
        goto fail;
    if (content_type) {
        char h[160];
        snprintf(h, sizeof h, "Content-Type: %s", content_type);
        r->headers = curl_slist_append(NULL, h);
        if (!r->headers)
            goto fail;
    }
    /* curl answers "Expect: 100-continue" bodies over 1 MiB with a wait;
     * Elasticsearch does not need it. */
    struct curl_slist *h2 = curl_slist_append(r->headers, "Expect:");
    if (!h2)
        goto fail;
    r->headers = h2;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 || body_len) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, ot_buf_rptr(&r->body) ? ot_buf_rptr(&r->body) : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (start_attempt(r) < 0)
        goto fail;
    return r;
fail:
    free_req(r);
    return NULL;
}

void ot_curl_cancel(ot_curl_req *r)
{
    if (r)
        free_req(r);
}

void ot_curl_get_stats(const ot_curl *c, ot_curl_stats *st) { *st = c->st; }
