#include "ot/event/backoff.h"

#include <unistd.h>

#include "ot/event/loop.h"

void ot_backoff_init(ot_backoff *b, uint32_t min_ms, uint32_t max_ms)
{
    b->min_ms = min_ms ? min_ms : 1;
    b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
    b->cur_ms = 0;
    uint32_t s = (uint32_t)ot_now_us() ^ ((uint32_t)getpid() << 16) ^ (uint32_t)(uintptr_t)b;
    b->rng = s ? s : 0x9e3779b9u;
}

uint32_t ot_backoff_peek(const ot_backoff *b) { return b->cur_ms ? b->cur_ms : b->min_ms; }

uint32_t ot_backoff_next(ot_backoff *b)
{
    uint32_t step = ot_backoff_peek(b);
    b->cur_ms = step >= b->max_ms / 2 ? b->max_ms : step * 2;
    uint32_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b->rng = x;
    uint32_t half = step / 2;
    uint32_t d = half + x % (step - half + 1);
    return d ? d : 1;
}
