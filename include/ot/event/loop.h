/* The reactor: one epoll loop per worker process, a timer heap, signals via
 * signalfd, deferred callbacks and a small thread pool for CPU-bound work
 * (password KDFs) that must not stall the loop.
 *
 * Everything else (HTTP, WebSocket, libpq, hiredis, librdkafka, curl multi) is a
 * client of these few verbs. Async libraries plug in the way hiredis adapters
 * do: they register their fds with the events they want and arm a timer. */
#ifndef OT_LOOP_H
#define OT_LOOP_H

#include "ot/core/common.h"

typedef struct ot_loop ot_loop;

/* Event mask bits. OT_EDGE asks for edge-triggered delivery: use it only for
 * fds you drain until EAGAIN every time (our sockets); third-party library fds
 * should stay level-triggered (a missed edge there is a silent stall). */
enum {
    OT_READABLE = 1u << 0,
    OT_WRITABLE = 1u << 1,
    OT_HANGUP = 1u << 2, /* EPOLLERR / EPOLLHUP / EPOLLRDHUP: delivered, never requested */
    OT_EDGE = 1u << 3,
};

typedef void ot_fd_cb(ot_loop *loop, int fd, unsigned events, void *data);

/* Timers are embedded in their owner (no allocation to arm one) and kept in a
 * binary heap, so arming/disarming is O(log n) and nothing scans idle
 * connections. A timer fires once; re-arm it from its callback if needed: a
 * timer armed while timers run (even for 0 ms) waits for the next pass, after
 * I/O is polled, so a library asking for 0 ms again and again cannot starve
 * the loop. */
typedef struct ot_timer ot_timer;
typedef void ot_timer_cb(ot_loop *loop, ot_timer *t);
struct ot_timer {
    uint64_t when_ms;     /* absolute, ot_loop_now_ms() clock */
    size_t heap_idx;      /* 0 = not armed; otherwise 1-based index in the heap */
    uint64_t seq;         /* arming order: ties on when_ms break by it */
    ot_timer_cb *cb;
    void *data;
};

/* Deferred callbacks run after the current batch of I/O events, before the
 * loop sleeps again. Embedded like timers; deferring an already-queued one is a
 * no-op. Use them to free closed objects safely (a later event in the same
 * epoll batch may still name them) and to complete work without recursion. */
typedef struct ot_defer ot_defer;
typedef void ot_defer_cb(ot_loop *loop, ot_defer *d);
struct ot_defer {
    ot_defer *next;
    bool queued;
    ot_defer_cb *cb;
    void *data;
};

typedef void ot_signal_cb(ot_loop *loop, int signo, void *data);

/* CPU work run on a pool thread; `done` runs on the loop thread afterwards.
 * `work` must not touch loop state. */
typedef void ot_work_fn(void *data);
typedef void ot_work_done_fn(ot_loop *loop, void *data);

/* Creates a loop able to watch fds below `max_fds`. */
ot_loop *ot_loop_new(int max_fds);
void ot_loop_free(ot_loop *loop);

/* Registers or re-registers `fd` (mask of OT_READABLE|OT_WRITABLE|OT_EDGE).
 * Each registration gets a fresh generation tag, so an event queued for a
 * previous user of the same fd number is dropped, never misdelivered. */
int ot_loop_add_fd(ot_loop *loop, int fd, unsigned mask, ot_fd_cb *cb, void *data);
/* Changes the wanted events of a registered fd, keeping its callback. */
int ot_loop_mod_fd(ot_loop *loop, int fd, unsigned mask);
/* Unregisters; call before close(fd). Safe if not registered. */
void ot_loop_del_fd(ot_loop *loop, int fd);
unsigned ot_loop_fd_mask(ot_loop *loop, int fd);

void ot_timer_init(ot_timer *t, ot_timer_cb *cb, void *data);
void ot_timer_start(ot_loop *loop, ot_timer *t, uint64_t after_ms);
void ot_timer_stop(ot_loop *loop, ot_timer *t);
static inline bool ot_timer_active(const ot_timer *t) { return t->heap_idx != 0; }

void ot_defer_init(ot_defer *d, ot_defer_cb *cb, void *data);
void ot_defer_queue(ot_loop *loop, ot_defer *d);
void ot_defer_cancel(ot_loop *loop, ot_defer *d);

/* Blocks `signo` in the process and delivers it through a signalfd. */
int ot_loop_on_signal(ot_loop *loop, int signo, ot_signal_cb *cb, void *data);

/* Runs `work(data)` on the pool (started lazily, `threads` set by
 * ot_loop_set_pool_size, default 2), then `done(loop, data)` on the loop.
 * Returns OT_ERR if the queue is full (limit: 1024 jobs). */
int ot_loop_queue_work(ot_loop *loop, ot_work_fn *work, ot_work_done_fn *done, void *data);
void ot_loop_set_pool_size(ot_loop *loop, int threads);

/* Monotonic milliseconds, cached per loop iteration (refreshed after each wait). */
uint64_t ot_loop_now_ms(ot_loop *loop);
/* Fresh monotonic microseconds (not cached), for latency measurement. */
uint64_t ot_now_us(void);
/* Wall clock, microseconds since the Unix epoch. */
int64_t ot_wall_us(void);

/* Runs until ot_loop_stop. Returns 0. */
int ot_loop_run(ot_loop *loop);
void ot_loop_stop(ot_loop *loop);
/* One iteration, waiting at most `timeout_ms` (-1: until the next timer). For tests. */
int ot_loop_run_once(ot_loop *loop, int timeout_ms);

#endif
