#include "ot/event/link.h"

#include <stdio.h>

#include "ot/core/log.h"

static void on_timer(ot_loop *loop, ot_timer *t);
static void on_fail_defer(ot_loop *loop, ot_defer *d);

void ot_link_init(ot_link *l, ot_loop *loop, const char *name, const ot_link_ops *ops, void *data,
                  uint32_t connect_timeout_ms, uint32_t backoff_min_ms, uint32_t backoff_max_ms)
{
    *l = (ot_link){ .loop = loop, .name = name, .ops = ops, .data = data, .connect_timeout_ms = connect_timeout_ms };
    ot_backoff_init(&l->backoff, backoff_min_ms, backoff_max_ms);
    ot_timer_init(&l->timer, on_timer, l);
    ot_defer_init(&l->fail_defer, on_fail_defer, l);
}

void ot_link_set_error(ot_link *l, const char *why)
{
    if (why && why != l->why)
        snprintf(l->why, sizeof(l->why), "%s", *why ? why : "unknown error");
}

static void attempt(ot_link *l)
{
    if (l->attempted)
        l->reconnects++;
    l->attempted = true;
    l->state = OT_LINK_CONNECTING;
    ot_timer_start(l->loop, &l->timer, l->connect_timeout_ms);
    if (l->ops->connect(l) < 0)
        ot_link_fail(l, NULL);
}

void ot_link_start(ot_link *l)
{
    if (l->state == OT_LINK_DOWN)
        attempt(l);
}

void ot_link_up(ot_link *l)
{
    if (l->state != OT_LINK_CONNECTING)
        return;
    l->state = OT_LINK_UP;
    ot_timer_stop(l->loop, &l->timer);
}

void ot_link_healthy(ot_link *l)
{
    if (l->state != OT_LINK_UP)
        return;
    ot_backoff_reset(&l->backoff);
    if (l->warned)
        ot_logf(OT_LOG_INFO, "%s: up again", l->name);
    l->warned = false;
}

void ot_link_fail(ot_link *l, const char *why)
{
    if (l->state == OT_LINK_DOWN)
        return;
    ot_link_set_error(l, why);
    bool was_up = l->state == OT_LINK_UP;
    /* DOWN before close: a close that re-enters (hiredis's disconnect
     * callback) finds the link already down. */
    l->state = OT_LINK_DOWN;
    l->failures++;
    ot_defer_cancel(l->loop, &l->fail_defer);
    l->ops->close(l);
    if (!l->warned) {
        ot_logf(OT_LOG_WARN, "%s: %s (%s); reconnecting with backoff", l->name, was_up ? "connection lost" : "cannot connect",
                l->why[0] ? l->why : "unknown error");
        l->warned = true;
    }
    ot_timer_start(l->loop, &l->timer, ot_backoff_next(&l->backoff));
    if (l->ops->down)
        l->ops->down(l, was_up);
}

void ot_link_fail_later(ot_link *l, const char *why)
{
    if (l->state == OT_LINK_DOWN || l->fail_defer.queued)
        return;
    ot_link_set_error(l, why);
    ot_defer_queue(l->loop, &l->fail_defer);
}

static void on_fail_defer(ot_loop *loop, ot_defer *d) { ot_link_fail(d->data, NULL); }

static void on_timer(ot_loop *loop, ot_timer *t)
{
    ot_link *l = t->data;
    if (l->state == OT_LINK_DOWN)
        attempt(l);
    else if (l->state == OT_LINK_CONNECTING)
        ot_link_fail(l, "connect timeout");
}

void ot_link_stop(ot_link *l)
{
    ot_timer_stop(l->loop, &l->timer);
    ot_defer_cancel(l->loop, &l->fail_defer);
}
