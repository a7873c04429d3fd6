/* One worker process: its loop, its listener, its connections and the clients
 * of its external services. Workers share nothing in memory. */
#ifndef OT_WORKER_H
#define OT_WORKER_H

#include "ot/cmd/worker_state.h"

#include <sys/types.h>

/* Runs a worker until it has drained after SIGTERM (from `master`, or from
 * the kernel when `master` died); returns the exit code. */
int ot_worker_main(const ot_config *cfg, int idx, pid_t master);
/* Opens a non-blocking SO_REUSEPORT listener. */
int ot_listen_socket(const char *host, int port, int backlog);

#endif
