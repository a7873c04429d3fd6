/* JSON-lines logging to stderr.
 *
 * One line = one write(2) of at most OT_LOG_LINE_MAX bytes. That size is
 * PIPE_BUF on Linux, so when stderr is a pipe the kernel writes each line
 * atomically and lines from the master and all workers never interleave.
 * Longer lines are cut inside the last string field (msg / path) and carry
 * "truncated":true; the line stays valid JSON.
 *
 * Never stalls the loop on purpose: when stderr is a socket (journald's stream
 * socket under systemd) the line is sent with MSG_DONTWAIT; when any write
 * reports EAGAIN the line is dropped and counted (ot_log_dropped(), and the
 * metric ordertrack_log_lines_dropped_total) rather than buffered — a logger
 * that queues without bound is how a slow journal turns into an OOM. A
 * blocking pipe or file on stderr can still block briefly; we do not set
 * O_NONBLOCK on fd 2 because that flag is shared with every process holding
 * the same open file (the terminal, the master, the other workers).
 *
 * Strings are JSON-escaped: quote, backslash and control characters become
 * escapes; valid UTF-8 passes through; each byte of invalid UTF-8 becomes
 * \u00XX (its Latin-1 reading) so the line is always valid JSON and the raw
 * bytes can still be recovered. */
#ifndef OT_LOG_H
#define OT_LOG_H

#include "ot/core/common.h"

#define OT_LOG_LINE_MAX 4096 /* PIPE_BUF: atomic pipe writes (pipe(7)) */
#define OT_LOG_REQUEST_ID_MAX 32

typedef enum { OT_LOG_DEBUG, OT_LOG_INFO, OT_LOG_WARN, OT_LOG_ERROR } ot_log_level;

void ot_log_set_level(ot_log_level l);
ot_log_level ot_log_get_level(void);
/* "debug", "info", "warn"/"warning", "error", ASCII case-insensitive.
 * Returns 0 or OT_ERR (unknown name; *out untouched). */
int ot_log_parse_level(const char *s, ot_log_level *out);
/* -1 = master. Call after fork: it also re-checks what fd 2 is. */
void ot_log_set_worker(int idx);

/* {"ts":"2026-11-25T19:20:00.123Z","level":"info","worker":0,"pid":123,"msg":"..."}
 * msg is printf-formatted, then JSON-escaped. */
void ot_logf(ot_log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Access log line at level info:
 * {"ts",...,"type":"access","status","bytes","duration_us","request_id","remote","method","path"}
 * method/path/remote/request_id are untrusted bytes and escaped; path comes
 * last so an over-long one is what gets truncated. ot_log_access generates a
 * request id; use ot_log_access_rid with the id you sent in X-Request-Id. */
void ot_log_access(ot_str method, ot_str path, int status, uint64_t bytes, uint64_t duration_us,
                   ot_str remote);
void ot_log_access_rid(ot_str method, ot_str path, int status, uint64_t bytes,
                       uint64_t duration_us, ot_str remote, ot_str request_id);
/* Writes a new id (16 hex digits, unique per process run, NUL-terminated)
 * into out[OT_LOG_REQUEST_ID_MAX]; returns its length. */
size_t ot_log_request_id(char *out);

/* Batching (the worker turns it on): access lines are gathered in a bounded
 * buffer of OT_LOG_BATCH_MAX bytes and written by ot_log_flush, in writes of
 * whole lines of at most OT_LOG_LINE_MAX bytes each. `wake(data)` is called
 * when the buffer goes from empty to non-empty, so the caller can schedule a
 * flush at the end of its loop round. A full buffer is flushed at once; when
 * a write cannot proceed (EAGAIN) the rest of the batch is dropped and counted.
 * ot_logf lines are never batched: they flush the batch, then write. Without
 * batching (the default) every line is written when it is logged. */
#define OT_LOG_BATCH_MAX 65536
typedef void ot_log_wake_fn(void *data);
void ot_log_set_batching(ot_log_wake_fn *wake, void *data);
void ot_log_flush(void);

/* Lines dropped by this process since start (EAGAIN / write errors). */
uint64_t ot_log_dropped(void);

#endif
