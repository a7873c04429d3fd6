/* adapters/curl: libcurl multi on the loop, against a tiny scripted HTTP/1.1
 * server on a thread (real sockets, real curl): keep-alive reuse, retries with
 * backoff on 429/5xx, giving up after max_retries, per-request timeouts, a
 * refused connection, cancellation, requests started from inside callbacks
 * (one after another and eight at once, on reused and new connections) and a
 * socket the loop cannot watch. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ot/adapters/curl.h"

/* The server answers request i with script[i] (status; 0 = never answer). */
typedef struct {
    int lfd, port;
    int script[16], nscript;
    int served, conns;
    char last_body[256];
    pthread_t th;
} srv;

static void *serve(void *arg)
{
    srv *s = arg;
    int fd = -1;
    char buf[8192];
    size_t have = 0;
    while (s->served < s->nscript) {
        if (fd < 0) {
            fd = accept(s->lfd, NULL, NULL);
            if (fd < 0)
                return NULL;
            __atomic_add_fetch(&s->conns, 1, __ATOMIC_SEQ_CST);
            have = 0;
        }
        char *end = NULL;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0) {
                close(fd);
                fd = -1;
                break;
            }
            have += (size_t)n;
        }
        if (fd < 0)
            continue;
        size_t head = (size_t)(end - buf) + 4, clen = 0;
        char *cl = memmem(buf, head, "Content-Length: ", 16);
        if (cl)
            clen = strtoul(cl + 16, NULL, 10);
        while (have < head + clen) {
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        snprintf(s->last_body, sizeof s->last_body, "%.*s", (int)clen, buf + head);
        int st = s->script[s->served];
        memmove(buf, buf + head + clen, have - head - clen);
        have -= head + clen;
        __atomic_add_fetch(&s->served, 1, __ATOMIC_SEQ_CST);
        if (st == 0) {
            sleep(1); /* the client's timeout is shorter */
            close(fd);
            fd = -1;
            continue;
        }
        char resp[256];
        int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 7\r\nContent-Type: text/plain\r\n\r\nbody-%02d",
                         st, s->served);
        if (write(fd, resp, (size_t)n) != n) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void srv_start(srv *s, const int *script, int n)
{
    memset(s, 0, sizeof *s);
    memcpy(s->script, script, sizeof(int) * (size_t)n);
    s->nscript = n;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, serve, s);
}

static void srv_stop(srv *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->th, NULL);
}

typedef struct {
    int done;
    ot_curl_result res;
    char body[1024], error[256]; /* copies: the result's strings die with the callback */
} got;

static void on_done(void *data, const ot_curl_result *r)
{
    got *g = data;
    g->done++;
    g->res = *r;
    /* Callers log the body with %s: it must end where body_len says. */
    if (r->body)
        cr_assert_eq(r->body[r->body_len], 0, "the body is NUL-terminated");
    snprintf(g->body, sizeof g->body, "%.*s", (int)r->body_len, r->body ? r->body : "");
    snprintf(g->error, sizeof g->error, "%s", r->error ? r->error : "");
    g->res.body = g->res.error = NULL;
}

static void run_until(ot_loop *l, const int *flag, int want)
{
    for (int i = 0; i < 2000 && *flag < want; i++)
        ot_loop_run_once(l, 10);
    cr_assert_geq(*flag, want, "request did not finish");
}

static ot_curl *client(ot_loop *l, uint32_t timeout_ms, uint32_t retries)
{
    ot_curl_config cfg;
    ot_curl_config_default(&cfg);
    cfg.timeout_ms = timeout_ms;
    cfg.max_retries = retries;
    cfg.backoff_min_ms = 5;
    cfg.backoff_max_ms = 20;
    ot_curl *c = ot_curl_new(l, &cfg);
    cr_assert(c);
    return c;
}

Test(curl, consecutive_requests_reuse_one_keep_alive_connection)
{
    srv s;
    srv_start(&s, (int[]){ 200, 201, 200 }, 3);
    ot_loop *l = ot_loop_new(64);
    ot_curl *c = client(l, 2000, 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", s.port);
    got g = { 0 };
    cr_assert(ot_curl_send(c, "POST", url, "application/json", "{\"a\":1}", 7, on_done, &g));
    run_until(l, &g.done, 1);
    cr_expect_eq(g.res.status, 200);
    cr_expect_eq(g.res.curl_code, 0);
    cr_expect_str_eq(g.body, "body-01");
    cr_expect_str_eq(s.last_body, "{\"a\":1}");
    cr_assert(ot_curl_send(c, "PUT", url, NULL, "b", 1, on_done, &g));
    run_until(l, &g.done, 2);
    cr_expect_eq(g.res.status, 201);
    cr_assert(ot_curl_send(c, "GET", url, NULL, NULL, 0, on_done, &g));
    run_until(l, &g.done, 3);
    cr_expect_eq(g.res.attempts, 1);
    cr_expect_eq(__atomic_load_n(&s.conns, __ATOMIC_SEQ_CST), 1, "one connection for three requests");
    ot_curl_stats st;
    ot_curl_get_stats(c, &st);
    cr_expect_eq(st.requests, 3);
    cr_expect_eq(st.connects, 1);
    cr_expect_eq(st.in_flight, 0);
    ot_curl_free(c);
    srv_stop(&s);
    ot_loop_free(l);
}

/* A scripted server, a loop and a client on it. */
typedef struct {
    srv s;
    ot_loop *l;
    ot_curl *c;
    char url[64];
    got g;
} env;

static void env_up(env *e, const int *script, int n, uint32_t timeout_ms, uint32_t retries)
{
    memset(e, 0, sizeof *e);
    srv_start(&e->s, script, n);
    e->l = ot_loop_new(64);
    e->c = client(e->l, timeout_ms, retries);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d/_bulk", e->s.port);
}

static void env_down(env *e)
{
    ot_curl_free(e->c);
    srv_stop(&e->s);
    ot_loop_free(e->l);
}

static ot_curl_stats stats(const env *e)
{
    ot_curl_stats st;
    ot_curl_get_stats(e->c, &st);
    return st;
}

Test(curl, a_429_and_a_503_are_retried_with_backoff_until_a_success)
{
    env e;
    env_up(&e, (int[]){ 429, 503, 200 }, 3, 2000, 3);
    cr_assert(ot_curl_send(e.c, "POST", e.url, "application/x-ndjson", "{}\n", 3, on_done, &e.g));
    run_until(e.l, &e.g.done, 1);
    cr_expect_eq(e.g.done, 1, "the callback runs once, after the last attempt");
    cr_expect_eq(e.g.res.status, 200);
    cr_expect_eq(e.g.res.attempts, 3);
    cr_expect_str_eq(e.s.last_body, "{}\n", "the body is sent again on a retry");
    cr_expect_eq(stats(&e).retries, 2);
    env_down(&e);
}

Test(curl, gives_up_after_max_retries_with_the_last_status)
{
    env e;
    env_up(&e, (int[]){ 500, 502, 503 }, 3, 2000, 2);
    cr_assert(ot_curl_send(e.c, "GET", e.url, NULL, NULL, 0, on_done, &e.g));
    run_until(e.l, &e.g.done, 1);
    cr_expect_eq(e.g.res.status, 503);
    cr_expect_eq(e.g.res.attempts, 3);
    cr_expect_eq(e.g.res.curl_code, 0);
    env_down(&e);
}

Test(curl, a_4xx_other_than_429_is_not_retried)
{
    env e;
    env_up(&e, (int[]){ 409 }, 1, 2000, 3);
    cr_assert(ot_curl_send(e.c, "PUT", e.url, "application/json", "{}", 2, on_done, &e.g));
    run_until(e.l, &e.g.done, 1);
    cr_expect_eq(e.g.res.status, 409);
    cr_expect_eq(e.g.res.attempts, 1);
    env_down(&e);
}

Test(curl, a_silent_server_times_out_per_request_without_blocking_the_loop)
{
    env e;
    env_up(&e, (int[]){ 0 }, 1, 150, 0);
    uint64_t t0 = ot_now_us();
    cr_assert(ot_curl_send(e.c, "GET", e.url, NULL, NULL, 0, on_done, &e.g));
    run_until(e.l, &e.g.done, 1);
    uint64_t ms = (ot_now_us() - t0) / 1000;
    cr_expect_neq(e.g.res.curl_code, 0);
    cr_expect_eq(e.g.res.status, 0);
    cr_expect(e.g.error[0], "a reason is given");
    cr_expect(ms >= 140 && ms < 900, "timed out after %llu ms", (unsigned long long)ms);
    cr_expect_eq(stats(&e).failures, 1);
    env_down(&e);
}

Test(curl, a_refused_connection_is_retried_then_reported)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd); /* nobody listens there now */
    ot_loop *l = ot_loop_new(64);
    ot_curl *c = client(l, 1000, 2);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    got g = { 0 };
    cr_assert(ot_curl_send(c, "GET", url, NULL, NULL, 0, on_done, &g));
    run_until(l, &g.done, 1);
    cr_expect_eq(g.res.attempts, 3);
    cr_expect_neq(g.res.curl_code, 0);
    ot_curl_free(c);
    ot_loop_free(l);
}

Test(curl, a_cancelled_request_never_calls_back_and_free_cancels_the_rest)
{
    env e;
    env_up(&e, (int[]){ 0, 0 }, 2, 5000, 0);
    ot_curl_req *r = ot_curl_send(e.c, "GET", e.url, NULL, NULL, 0, on_done, &e.g);
    cr_assert(r);
    cr_assert(ot_curl_send(e.c, "GET", e.url, NULL, NULL, 0, on_done, &e.g));
    for (int i = 0; i < 5; i++)
        ot_loop_run_once(e.l, 10);
    ot_curl_cancel(r);
    for (int i = 0; i < 5; i++)
        ot_loop_run_once(e.l, 10);
    env_down(&e); /* frees the second, still waiting */
    cr_expect_eq(e.g.done, 0);
}

/* ---- against a real Elasticsearch (OT_TEST_ELASTICSEARCH_URL, e.g. from
 * `ES_PORT=19200 scripts/elasticsearch.sh start`; skipped without it) ---- */

static const char *es_url(void)
{
    const char *u = getenv("OT_TEST_ELASTICSEARCH_URL");
    if (!u || !*u)
        cr_skip_test("OT_TEST_ELASTICSEARCH_URL is not set");
    return u;
}

static void es(env *e, const char *method, const char *path, const char *ctype, const char *body, long want)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", es_url(), path);
    int before = e->g.done;
    cr_assert(ot_curl_send(e->c, method, url, ctype, body, body ? strlen(body) : 0, on_done, &e->g));
    run_until(e->l, &e->g.done, before + 1);
    cr_assert_eq(e->g.res.status, want, "%s %s: %ld %s", method, path, e->g.res.status, e->g.body);
}

Test(curl, elasticsearch_bulk_with_external_versions_over_one_connection)
{
    es_url();
    env e;
    memset(&e, 0, sizeof e);
    e.l = ot_loop_new(64);
    e.c = client(e.l, 10000, 2);
    char idx[64];
    snprintf(idx, sizeof idx, "/ot-curl-test-%d", (int)getpid());
    es(&e, "PUT", idx, "application/json",
       "{\"settings\":{\"number_of_replicas\":0},\"mappings\":{\"properties\":{\"orderId\":{\"type\":\"keyword\"},"
       "\"status\":{\"type\":\"keyword\"}}}}", 200);
    char path[128];
    snprintf(path, sizeof path, "%s/_bulk?refresh=true", idx);
    es(&e, "POST", path, "application/x-ndjson",
       "{\"index\":{\"_id\":\"o1\",\"version\":3,\"version_type\":\"external\"}}\n{\"orderId\":\"o1\",\"status\":\"PREPARED\"}\n",
       200);
    /* An older version inside a 200 bulk answer: the item says 409. */
    es(&e, "POST", path, "application/x-ndjson",
       "{\"index\":{\"_id\":\"o1\",\"version\":2,\"version_type\":\"external\"}}\n{\"orderId\":\"o1\",\"status\":\"ACCEPTED\"}\n",
       200);
    cr_expect(strstr(e.g.body, "\"errors\":true") != NULL, "%s", e.g.body);
    snprintf(path, sizeof path, "%s/_doc/o1", idx);
    es(&e, "GET", path, NULL, NULL, 200);
    cr_expect(strstr(e.g.body, "\"_version\":3") != NULL, "%s", e.g.body);
    es(&e, "DELETE", idx, NULL, NULL, 200);
    cr_expect_eq(stats(&e).connects, 1, "one keep-alive connection for every request");
    ot_curl_free(e.c);
    ot_loop_free(e.l);
}

/* ---- requests started from inside a completion callback ----
 * A keep-alive HTTP/1.1 server on a thread that serves many connections at
 * once (poll), answering every request 200; every close_every-th answer says
 * "Connection: close" and closes (0: never), so a chain of requests runs on a
 * reused connection, on a new one each time, or on a mix. */
typedef struct {
    int lfd, port, close_every, stop_fd[2];
    int served, conns;
    pthread_t th;
} ka_srv;

#define KA_CONNS 32

static void *ka_serve(void *arg)
{
    ka_srv *s = arg;
    struct pollfd p[KA_CONNS + 2];
    char (*buf)[4096] = calloc(KA_CONNS, sizeof *buf); /* 128 KiB: off the thread's stack */
    size_t have[KA_CONNS] = { 0 };
    int fds[KA_CONNS];
    for (int i = 0; i < KA_CONNS; i++)
        fds[i] = -1;
    for (;;) {
        p[0] = (struct pollfd){ .fd = s->stop_fd[0], .events = POLLIN };
        p[1] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
        for (int i = 0; i < KA_CONNS; i++)
            p[i + 2] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        if (poll(p, KA_CONNS + 2, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            int i = 0;
            while (i < KA_CONNS && fds[i] >= 0)
                i++;
            if (fd >= 0 && i < KA_CONNS) {
                fds[i] = fd;
                have[i] = 0;
                __atomic_add_fetch(&s->conns, 1, __ATOMIC_SEQ_CST);
            } else if (fd >= 0) {
                close(fd);
            }
        }
        for (int i = 0; i < KA_CONNS; i++) {
            if (fds[i] < 0 || !p[i + 2].revents)
                continue;
            ssize_t n = read(fds[i], buf[i] + have[i], sizeof buf[i] - have[i]);
            if (n <= 0) {
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            have[i] += (size_t)n;
            char *end;
            while ((end = memmem(buf[i], have[i], "\r\n\r\n", 4))) {
                size_t head = (size_t)(end - buf[i]) + 4, clen = 0;
                char *cl = memmem(buf[i], head, "Content-Length: ", 16);
                if (cl)
                    clen = strtoul(cl + 16, NULL, 10);
                if (have[i] < head + clen)
                    break;
                memmove(buf[i], buf[i] + head + clen, have[i] - head - clen);
                have[i] -= head + clen;
                int k = __atomic_add_fetch(&s->served, 1, __ATOMIC_SEQ_CST);
                bool last = s->close_every && k % s->close_every == 0;
                char resp[160];
                int rn = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n%s\r\nanswer-%02d",
                                  last ? "Connection: close\r\n" : "", k % 100);
                if (write(fds[i], resp, (size_t)rn) != rn || last) {
                    close(fds[i]);
                    fds[i] = -1;
                    break;
                }
            }
        }
    }
    for (int i = 0; i < KA_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(buf);
    return NULL;
}

static void ka_start(ka_srv *s, int close_every)
{
    memset(s, 0, sizeof *s);
    s->close_every = close_every;
    cr_assert_eq(pipe(s->stop_fd), 0);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->lfd, 64), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, ka_serve, s);
}

static void ka_stop(ka_srv *s)
{
    cr_assert_eq(write(s->stop_fd[1], "x", 1), 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->stop_fd[0]);
    close(s->stop_fd[1]);
}

/* Each callback starts the next requests: `fan` at once when the last of the
 * previous round finished, `rounds` times. */
typedef struct {
    ot_curl *c;
    char url[64];
    int fan, rounds, in_flight, done, bad, sent;
    long last_status;
} chain;

static const char *const chain_methods[] = { "DELETE", "GET", "POST", "DELETE", "HEAD", "PUT" };

static void chain_round(chain *ch);

static void chain_done(void *data, const ot_curl_result *r)
{
    chain *ch = data;
    ch->done++;
    ch->in_flight--;
    if (r->curl_code || r->status != 200) {
        ch->bad++;
        ch->last_status = r->curl_code ? -r->curl_code : r->status;
    }
    if (ch->in_flight == 0 && ch->rounds > 0)
        chain_round(ch);
}

static void chain_round(chain *ch)
{
    ch->rounds--;
    for (int i = 0; i < ch->fan; i++) {
        const char *m = chain_methods[ch->sent++ % OT_ARRAY_LEN(chain_methods)];
        bool body = !strcmp(m, "POST") || !strcmp(m, "PUT");
        cr_assert(ot_curl_send(ch->c, m, ch->url, body ? "application/json" : NULL, body ? "{\"q\":1}" : NULL,
                               body ? 7 : 0, chain_done, ch));
        ch->in_flight++;
    }
}

/* Runs `rounds` rounds of `fan` requests, each round started from the
 * callback of the previous one; a request that never calls back fails the
 * test at the deadline instead of hanging the suite. */
static void chain_run(int close_every, int fan, int rounds)
{
    ka_srv s;
    ka_start(&s, close_every);
    ot_loop *l = ot_loop_new(256);
    /* No retries and a timeout past the deadline: a lost request must show
     * as missing, not be papered over by a retry. */
    ot_curl *c = client(l, 30000, 0);
    chain ch = { .c = c, .fan = fan, .rounds = rounds };
    snprintf(ch.url, sizeof ch.url, "http://127.0.0.1:%d/ot-events-000001", s.port);
    chain_round(&ch);
    uint64_t deadline = ot_now_us() + 15 * 1000000u;
    while (ch.in_flight > 0 && ot_now_us() < deadline)
        ot_loop_run_once(l, 10);
    int want = fan * rounds;
    cr_expect_eq(ch.done, want, "%d of %d requests called back (close every %d, %d at once): the rest hang", ch.done,
                 want, close_every, fan);
    cr_expect_eq(ch.bad, 0, "%d failed, last %ld", ch.bad, ch.last_status);
    ot_curl_stats st;
    ot_curl_get_stats(c, &st);
    cr_expect_eq(st.in_flight, (size_t)ch.in_flight, "the client counts what is still waiting");
    ot_curl_free(c);
    ka_stop(&s);
    ot_loop_free(l);
}

Test(curl, one_request_at_a_time_from_the_callback_on_a_reused_connection, .timeout = 30)
{
    chain_run(0, 1, 500);
}

Test(curl, one_request_at_a_time_from_the_callback_on_a_new_connection_each, .timeout = 30)
{
    chain_run(1, 1, 500);
}

Test(curl, one_request_at_a_time_from_the_callback_on_reused_and_new_connections, .timeout = 30)
{
    chain_run(3, 1, 500);
}

Test(curl, eight_at_once_from_the_callback_on_reused_connections, .timeout = 30)
{
    chain_run(0, 8, 100);
}

Test(curl, eight_at_once_from_the_callback_on_reused_and_new_connections, .timeout = 30)
{
    chain_run(5, 8, 100);
}

Test(curl, two_at_once_from_the_callback_on_new_connections, .timeout = 30)
{
    chain_run(1, 2, 200);
}

/* The search lifecycle's pattern against the real node: the answer of an
 * index listing starts the DELETEs of several indices at once, from inside
 * its callback, over the connection the listing just used and new ones. */
typedef struct {
    env *e;
    char idx[64];
    int n, deleted, bad;
    long last_status;
    char last_body[256];
} es_purge;

static void purge_deleted(void *data, const ot_curl_result *r)
{
    es_purge *p = data;
    p->deleted++;
    if (r->status != 200) {
        p->bad++;
        p->last_status = r->curl_code ? -r->curl_code : r->status;
        snprintf(p->last_body, sizeof p->last_body, "%.*s", (int)r->body_len, r->body ? r->body : "");
    }
}

static void purge_listed(void *data, const ot_curl_result *r)
{
    es_purge *p = data;
    cr_assert_eq(r->status, 200, "%.*s", (int)r->body_len, r->body);
    for (int i = 0; i < p->n; i++) {
        char url[256];
        snprintf(url, sizeof url, "%s%s-%06d", es_url(), p->idx, i + 1);
        cr_assert(ot_curl_send(p->e->c, "DELETE", url, NULL, NULL, 0, purge_deleted, p));
    }
}

Test(curl, elasticsearch_deletes_started_together_from_a_listing_callback_all_complete, .timeout = 240)
{
    es_url();
    env e;
    memset(&e, 0, sizeof e);
    e.l = ot_loop_new(256);
    e.c = client(e.l, 60000, 0);
    for (int round = 0; round < 10; round++) {
        es_purge p = { .e = &e, .n = 1 + round % 4 };
        snprintf(p.idx, sizeof p.idx, "/ot-curl-purge-%d-%d", (int)getpid(), round);
        for (int i = 0; i < p.n; i++) {
            char path[128];
            snprintf(path, sizeof path, "%s-%06d", p.idx, i + 1);
            es(&e, "PUT", path, "application/json", "{\"settings\":{\"number_of_replicas\":0}}", 200);
        }
        char url[256];
        snprintf(url, sizeof url, "%s/_cat/indices%s-*?format=json&h=index,creation.date", es_url(), p.idx);
        cr_assert(ot_curl_send(e.c, "GET", url, NULL, NULL, 0, purge_listed, &p));
        uint64_t deadline = ot_now_us() + 30 * 1000000u;
        while (p.deleted < p.n && ot_now_us() < deadline)
            ot_loop_run_once(e.l, 10);
        cr_assert_eq(p.deleted, p.n, "round %d: %d of %d DELETEs called back", round, p.deleted, p.n);
        cr_expect_eq(p.bad, 0, "round %d: %ld %s", round, p.last_status, p.last_body);
    }
    ot_curl_free(e.c);
    ot_loop_free(e.l);
}

/* libcurl 7.88 marks the whole multi handle dead when the socket callback
 * returns -1: from then on it arms no timer and runs no transfer, so every
 * request in flight would never call back, and every later one fails at
 * once. A socket the loop cannot watch (here: a number past the loop's
 * max_fds) must fail only its own request, with a transport error. */
Test(curl, a_socket_the_loop_cannot_watch_fails_its_request_and_the_client_goes_on, .timeout = 30)
{
    ka_srv s;
    ka_start(&s, 0);
    ot_loop *l = ot_loop_new(64);
    /* A timeout well inside the deadline: a socket merely left unwatched
     * would time out twice and call back; a dead multi handle never does. */
    ot_curl *c = client(l, 1000, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", s.port);
    /* Take every fd number below 64, so curl's socket lands above. */
    int held[64], nheld = 0;
    for (int fd; nheld < 64 && (fd = dup(0)) >= 0;) {
        held[nheld++] = fd;
        if (fd >= 64)
            break;
    }
    got g = { 0 };
    cr_assert(ot_curl_send(c, "DELETE", url, NULL, NULL, 0, on_done, &g));
    uint64_t deadline = ot_now_us() + 4 * 1000000u;
    while (!g.done && ot_now_us() < deadline)
        ot_loop_run_once(l, 10);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    cr_assert_eq(g.done, 1, "the request called back");
    cr_expect_neq(g.res.curl_code, 0);
    cr_expect_eq(g.res.attempts, 2, "retried like any transport failure");
    cr_expect(strstr(g.error, "watch") != NULL, "%s", g.error);
    /* The client still works once the loop can watch its sockets. */
    got g2 = { 0 };
    cr_assert(ot_curl_send(c, "GET", url, NULL, NULL, 0, on_done, &g2));
    deadline = ot_now_us() + 3 * 1000000u;
    while (!g2.done && ot_now_us() < deadline)
        ot_loop_run_once(l, 10);
    cr_assert_eq(g2.done, 1, "a later request called back");
    cr_expect_eq(g2.res.status, 200, "%s", g2.error);
    ot_curl_free(c);
    ka_stop(&s);
    ot_loop_free(l);
}
