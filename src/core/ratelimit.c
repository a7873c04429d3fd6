/* Token buckets in a fixed set-associative table (see include/ot/ratelimit.h). */
#include "ot/core/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

/* Floating-point slop: refills of fractional rates accumulate rounding error,
 * and a client must not be told to wait for a billionth of a token. */
#define TOKEN_EPS 1e-9

typedef struct {
    uint64_t hash;
    uint64_t touched_ms; /* time of the last refill, which every take does */
    double tokens;
    uint32_t keylen;     /* full key length, even when longer than key[] */
    bool used;
    unsigned char key[OT_RATELIMIT_KEY_MAX];
} rl_entry;

struct ot_ratelimit {
    double rate;  /* tokens per second */
    double burst;
    uint64_t seed;
    size_t mask;  /* slots - 1 */
    size_t ways;
    rl_entry *slots;
};

ot_ratelimit *ot_ratelimit_new(double rate, double burst, size_t capacity)
{
    if (!isfinite(rate) || !isfinite(burst))
        return NULL;
    ot_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    if (rate <= 0)
        return rl; /* disabled: slots == NULL */
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;

    size_t n = OT_RATELIMIT_WAYS;
    while (n < capacity) {
        if (n > SIZE_MAX / 2 / sizeof(rl_entry)) {
            free(rl);
            return NULL;
        }
        n *= 2;
    }
    rl->slots = calloc(n, sizeof(rl_entry));
    if (!rl->slots) {
        free(rl);
        return NULL;
    }
    rl->mask = n - 1;
    rl->ways = OT_RATELIMIT_WAYS;
    if (getrandom(&rl->seed, sizeof rl->seed, GRND_NONBLOCK) != (ssize_t)sizeof rl->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rl->seed = (uint64_t)(uintptr_t)rl ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec;
    }
    return rl;
}

void ot_ratelimit_free(ot_ratelimit *rl)
{
    if (!rl)
        return;
    free(rl->slots);
    free(rl);
}

/* Seeded multiply-rotate over 8-byte words with a murmur3 finaliser: cheap and
 * well mixed; not cryptographic, the random seed is the HashDoS defence. */
static uint64_t rl_hash(uint64_t seed, const unsigned char *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h = (h << 31) | (h >> 33);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n)
        memcpy(&w, p, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

static double level_at(const ot_ratelimit *rl, const rl_entry *e, uint64_t now_ms)
{
    if (now_ms <= e->touched_ms)
        return e->tokens;
    /* elapsed * rate first: exact for integer rates, one rounding after. */
    double t = e->tokens + (double)(now_ms - e->touched_ms) * rl->rate / 1000.0;
    return t > rl->burst ? rl->burst : t;
}

int ot_ratelimit_take(ot_ratelimit *rl, const void *key, size_t keylen, uint64_t now_ms,
                      uint32_t *retry_after_s)
{
    if (!rl || !rl->slots)
        return OT_OK;
    const unsigned char *k = key;
    size_t cmp = keylen < OT_RATELIMIT_KEY_MAX ? keylen : OT_RATELIMIT_KEY_MAX;
    uint64_t h = rl_hash(rl->seed, k, keylen);
    size_t home = (size_t)h & rl->mask;

    rl_entry *e = NULL, *empty = NULL, *full = NULL, *oldest = NULL;
    for (size_t i = 0; i < rl->ways; i++) {
        rl_entry *s = &rl->slots[(home + i) & rl->mask];
        if (!s->used) {
            if (!empty)
                empty = s;
            continue;
        }
        if (s->hash == h && s->keylen == keylen && (cmp == 0 || memcmp(s->key, k, cmp) == 0)) {
            e = s;
            break;
        }
        if (!full && level_at(rl, s, now_ms) >= rl->burst - TOKEN_EPS)
            full = s;
        if (!oldest || s->touched_ms < oldest->touched_ms)
            oldest = s;
    }
    if (!e) {
        e = empty ? empty : full ? full : oldest;
        e->used = true;
        e->hash = h;
        e->keylen = keylen > UINT32_MAX ? UINT32_MAX : (uint32_t)keylen;
        if (cmp)
            memcpy(e->key, k, cmp);
        e->tokens = rl->burst;
        e->touched_ms = now_ms;
    }

    e->tokens = level_at(rl, e, now_ms);
    if (now_ms > e->touched_ms)
        e->touched_ms = now_ms;
    if (e->tokens >= 1.0 - TOKEN_EPS) {
        e->tokens = e->tokens > 1.0 ? e->tokens - 1.0 : 0.0;
        return OT_OK;
    }
    double wait = ceil((1.0 - e->tokens) / rl->rate);
    if (retry_after_s)
        *retry_after_s = wait < 1 ? 1 : wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait;
    return OT_ERR;
}

/* ---------------------------------------------------------------- in-flight caps */

typedef struct {
    uint32_t count; /* 0: free slot */
    uint32_t keylen;
    unsigned char key[OT_RATELIMIT_KEY_MAX];
} inflight_slot;

struct ot_inflight {
    uint32_t max_total, max_per_key, total;
    inflight_slot *slots; /* max_total: never more distinct keys than jobs */
};

ot_inflight *ot_inflight_new(uint32_t max_total, uint32_t max_per_key)
{
    if (max_total == 0 || max_per_key == 0)
        return NULL;
    ot_inflight *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->slots = calloc(max_total, sizeof(*f->slots));
    if (!f->slots) {
        free(f);
        return NULL;
    }
    f->max_total = max_total;
    f->max_per_key = max_per_key;
    return f;
}

void ot_inflight_free(ot_inflight *f)
{
    if (!f)
        return;
    free(f->slots);
    free(f);
}

static inflight_slot *inflight_find(ot_inflight *f, const void *key, size_t n, inflight_slot **free_slot)
{
    if (n > OT_RATELIMIT_KEY_MAX)
        n = OT_RATELIMIT_KEY_MAX;
    if (free_slot)
        *free_slot = NULL;
    for (uint32_t i = 0; i < f->max_total; i++) {
        inflight_slot *s = &f->slots[i];
        if (s->count == 0) {
            if (free_slot && !*free_slot)
                *free_slot = s;
        } else if (s->keylen == n && memcmp(s->key, key, n) == 0) {
            return s;
        }
    }
    return NULL;
}

int ot_inflight_acquire(ot_inflight *f, const void *key, size_t keylen)
{
    /* A key over its share hears so (429: its own doing) even when the
     * queue is full too (503: everyone's). */
    inflight_slot *fs;
    inflight_slot *s = inflight_find(f, key, keylen, &fs);
    if (s && s->count >= f->max_per_key)
        return OT_INFLIGHT_EKEY;
    if (f->total >= f->max_total)
        return OT_INFLIGHT_EFULL;
    if (!s) {
        s = fs; /* total < max_total leaves at least one slot free */
        s->keylen = (uint32_t)(keylen > OT_RATELIMIT_KEY_MAX ? OT_RATELIMIT_KEY_MAX : keylen);
        memcpy(s->key, key, s->keylen);
    }
    s->count++;
    f->total++;
    return 0;
}

void ot_inflight_release(ot_inflight *f, const void *key, size_t keylen)
{
    inflight_slot *s = inflight_find(f, key, keylen, NULL);
    if (!s)
        return;
    s->count--;
    f->total--;
}

uint32_t ot_inflight_count(const ot_inflight *f) { return f->total; }
