/* adapters/curl: libcurl multi on the loop, against a tiny scripted HTTP/1.1
 * server on a thread (real sockets, real curl): keep-alive reuse, retries with
 * backoff on 429/5xx, giving up after max_retries, per-request timeouts, a
 * refused connection, and cancellation. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
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
