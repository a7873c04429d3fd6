/* The reactor. epoll in one place; every other module sees only loop.h. */
#include "ot/event/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    ot_fd_cb *cb;
    void *data;
    unsigned mask;
    uint32_t gen; /* 0 = unregistered */
} ot_fd_slot;

typedef struct {
    ot_signal_cb *cb;
    void *data;
} ot_sig_slot;

typedef struct ot_job {
    struct ot_job *next;
    ot_work_fn *work;
    ot_work_done_fn *done;
    void *data;
} ot_job;

#define OT_WORK_QUEUE_MAX 1024

struct ot_loop {
    int epfd;
    int max_fds;
    ot_fd_slot *fds;
    uint32_t next_gen;
    bool stop;
    uint64_t now_ms;

    ot_timer **heap; /* 1-based binary min-heap on (when_ms, seq) */
    uint64_t timer_seq; /* next ot_timer.seq */
    size_t heap_len, heap_cap;

    ot_defer *defer_head, *defer_tail;
    ot_defer *defer_round_last; /* last callback of the round being run */

    int sigfd;
    sigset_t sigmask;
    ot_sig_slot sigs[65];

    /* Thread pool: jobs go in under `mu`; finished jobs come back through the
     * `done` list and wake the loop via an eventfd. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ot_job *todo_head, *todo_tail, *done_head;
    size_t jobs_queued;
    int pool_size, pool_started;
    pthread_t *threads;
    int wakefd;
    bool pool_stop;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ot_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t ot_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t ot_loop_now_ms(ot_loop *loop) { return loop->now_ms; }

ot_loop *ot_loop_new(int max_fds)
{
    ot_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->fds = calloc((size_t)max_fds, sizeof(*l->fds));
    if (l->epfd < 0 || !l->fds) {
        if (l->epfd >= 0)
            close(l->epfd);
        free(l->fds);
        free(l);
        return NULL;
    }
    l->max_fds = max_fds;
    l->next_gen = 1;
    l->now_ms = mono_ms();
    l->sigfd = -1;
    l->wakefd = -1;
    l->pool_size = 2;
    sigemptyset(&l->sigmask);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    return l;
}

static void pool_shutdown(ot_loop *l)
{
    if (!l->pool_started)
        return;
    pthread_mutex_lock(&l->mu);
    l->pool_stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->pool_started; i++)
        pthread_join(l->threads[i], NULL);
    free(l->threads);
    for (ot_job *j = l->todo_head, *n; j; j = n) {
        n = j->next;
        free(j);
    }
    for (ot_job *j = l->done_head, *n; j; j = n) {
        n = j->next;
        free(j);
    }
    l->pool_started = 0;
}

void ot_loop_free(ot_loop *l)
{
    if (!l)
        return;
    pool_shutdown(l);
    if (l->wakefd >= 0)
        close(l->wakefd);
    if (l->sigfd >= 0)
        close(l->sigfd);
    close(l->epfd);
    free(l->fds);
    free(l->heap);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

static uint32_t to_epoll(unsigned mask)
{
    /* EPOLLRDHUP only with reading: it is a read-side condition, level
     * unless EPOLLET, and a writer waiting on a full buffer cannot clear it
     * (it woke such a watcher on every pass). EPOLLHUP/EPOLLERR come always. */
    uint32_t ev = 0;
    if (mask & OT_READABLE)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (mask & OT_WRITABLE)
        ev |= EPOLLOUT;
    if (mask & OT_EDGE)
        ev |= EPOLLET;
    return ev;
}

int ot_loop_add_fd(ot_loop *l, int fd, unsigned mask, ot_fd_cb *cb, void *data)
{
    if (fd < 0 || fd >= l->max_fds)
        return OT_ERR;
    ot_fd_slot *s = &l->fds[fd];
    bool existed = s->gen != 0;
    uint32_t gen = l->next_gen++;
    if (l->next_gen == 0)
        l->next_gen = 1;
    struct epoll_event ev = { .events = to_epoll(mask), .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd };
    int rc = epoll_ctl(l->epfd, existed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    /* A library may close an fd and reopen the same number without telling
     * us (libpq during connection set-up): the kernel dropped the old
     * registration, so MOD says ENOENT; conversely ADD may find one. */
    if (rc < 0 && existed && errno == ENOENT)
        rc = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (rc < 0 && !existed && errno == EEXIST)
        rc = epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc < 0)
        return OT_ERR;
    s->cb = cb;
    s->data = data;
    s->mask = mask;
    s->gen = gen;
    return 0;
}

int ot_loop_mod_fd(ot_loop *l, int fd, unsigned mask)
{
    if (fd < 0 || fd >= l->max_fds || l->fds[fd].gen == 0)
        return OT_ERR;
    ot_fd_slot *s = &l->fds[fd];
    if (s->mask == mask)
        return 0;
    struct epoll_event ev = { .events = to_epoll(mask), .data.u64 = ((uint64_t)s->gen << 32) | (uint32_t)fd };
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return OT_ERR;
    s->mask = mask;
    return 0;
}

void ot_loop_del_fd(ot_loop *l, int fd)
{
    if (fd < 0 || fd >= l->max_fds || l->fds[fd].gen == 0)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd] = (ot_fd_slot){ 0 };
}

unsigned ot_loop_fd_mask(ot_loop *l, int fd)
{
    if (fd < 0 || fd >= l->max_fds)
        return 0;
    return l->fds[fd].mask;
}

/* ---- timers: binary min-heap, 1-based, each timer knows its slot ---- */

static void heap_set(ot_loop *l, size_t i, ot_timer *t)
{
    l->heap[i] = t;
    t->heap_idx = i;
}

static bool timer_before(const ot_timer *a, const ot_timer *b)
{
    return a->when_ms < b->when_ms || (a->when_ms == b->when_ms && a->seq < b->seq);
}

static void heap_up(ot_loop *l, size_t i)
{
    ot_timer *t = l->heap[i];
    while (i > 1 && timer_before(t, l->heap[i / 2])) {
        heap_set(l, i, l->heap[i / 2]);
        i /= 2;
    }
    heap_set(l, i, t);
}

static void heap_down(ot_loop *l, size_t i)
{
    ot_timer *t = l->heap[i];
    for (;;) {
        size_t c = i * 2;
        if (c > l->heap_len)
            break;
        if (c + 1 <= l->heap_len && timer_before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!timer_before(l->heap[c], t))
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void ot_timer_init(ot_timer *t, ot_timer_cb *cb, void *data)
{
    t->when_ms = 0;
    t->heap_idx = 0;
    t->cb = cb;
    t->data = data;
}

void ot_timer_stop(ot_loop *l, ot_timer *t)
{
    size_t i = t->heap_idx;
    if (i == 0)
        return;
    ot_timer *last = l->heap[l->heap_len--];
    t->heap_idx = 0;
    if (last == t)
        return;
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, last->heap_idx);
}

void ot_timer_start(ot_loop *l, ot_timer *t, uint64_t after_ms)
{
    ot_timer_stop(l, t);
    if (l->heap_len + 1 >= l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        ot_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h)
            abort(); /* a timer we cannot arm would silently hang a connection forever */
        l->heap = h;
        l->heap_cap = cap;
    }
    t->when_ms = l->now_ms + after_ms;
    t->seq = l->timer_seq++;
    l->heap[++l->heap_len] = t;
    t->heap_idx = l->heap_len;
    heap_up(l, l->heap_len);
}

/* Runs the timers due when the pass starts. One armed during the pass has a
 * seq at or past `first_new` and when_ms >= now_ms, so it sorts after every
 * timer due before the pass: stopping at it leaves it for the next pass. */
static void run_timers(ot_loop *l)
{
    uint64_t first_new = l->timer_seq;
    while (l->heap_len > 0 && l->heap[1]->when_ms <= l->now_ms && l->heap[1]->seq < first_new) {
        ot_timer *t = l->heap[1];
        ot_timer_stop(l, t);
        t->cb(l, t);
    }
}

/* ---- deferred callbacks ---- */

void ot_defer_init(ot_defer *d, ot_defer_cb *cb, void *data)
{
    d->next = NULL;
    d->queued = false;
    d->cb = cb;
    d->data = data;
}

void ot_defer_queue(ot_loop *l, ot_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    if (l->defer_tail)
        l->defer_tail->next = d;
    else
        l->defer_head = d;
    l->defer_tail = d;
}

void ot_defer_cancel(ot_loop *l, ot_defer *d)
{
    if (!d->queued)
        return;
    ot_defer **pp = &l->defer_head, *prev = NULL;
    while (*pp && *pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = d->next;
        if (l->defer_tail == d)
            l->defer_tail = prev;
        if (l->defer_round_last == d)
            l->defer_round_last = prev;
    }
    d->queued = false;
    d->next = NULL;
}

static void run_defers(ot_loop *l)
{
    /* Callbacks queued while running wait for the next round, so a callback
     * that re-queues itself cannot starve I/O. Pop one at a time so a callback
     * may cancel a later one safely. */
    l->defer_round_last = l->defer_tail;
    while (l->defer_round_last && l->defer_head) {
        ot_defer *d = l->defer_head;
        bool final = d == l->defer_round_last;
        l->defer_head = d->next;
        if (!l->defer_head)
            l->defer_tail = NULL;
        d->queued = false;
        d->next = NULL;
        if (final)
            l->defer_round_last = NULL;
        d->cb(l, d);
    }
}

/* ---- signals ---- */

static void on_signalfd(ot_loop *l, int fd, unsigned ev, void *data)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        int signo = (int)si.ssi_signo;
        if (signo > 0 && signo < 65 && l->sigs[signo].cb)
            l->sigs[signo].cb(l, signo, l->sigs[signo].data);
    }
}

int ot_loop_on_signal(ot_loop *l, int signo, ot_signal_cb *cb, void *data)
{
    if (signo <= 0 || signo >= 65)
        return OT_ERR;
    sigaddset(&l->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
        return OT_ERR;
    int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return OT_ERR;
    if (l->sigfd < 0) {
        l->sigfd = fd;
        if (ot_loop_add_fd(l, fd, OT_READABLE | OT_EDGE, on_signalfd, NULL) < 0)
            return OT_ERR;
    }
    l->sigs[signo] = (ot_sig_slot){ cb, data };
    return 0;
}

/* ---- thread pool ---- */

static void *pool_main(void *arg)
{
    ot_loop *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->todo_head && !l->pool_stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->pool_stop)
            break;
        ot_job *j = l->todo_head;
        l->todo_head = j->next;
        if (!l->todo_head)
            l->todo_tail = NULL;
        pthread_mutex_unlock(&l->mu);
        j->work(j->data);
        pthread_mutex_lock(&l->mu);
        j->next = l->done_head;
        l->done_head = j;
        uint64_t one = 1;
        if (write(l->wakefd, &one, sizeof(one)) < 0) {
            /* eventfd counter saturation is impossible at our queue bound */
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void on_wake(ot_loop *l, int fd, unsigned ev, void *data)
{
    uint64_t n;
    while (read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
    }
    pthread_mutex_lock(&l->mu);
    ot_job *j = l->done_head;
    l->done_head = NULL;
    pthread_mutex_unlock(&l->mu);
    /* The list is LIFO; order among independent jobs does not matter. */
    while (j) {
        ot_job *n2 = j->next;
        l->jobs_queued--;
        j->done(l, j->data);
        free(j);
        j = n2;
    }
}

void ot_loop_set_pool_size(ot_loop *l, int threads)
{
    if (!l->pool_started && threads > 0)
        l->pool_size = threads;
}

int ot_loop_queue_work(ot_loop *l, ot_work_fn *work, ot_work_done_fn *done, void *data)
{
    if (l->jobs_queued >= OT_WORK_QUEUE_MAX)
        return OT_ERR;
    if (!l->pool_started) {
        l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->wakefd < 0 || ot_loop_add_fd(l, l->wakefd, OT_READABLE | OT_EDGE, on_wake, NULL) < 0)
            return OT_ERR;
        l->threads = calloc((size_t)l->pool_size, sizeof(pthread_t));
        if (!l->threads)
            return OT_ERR;
        /* Pool threads never take a signal: the loop thread reads them from
         * the signalfd, and a signal handled on a pool thread would be lost
         * to it. A new thread inherits its creator's mask. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        for (int i = 0; i < l->pool_size; i++) {
            if (pthread_create(&l->threads[i], NULL, pool_main, l) != 0)
                break;
            l->pool_started++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (l->pool_started == 0)
            return OT_ERR;
    }
    ot_job *j = malloc(sizeof(*j));
    if (!j)
        return OT_ERR;
    *j = (ot_job){ NULL, work, done, data };
    pthread_mutex_lock(&l->mu);
    if (l->todo_tail)
        l->todo_tail->next = j;
    else
        l->todo_head = j;
    l->todo_tail = j;
    l->jobs_queued++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* ---- run ---- */

#define OT_MAX_EVENTS 256

int ot_loop_run_once(ot_loop *l, int timeout_ms)
{
    struct epoll_event evs[OT_MAX_EVENTS];
    int wait = timeout_ms;
    if (l->defer_head) {
        wait = 0;
    } else if (l->heap_len > 0) {
        uint64_t when = l->heap[1]->when_ms;
        int until = when <= l->now_ms ? 0 : (int)(when - l->now_ms);
        if (wait < 0 || until < wait)
            wait = until;
    }
    int n = epoll_wait(l->epfd, evs, OT_MAX_EVENTS, wait);
    l->now_ms = mono_ms();
    if (n < 0 && errno != EINTR)
        return OT_ERR;
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
        ot_fd_slot *s = &l->fds[fd];
        /* A callback earlier in this batch may have closed this fd and a new
         * registration may reuse the number: the generation tells them apart. */
        if (s->gen != gen || !s->cb)
            continue;
        unsigned ev = 0;
        if (evs[i].events & EPOLLIN)
            ev |= OT_READABLE;
        if (evs[i].events & EPOLLOUT)
            ev |= OT_WRITABLE;
        if (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            ev |= OT_HANGUP;
        s->cb(l, fd, ev, s->data);
    }
    run_timers(l);
    run_defers(l);
    return n < 0 ? 0 : n;
}

int ot_loop_run(ot_loop *l)
{
    l->stop = false;
    while (!l->stop) {
        if (ot_loop_run_once(l, -1) < 0)
            return OT_ERR;
    }
    return 0;
}

void ot_loop_stop(ot_loop *l) { l->stop = true; }
