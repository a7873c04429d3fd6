/* A worker: its own SO_REUSEPORT listener, loop and connections. SIGTERM
 * stops accepting, lets in-flight requests finish (bounded), then exits. */
#include "ot/cmd/worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ot/cmd/app.h"
#include "ot/http/http.h"
#include "ot/event/io.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

int ot_listen_socket(const char *host, int port, int backlog)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return OT_ERR;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        errno = e;
        return OT_ERR;
    }
    freeaddrinfo(res);
    return fd;
}

/* Over the connection limit we still owe the client an answer: a canned 503,
 * written without blocking (a full socket buffer just loses it), then close. */
static void reject_conn(int fd)
{
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Retry-After: 1\r\nConnection: close\r\nContent-Length: 78\r\n\r\n"
                               "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"connection limit reached\"}}";
    ssize_t n = write(fd, resp, sizeof(resp) - 1);
    (void)n;
    close(fd);
    ot_metrics_inc(OT_C_CONNS_REJECTED, 1);
}

static void on_accept(ot_loop *loop, int fd, unsigned ev, void *data)
{
    ot_worker *w = data;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                ot_logf(OT_LOG_WARN, "accept: out of file descriptors");
            return; /* EAGAIN: drained (edge-triggered) */
        }
        if (w->http.nconns >= w->http.max_conns) {
            reject_conn(c);
            continue;
        }
        int one = 1, lowat = 16384;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* Keep unsent output in our buffers, where the per-connection cap and
         * the write deadline see it, instead of letting the kernel's
         * autotuned send buffer (megabytes on loopback) hide a slow reader:
         * writes now block once 16 KiB sit unsent (issue 10, finding 7). */
        setsockopt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
        ot_metrics_inc(OT_C_CONNS_ACCEPTED, 1);
        ot_http_conn_new(&w->http, c, (struct sockaddr *)&ss, sl);
    }
}

static void maybe_finish_drain(ot_worker *w)
{
    if (w->draining && w->http.nconns == 0 && ot_services_drained(&w->services))
        ot_loop_stop(w->loop);
}

static void on_http_closed(void *data) { maybe_finish_drain(data); }

static void on_drain_timeout(ot_loop *loop, ot_timer *t)
{
    ot_worker *w = t->data;
    ot_logf(OT_LOG_WARN, "shutdown timeout: %d connections still open, exiting", w->http.nconns);
    ot_loop_stop(loop);
}

static void on_term(ot_loop *loop, int signo, void *data)
{
    ot_worker *w = data;
    if (w->draining)
        return;
    w->draining = true;
    if (getppid() != w->master)
        ot_logf(OT_LOG_WARN, "the master is gone: draining (signal %d)", signo);
    else
        ot_logf(OT_LOG_INFO, "draining (signal %d)", signo);
    if (w->listen_fd >= 0) {
        ot_loop_del_fd(loop, w->listen_fd);
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    ot_timer_init(&w->drain_timer, on_drain_timeout, w);
    ot_timer_start(loop, &w->drain_timer, w->cfg->shutdown_timeout_ms);
    ot_http_drain(&w->http);
    ot_services_drain(&w->services);
    maybe_finish_drain(w);
}

/* Gauges are sampled, not pushed: adapters stay free of metrics. */
#define OT_SAMPLE_MS 1000
static void on_sample(ot_loop *loop, ot_timer *t)
{
    ot_worker *w = t->data;
    ot_services_sample(&w->services);
    ot_timer_start(loop, t, OT_SAMPLE_MS);
}

/* SIGHUP: reload the certificate and key in place. New handshakes use the
 * new context; open connections keep the one they started with (their SSL
 * holds a reference), so nothing is dropped. A bad file keeps the old one. */
static void on_hup(ot_loop *loop, int signo, void *data)
{
    ot_worker *w = data;
    if (!w->http.tls) {
        ot_logf(OT_LOG_INFO, "SIGHUP: nothing to reload (no TLS)");
        return;
    }
    SSL_CTX *fresh = ot_tls_server_ctx(w->cfg->tls_cert, w->cfg->tls_key);
    if (!fresh) {
        ot_logf(OT_LOG_ERROR, "SIGHUP: TLS reload failed; keeping the current certificate");
        return;
    }
    ot_tls_ctx_free(w->http.tls);
    w->http.tls = fresh;
    ot_logf(OT_LOG_INFO, "SIGHUP: TLS certificate and key reloaded");
}

/* Access lines of one loop round are written together at its end (log.h). */
static ot_defer log_flush_defer;
static void on_log_flush(ot_loop *loop, ot_defer *d) { ot_log_flush(); }
static void on_log_wake(void *data) { ot_defer_queue(data, &log_flush_defer); }

int ot_worker_main(const ot_config *cfg, int idx, pid_t master)
{
    ot_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return 1;
    w->cfg = cfg;
    w->idx = idx;
    w->master = master;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    int maxfd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        maxfd = (int)rl.rlim_cur;
    /* Leave head-room under RLIMIT_NOFILE for database, Redis, log and
     * listener fds, so hitting the limit gives a 503, never EMFILE. */
    w->http.max_conns = cfg->max_conns > 0 ? cfg->max_conns : maxfd - 64;
    if (w->http.max_conns > maxfd - 64)
        w->http.max_conns = maxfd - 64;
    ot_metrics_set(OT_G_CONNS_MAX, w->http.max_conns);
    w->loop = ot_loop_new(maxfd + 16);
    if (!w->loop)
        return 1;
    w->listen_fd = -1;
    /* First, before TLS, the database pool or any library can start a thread
     * (the scrypt pool, curl's resolver): a thread inherits the mask it was
     * created under, and one without SIGTERM blocked would take the signal
     * and kill the process instead of the signalfd starting a drain. */
    if (ot_loop_on_signal(w->loop, SIGTERM, on_term, w) < 0 || ot_loop_on_signal(w->loop, SIGINT, on_term, w) < 0 ||
        ot_loop_on_signal(w->loop, SIGHUP, on_hup, w) < 0) {
        ot_logf(OT_LOG_ERROR, "signal set-up failed: %s", strerror(errno));
        return 1;
    }
    ot_defer_init(&log_flush_defer, on_log_flush, NULL);
    ot_log_set_batching(on_log_wake, w->loop);
    if (cfg->tls_cert && cfg->tls_key) {
        w->http.tls = ot_tls_server_ctx(cfg->tls_cert, cfg->tls_key);
        if (!w->http.tls)
            return 1;
    }
    w->listen_fd = ot_listen_socket(cfg->listen_host, cfg->listen_port, cfg->backlog);
    if (w->listen_fd < 0) {
        ot_logf(OT_LOG_ERROR, "listen on %s:%d failed: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        return 1;
    }
    w->http.loop = w->loop;
    w->http.cfg = cfg;
    w->http.on_closed = on_http_closed;
    w->http.data = w;
    ot_router_init(&w->http.router);
    if (ot_app_start(w) < 0)
        return 1;
    ot_timer_init(&w->sample_timer, on_sample, w);
    ot_timer_start(w->loop, &w->sample_timer, 10);
    if (ot_loop_add_fd(w->loop, w->listen_fd, OT_READABLE | OT_EDGE, on_accept, w) < 0)
        return 1;
    ot_logf(OT_LOG_INFO, "worker listening on %s:%d (max_conns %d%s)", cfg->listen_host, cfg->listen_port, w->http.max_conns,
            w->http.tls ? ", TLS" : "");
    ot_loop_run(w->loop);
    ot_timer_stop(w->loop, &w->sample_timer);
    ot_app_stop(w);
    ot_logf(OT_LOG_INFO, "worker exiting"); /* flushes what is batched, then writes */
    ot_log_set_batching(NULL, NULL);
    return 0;
}
