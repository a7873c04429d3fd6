/* The adapter kit (src/event/backoff.c, watch.c, link.c, service.c): policy
 * every library adapter shares, tested on a real loop with socketpairs. */
#include <criterion/criterion.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ot/event/backoff.h"
#include "ot/event/link.h"
#include "ot/event/service.h"
#include "ot/event/watch.h"

/* ---- backoff ---- */

Test(backoff, doubles_with_jitter_in_half_to_full_step_and_caps)
{
    ot_backoff b;
    ot_backoff_init(&b, 100, 1000);
    uint32_t steps[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
    for (size_t i = 0; i < OT_ARRAY_LEN(steps); i++) {
        cr_assert_eq(ot_backoff_peek(&b), steps[i]);
        uint32_t d = ot_backoff_next(&b);
        cr_assert(d >= steps[i] / 2 && d <= steps[i], "step %u gave %u", steps[i], d);
    }
    ot_backoff_reset(&b);
    cr_assert_eq(ot_backoff_peek(&b), 100);
}

Test(backoff, jitter_spreads_and_never_returns_zero)
{
    ot_backoff b;
    ot_backoff_init(&b, 0, 0); /* degenerate config: 1 ms steps */
    for (int i = 0; i < 100; i++)
        cr_assert_geq(ot_backoff_next(&b), 1);
    ot_backoff_init(&b, 1000, 1000);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        uint32_t d = ot_backoff_next(&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    cr_assert(hi - lo > 200, "jitter too narrow: %u..%u", lo, hi);
}

/* ---- watch ---- */

static int watch_calls;
static unsigned watch_last;
static void watch_cb(ot_loop *l, int fd, unsigned ev, void *data)
{
    watch_calls++;
    watch_last = ev;
}

Test(watch, follows_mask_changes_fd_swaps_and_removal)
{
    ot_loop *l = ot_loop_new(256);
    int a[2], b[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    ot_watch w;
    ot_watch_init(&w, l, watch_cb, NULL);
    cr_assert_eq(ot_watch_set(&w, a[0], OT_READABLE | OT_EDGE), 0);
    cr_assert_eq(ot_loop_fd_mask(l, a[0]), OT_READABLE, "library fds are level-triggered");
    cr_assert_eq(write(a[1], "x", 1), 1);
    watch_calls = 0;
    ot_loop_run_once(l, 50);
    ot_loop_run_once(l, 50);
    cr_assert_eq(watch_calls, 2, "level-triggered: unread bytes wake us again");
    cr_assert_eq(ot_watch_set(&w, a[0], OT_WRITABLE), 0);
    watch_calls = 0;
    ot_loop_run_once(l, 50);
    cr_assert_eq(watch_calls, 1);
    cr_assert_eq(watch_last & (OT_READABLE | OT_WRITABLE), OT_WRITABLE);
    /* The library swapped sockets: the old fd loses its interest. */
    cr_assert_eq(ot_watch_set(&w, b[0], OT_READABLE), 0);
    cr_assert_eq(ot_loop_fd_mask(l, a[0]), 0);
    cr_assert_eq(w.fd, b[0]);
    watch_calls = 0;
    ot_loop_run_once(l, 20);
    cr_assert_eq(watch_calls, 0, "a[0] still readable but no longer watched; b[0] idle");
    /* Same number, new socket (libpq during connect): readd registers afresh. */
    int c[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
    close(b[0]);
    int nfd = dup2(c[0], b[0]);
    cr_assert_eq(nfd, b[0]);
    close(c[0]);
    cr_assert_eq(ot_watch_readd(&w, nfd, OT_READABLE), 0);
    cr_assert_eq(write(c[1], "y", 1), 1);
    watch_calls = 0;
    ot_loop_run_once(l, 50);
    cr_assert_eq(watch_calls, 1);
    ot_watch_remove(&w);
    cr_assert_not(ot_watch_active(&w));
    cr_assert_eq(ot_loop_fd_mask(l, nfd), 0);
    watch_calls = 0;
    ot_loop_run_once(l, 20);
    cr_assert_eq(watch_calls, 0);
    close(a[0]), close(a[1]), close(b[1]), close(nfd), close(c[1]);
    ot_loop_free(l);
}

/* ---- link ---- */

typedef struct {
    ot_link link;
    int connects, closes, downs, ups_after;
    int fail_at_once; /* connect attempts to fail synchronously */
    bool in_close;
    bool close_reenters;
} fake;

static int fake_connect(ot_link *l)
{
    fake *f = l->data;
    f->connects++;
    if (f->fail_at_once > 0) {
        f->fail_at_once--;
        ot_link_set_error(l, "refused");
        return OT_ERR;
    }
    return 0;
}
static void fake_close(ot_link *l)
{
    fake *f = l->data;
    f->closes++;
    if (f->close_reenters)
        ot_link_fail(l, "re-entered"); /* like redisAsyncFree's disconnect callback */
}
static void fake_down(ot_link *l, bool was_up) { ((fake *)l->data)->downs++; }
static const ot_link_ops fake_ops = { fake_connect, fake_close, fake_down };

static void run_ms(ot_loop *l, int ms)
{
    uint64_t end = ot_now_us() + (uint64_t)ms * 1000;
    while (ot_now_us() < end)
        ot_loop_run_once(l, 5);
}

Test(link, connect_deadline_backoff_and_reconnects)
{
    ot_loop *l = ot_loop_new(64);
    fake f = { 0 };
    ot_link_init(&f.link, l, "fake", &fake_ops, &f, 30, 10, 40);
    ot_link_start(&f.link);
    cr_assert_eq(f.link.state, OT_LINK_CONNECTING);
    cr_assert_eq(f.connects, 1);
    run_ms(l, 45); /* deadline at 30 ms, then a retry within 10 ms */
    cr_assert_eq(f.closes, 1);
    cr_assert_str_eq(f.link.why, "connect timeout");
    cr_assert_eq(f.connects, 2);
    cr_assert_eq(f.link.state, OT_LINK_CONNECTING);
    ot_link_up(&f.link);
    cr_assert(ot_link_is_up(&f.link));
    cr_assert_neq(ot_backoff_peek(&f.link.backoff), 10, "up is not yet healthy");
    ot_link_healthy(&f.link);
    cr_assert_eq(ot_backoff_peek(&f.link.backoff), 10, "backoff reset once healthy");
    run_ms(l, 60);
    cr_assert_eq(f.connects, 2, "no deadline while up");
    cr_assert_eq(f.link.reconnects, 1);
    ot_link_stop(&f.link);
    ot_loop_free(l);
}

Test(link, sync_failures_back_off_and_log_once_per_outage)
{
    ot_loop *l = ot_loop_new(64);
    fake f = { .fail_at_once = 3 };
    ot_link_init(&f.link, l, "fake", &fake_ops, &f, 1000, 5, 5);
    ot_link_start(&f.link);
    cr_assert_eq(f.link.state, OT_LINK_DOWN);
    cr_assert(f.link.warned);
    run_ms(l, 40);
    cr_assert_eq(f.connects, 4);
    cr_assert_eq(f.downs, 3);
    cr_assert_eq(f.link.state, OT_LINK_CONNECTING);
    ot_link_up(&f.link);
    cr_assert(f.link.warned, "accepted but not yet healthy: same outage");
    ot_link_fail(&f.link, "refused after connect (wrong password)");
    cr_assert(f.link.warned);
    run_ms(l, 20);
    ot_link_up_healthy(&f.link);
    cr_assert_not(f.link.warned, "the outage is over: the next one logs again");
    ot_link_stop(&f.link);
    ot_loop_free(l);
}

Test(link, fail_later_defers_and_reentrant_close_is_harmless)
{
    ot_loop *l = ot_loop_new(64);
    fake f = { .close_reenters = true };
    ot_link_init(&f.link, l, "fake", &fake_ops, &f, 1000, 1000, 1000);
    ot_link_start(&f.link);
    ot_link_up_healthy(&f.link);
    ot_link_fail_later(&f.link, "bad reply");
    ot_link_fail_later(&f.link, "again");
    cr_assert(ot_link_is_up(&f.link), "nothing closes inside the library's callback");
    cr_assert_eq(f.closes, 0);
    ot_loop_run_once(l, 0);
    cr_assert_eq(f.link.state, OT_LINK_DOWN);
    cr_assert_eq(f.closes, 1, "closed once though close re-entered ot_link_fail");
    cr_assert_eq(f.downs, 1);
    cr_assert_str_eq(f.link.why, "bad reply");
    ot_link_stop(&f.link);
    ot_loop_free(l);
}

/* ---- service registry ---- */

static bool yes(void *d) { return true; }
static bool no(void *d) { return false; }
static int drained_calls, sampled;
static void drain_cb(void *d) { (*(int *)d)++; }
static bool drained_cb(void *d)
{
    drained_calls++;
    return *(int *)d > 0;
}
static void sample_cb(void *d) { sampled++; }

Test(service, registry_answers_ready_drain_drained_and_sample)
{
    ot_services r = { 0 };
    int drains = 0;
    cr_assert_eq(ot_services_add(&r, &(ot_service){ .name = "a", .ready = yes, .required = true, .sample = sample_cb }), 0);
    cr_assert_eq(ot_services_add(&r, &(ot_service){ .name = "b", .ready = no, .required = false }), 0);
    cr_assert_null(ot_services_unready(&r), "an optional service never fails readiness");
    cr_assert_eq(ot_services_add(&r, &(ot_service){ .name = "c", .ready = no, .required = true, .data = &drains,
                                                    .drain = drain_cb, .drained = drained_cb }),
                 0);
    cr_assert_str_eq(ot_services_unready(&r)->name, "c");
    cr_assert_not(ot_services_drained(&r));
    ot_services_drain(&r);
    cr_assert_eq(drains, 1);
    cr_assert(ot_services_drained(&r));
    ot_services_sample(&r);
    cr_assert_eq(sampled, 1);
    for (int i = r.n; i < OT_SERVICES_MAX; i++)
        cr_assert_eq(ot_services_add(&r, &(ot_service){ .name = "x" }), 0);
    cr_assert_eq(ot_services_add(&r, &(ot_service){ .name = "overflow" }), OT_ERR, "a full registry says so");
}
