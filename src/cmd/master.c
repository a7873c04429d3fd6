#include "ot/cmd/master.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ot/cmd/app.h"
#include "ot/core/log.h"
#include "ot/event/backoff.h"
#include "ot/event/loop.h"
#include "ot/core/metrics.h"
#include "ot/cmd/worker.h"

/* A worker that dies this soon after start is crash-looping: back off. */
#define OT_CRASH_WINDOW_MS 2000
#define OT_RESTART_MAX_MS 5000

typedef struct {
    pid_t pid;
    uint64_t started_ms;
    ot_backoff backoff; /* crash-loop restarts: 100 ms doubling to OT_RESTART_MAX_MS */
    ot_timer restart;
} ot_slot;

typedef struct {
    const ot_config *cfg;
    ot_loop *loop;
    ot_slot *slots;
    int n;
    bool stopping;
    ot_timer kill_timer;
} ot_master;

static ot_master *g_master;

static void spawn(ot_master *m, int i)
{
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        ot_logf(OT_LOG_ERROR, "fork failed: %s", strerror(errno));
        ot_timer_start(m->loop, &m->slots[i].restart, 1000);
        return;
    }
    if (pid == 0) {
        /* The child starts clean: its own loop, no inherited signal mask. */
        ot_loop_free(m->loop);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        ot_log_set_worker(i);
        ot_metrics_worker(i);
        /* A master killed without its SIGTERM round (SIGKILL, the OOM killer)
         * must not leave workers on the port: the next server would share it
         * with them through SO_REUSEPORT. The kernel drains this one then;
         * a master gone before the prctl took effect is seen by getppid(). */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master)
            _exit(1);
        _exit(ot_worker_main(m->cfg, i, master));
    }
    m->slots[i].pid = pid;
    m->slots[i].started_ms = ot_loop_now_ms(m->loop);
}

static void on_restart(ot_loop *loop, ot_timer *t)
{
    ot_master *m = g_master;
    int i = (int)(intptr_t)t->data;
    if (!m->stopping)
        spawn(m, i);
}

static bool all_gone(ot_master *m)
{
    for (int i = 0; i < m->n; i++)
        if (m->slots[i].pid > 0)
            return false;
    return true;
}

static void on_child(ot_loop *loop, int signo, void *data)
{
    ot_master *m = data;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < m->n; i++) {
            ot_slot *s = &m->slots[i];
            if (s->pid != pid)
                continue;
            s->pid = 0;
            if (m->stopping)
                break;
            uint64_t lived = ot_loop_now_ms(loop) - s->started_ms;
            uint32_t delay = 0; /* a worker that ran a while is replaced at once */
            if (lived < OT_CRASH_WINDOW_MS)
                delay = ot_backoff_next(&s->backoff);
            else
                ot_backoff_reset(&s->backoff);
            if (WIFSIGNALED(status))
                ot_logf(OT_LOG_ERROR, "worker %d (pid %d) killed by signal %d; restarting in %u ms", i, (int)pid,
                        WTERMSIG(status), delay);
            else
                ot_logf(OT_LOG_WARN, "worker %d (pid %d) exited with %d; restarting in %u ms", i, (int)pid,
                        WEXITSTATUS(status), delay);
            ot_timer_start(loop, &s->restart, delay);
            break;
        }
    }
    if (m->stopping && all_gone(m))
        ot_loop_stop(loop);
}

static void on_kill_timeout(ot_loop *loop, ot_timer *t)
{
    ot_master *m = t->data;
    for (int i = 0; i < m->n; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, SIGKILL);
}

static void on_term(ot_loop *loop, int signo, void *data)
{
    ot_master *m = data;
    if (m->stopping)
        return;
    m->stopping = true;
    ot_logf(OT_LOG_INFO, "shutting down on signal %d", signo);
    for (int i = 0; i < m->n; i++) {
        ot_timer_stop(loop, &m->slots[i].restart);
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, SIGTERM);
    }
    /* Workers bound their own drain; this is the backstop. */
    ot_timer_start(loop, &m->kill_timer, m->cfg->shutdown_timeout_ms + 2000);
    if (all_gone(m))
        ot_loop_stop(loop);
}

static void on_hup(ot_loop *loop, int signo, void *data)
{
    ot_master *m = data;
    /* Workers reload their TLS files in place: restarting them instead would
     * close every listener at once and refuse connections meanwhile. */
    ot_logf(OT_LOG_INFO, "SIGHUP: asking workers to reload");
    for (int i = 0; i < m->n; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, SIGHUP);
}

int ot_master_main(const ot_config *cfg)
{
    /* Fail fast on a bad address instead of crash-looping workers. */
    int probe = ot_listen_socket(cfg->listen_host, cfg->listen_port, 1);
    if (probe < 0) {
        ot_logf(OT_LOG_ERROR, "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        return 1;
    }
    close(probe);

    ot_router rt;
    ot_router_init(&rt);
    ot_app_routes(&rt, NULL, NULL);
    const char *names[OT_MAX_ROUTES];
    for (int i = 0; i < rt.n; i++)
        names[i] = rt.routes[i].name;
    int n = cfg->workers > 0 ? cfg->workers : 1;
    if (ot_metrics_init(n, names, rt.n) < 0) {
        ot_logf(OT_LOG_ERROR, "metrics shared memory setup failed");
        return 1;
    }

    ot_master m = { .cfg = cfg, .n = n };
    g_master = &m;
    m.loop = ot_loop_new(64);
    m.slots = calloc((size_t)n, sizeof(*m.slots));
    if (!m.loop || !m.slots)
        return 1;
    for (int i = 0; i < n; i++) {
        ot_timer_init(&m.slots[i].restart, on_restart, (void *)(intptr_t)i);
        ot_backoff_init(&m.slots[i].backoff, 100, OT_RESTART_MAX_MS);
    }
    ot_timer_init(&m.kill_timer, on_kill_timeout, &m);
    ot_loop_on_signal(m.loop, SIGCHLD, on_child, &m);
    ot_loop_on_signal(m.loop, SIGTERM, on_term, &m);
    ot_loop_on_signal(m.loop, SIGINT, on_term, &m);
    ot_loop_on_signal(m.loop, SIGHUP, on_hup, &m);
    ot_logf(OT_LOG_INFO, "master pid %d starting %d workers on %s:%d", (int)getpid(), n, cfg->listen_host,
            cfg->listen_port);
    for (int i = 0; i < n; i++)
        spawn(&m, i);
    ot_loop_run(m.loop);
    ot_logf(OT_LOG_INFO, "master exiting");
    ot_loop_free(m.loop);
    free(m.slots);
    return 0;
}
