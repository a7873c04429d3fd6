/* The loop interest of an fd a library owns (libpq's PQsocket, hiredis's
 * c.fd, curl's sockets). The library decides when the fd exists, which events
 * it wants and when it closes it; the watch follows:
 *  - ot_watch_set(fd, mask): add, or change the mask; a different fd number
 *    (the library swapped sockets) drops the old interest and adds the new;
 *  - ot_watch_readd(fd, mask): add afresh even under the same number (libpq
 *    may close and reopen its socket during connect, and the kernel already
 *    forgot the old registration: a plain MOD would fail);
 *  - ot_watch_remove(): before the library closes the fd, so a reused number
 *    never gets a stale event.
 * Library fds are always level-triggered (DESIGN.md: hiredis reads once per
 * call; a missed edge would be a silent stall), so OT_EDGE is stripped. */
#ifndef OT_WATCH_H
#define OT_WATCH_H

#include "ot/event/loop.h"

typedef struct {
    ot_loop *loop;
    ot_fd_cb *cb;
    void *data;
    int fd;        /* -1: not watching */
    unsigned mask; /* as last registered */
} ot_watch;

void ot_watch_init(ot_watch *w, ot_loop *loop, ot_fd_cb *cb, void *data);
int ot_watch_set(ot_watch *w, int fd, unsigned mask);
int ot_watch_readd(ot_watch *w, int fd, unsigned mask);
/* Changes the mask of the fd watched now; no-op when not watching. */
int ot_watch_mask(ot_watch *w, unsigned mask);
void ot_watch_remove(ot_watch *w);
static inline bool ot_watch_active(const ot_watch *w) { return w->fd >= 0; }

#endif
