#include "ot/event/watch.h"

void ot_watch_init(ot_watch *w, ot_loop *loop, ot_fd_cb *cb, void *data)
{
    *w = (ot_watch){ .loop = loop, .cb = cb, .data = data, .fd = -1 };
}

int ot_watch_readd(ot_watch *w, int fd, unsigned mask)
{
    ot_watch_remove(w);
    mask &= ~(unsigned)OT_EDGE;
    if (fd < 0 || ot_loop_add_fd(w->loop, fd, mask, w->cb, w->data) < 0)
        return OT_ERR;
    w->fd = fd;
    w->mask = mask;
    return 0;
}

int ot_watch_set(ot_watch *w, int fd, unsigned mask)
{
    if (fd != w->fd)
        return ot_watch_readd(w, fd, mask);
    return ot_watch_mask(w, mask);
}

int ot_watch_mask(ot_watch *w, unsigned mask)
{
    mask &= ~(unsigned)OT_EDGE;
    if (w->fd < 0 || mask == w->mask)
        return 0;
    if (ot_loop_mod_fd(w->loop, w->fd, mask) < 0)
        return OT_ERR;
    w->mask = mask;
    return 0;
}

void ot_watch_remove(ot_watch *w)
{
    if (w->fd >= 0)
        ot_loop_del_fd(w->loop, w->fd);
    w->fd = -1;
    w->mask = 0;
}
