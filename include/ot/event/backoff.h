/* Reconnect backoff: exponential, capped, with "equal jitter" (half the step
 * fixed, half random), so workers and connections that lost a server together
 * do not all knock on its door in the same millisecond. Used by every link
 * (libpq, hiredis) and by the master's worker restarts. */
#ifndef OT_BACKOFF_H
#define OT_BACKOFF_H

#include "ot/core/common.h"

typedef struct {
    uint32_t min_ms, max_ms; /* first step and cap; min 0 counts as 1 */
    uint32_t cur_ms;         /* the next step before jitter; 0: min */
    uint32_t rng;            /* xorshift32: de-synchronises, need not be secret */
} ot_backoff;

/* max < min is raised to min. The seed mixes time, pid and the address. */
void ot_backoff_init(ot_backoff *b, uint32_t min_ms, uint32_t max_ms);
/* The delay before the next attempt, in [step/2, step] and >= 1; then doubles
 * the step, up to max_ms. */
uint32_t ot_backoff_next(ot_backoff *b);
/* After a success: the next outage starts at min_ms again. */
static inline void ot_backoff_reset(ot_backoff *b) { b->cur_ms = 0; }
/* The step the next call jitters (for logs: "retrying within N ms"). */
uint32_t ot_backoff_peek(const ot_backoff *b);

#endif
