#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "ot/core/ratelimit.h"

static int take(ot_ratelimit *rl, const char *key, uint64_t now, uint32_t *ra)
{
    return ot_ratelimit_take(rl, key, strlen(key), now, ra);
}

Test(ratelimit, burst_is_allowed_then_denied_with_retry_after)
{
    ot_ratelimit *rl = ot_ratelimit_new(1, 3, 64);
    cr_assert_not_null(rl);
    uint32_t ra = 0;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(take(rl, "u1", 1000, &ra), 0, "take %d within burst", i);
    cr_assert_eq(take(rl, "u1", 1000, &ra), OT_ERR);
    cr_assert_eq(ra, 1);
    ot_ratelimit_free(rl);
}

Test(ratelimit, retry_after_rounds_up_to_whole_seconds)
{
    ot_ratelimit *rl = ot_ratelimit_new(0.25, 1, 64); /* one token per 4 s */
    uint32_t ra = 0;
    cr_assert_eq(take(rl, "k", 0, &ra), 0);
    cr_assert_eq(take(rl, "k", 0, &ra), OT_ERR);
    cr_assert_eq(ra, 4);
    cr_assert_eq(take(rl, "k", 1500, &ra), OT_ERR); /* 0.375 token: 2.5 s to go */
    cr_assert_eq(ra, 3);
    cr_assert_eq(take(rl, "k", 3999, &ra), OT_ERR); /* 1 ms to go still says 1 s */
    cr_assert_eq(ra, 1);
    cr_assert_eq(take(rl, "k", 4000, &ra), 0);
    ot_ratelimit_free(rl);
}

Test(ratelimit, tokens_refill_over_time_up_to_burst)
{
    ot_ratelimit *rl = ot_ratelimit_new(2, 4, 64);
    uint32_t ra;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(take(rl, "ip", 0, &ra), 0);
    cr_assert_eq(take(rl, "ip", 0, &ra), OT_ERR);
    cr_assert_eq(take(rl, "ip", 499, &ra), OT_ERR);
    cr_assert_eq(take(rl, "ip", 500, &ra), 0, "2/s gives one token per 500 ms");
    cr_assert_eq(take(rl, "ip", 500, &ra), OT_ERR);
    /* A long pause refills only to burst, not beyond. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += take(rl, "ip", 60000, &ra) == 0;
    cr_assert_eq(allowed, 4);
    ot_ratelimit_free(rl);
}

Test(ratelimit, many_small_refills_add_up_exactly)
{
    ot_ratelimit *rl = ot_ratelimit_new(10, 1, 64); /* 0.01 token per ms */
    uint32_t ra;
    cr_assert_eq(take(rl, "k", 0, &ra), 0);
    uint64_t t = 0;
    for (int i = 0; i < 99; i++)
        cr_assert_eq(take(rl, "k", ++t, &ra), OT_ERR);
    cr_assert_eq(take(rl, "k", ++t, &ra), 0, "100 x 1 ms at 10/s is one token");
    ot_ratelimit_free(rl);
}

Test(ratelimit, keys_are_independent_including_binary_ip_keys)
{
    ot_ratelimit *rl = ot_ratelimit_new(1, 1, 64);
    uint32_t ra;
    unsigned char v4[4] = { 10, 0, 0, 1 }, v4b[4] = { 10, 0, 0, 2 };
    unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
    cr_assert_eq(ot_ratelimit_take(rl, v4, 4, 0, &ra), 0);
    cr_assert_eq(ot_ratelimit_take(rl, v4, 4, 0, &ra), OT_ERR);
    cr_assert_eq(ot_ratelimit_take(rl, v4b, 4, 0, &ra), 0);
    cr_assert_eq(ot_ratelimit_take(rl, v6, 16, 0, &ra), 0);
    cr_assert_eq(ot_ratelimit_take(rl, v6, 4, 0, &ra), 0, "a prefix is a different key");
    cr_assert_eq(take(rl, "alice", 0, &ra), 0);
    cr_assert_eq(take(rl, "bob", 0, &ra), 0);
    cr_assert_eq(take(rl, "alice", 0, &ra), OT_ERR);
    ot_ratelimit_free(rl);
}

Test(ratelimit, long_keys_differing_after_the_stored_prefix_stay_apart)
{
    ot_ratelimit *rl = ot_ratelimit_new(1, 1, 64);
    char a[200], b[200];
    memset(a, 'x', sizeof a);
    memcpy(b, a, sizeof b);
    b[150] = 'y';
    uint32_t ra;
    cr_assert_eq(ot_ratelimit_take(rl, a, sizeof a, 0, &ra), 0);
    cr_assert_eq(ot_ratelimit_take(rl, b, sizeof b, 0, &ra), 0);
    cr_assert_eq(ot_ratelimit_take(rl, a, sizeof a, 0, &ra), OT_ERR);
    ot_ratelimit_free(rl);
}

Test(ratelimit, flood_of_new_keys_keeps_working_and_hot_key_stays_limited)
{
    ot_ratelimit *rl = ot_ratelimit_new(1, 3, 64);
    uint32_t ra;
    int hot_allowed = 0;
    char key[32];
    for (uint64_t t = 0; t < 10000; t++) {
        hot_allowed += take(rl, "hot", t, &ra) == 0;
        snprintf(key, sizeof key, "k%llu", (unsigned long long)t);
        cr_assert_eq(take(rl, key, t, &ra), 0, "a new key always has its burst");
    }
    /* 3 burst + one per second over ~10 s: the hot key was never forgotten. */
    cr_assert_geq(hot_allowed, 12);
    cr_assert_leq(hot_allowed, 13);
    ot_ratelimit_free(rl);
}

Test(ratelimit, eviction_prefers_full_buckets_over_older_limited_ones)
{
    /* capacity == ways: every key competes for the same 8 slots. */
    ot_ratelimit *rl = ot_ratelimit_new(1, 5, OT_RATELIMIT_WAYS);
    uint32_t ra;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(take(rl, "A", 0, &ra), 0);
    cr_assert_eq(take(rl, "A", 0, &ra), OT_ERR); /* A drained at t=0: the oldest entry */
    char key[16];
    for (int i = 0; i < OT_RATELIMIT_WAYS - 1; i++) {
        snprintf(key, sizeof key, "K%d", i);
        cr_assert_eq(take(rl, key, 500, &ra), 0); /* 4 tokens left, full again at 1500 */
    }
    for (int i = 0; i < OT_RATELIMIT_WAYS - 1; i++) {
        snprintf(key, sizeof key, "N%d", i);
        cr_assert_eq(take(rl, key, 1500, &ra), 0);
    }
    /* Pure LRU would have forgotten A and granted it a fresh burst of 5; it
     * must still have only the 1.5 tokens it earned since t=0. */
    cr_assert_eq(take(rl, "A", 1500, &ra), 0);
    cr_assert_eq(take(rl, "A", 1500, &ra), OT_ERR);
    ot_ratelimit_free(rl);
}

Test(ratelimit, when_nothing_is_full_the_least_recently_touched_key_goes)
{
    ot_ratelimit *rl = ot_ratelimit_new(1, 2, OT_RATELIMIT_WAYS);
    uint32_t ra;
    char key[16];
    for (int i = 0; i < OT_RATELIMIT_WAYS; i++) {
        snprintf(key, sizeof key, "K%d", i);
        cr_assert_eq(take(rl, key, (uint64_t)i, &ra), 0);
        cr_assert_eq(take(rl, key, (uint64_t)i, &ra), 0);
        cr_assert_eq(take(rl, key, (uint64_t)i, &ra), OT_ERR);
    }
    cr_assert_eq(take(rl, "new", 10, &ra), 0); /* evicts K0, touched at t=0 */
    cr_assert_eq(take(rl, "K0", 10, &ra), 0, "K0 was forgotten: fresh burst");
    cr_assert_eq(take(rl, "K0", 10, &ra), 0);
    /* K0's return evicted K1 (now oldest); K7 was kept and is still drained. */
    cr_assert_eq(take(rl, "K7", 10, &ra), OT_ERR);
    ot_ratelimit_free(rl);
}

Test(ratelimit, zero_rate_disables_limiting)
{
    ot_ratelimit *rl = ot_ratelimit_new(0, 1, 8);
    cr_assert_not_null(rl);
    uint32_t ra = 77;
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(take(rl, "k", 0, &ra), 0);
    cr_assert_eq(ra, 77, "retry_after untouched when allowed");
    ot_ratelimit_free(rl);
    cr_assert_eq(take(NULL, "k", 0, &ra), 0, "NULL limiter allows too");
}

Test(ratelimit, clock_stepping_back_grants_nothing)
{
    ot_ratelimit *rl = ot_ratelimit_new(1, 1, 8);
    uint32_t ra;
    cr_assert_eq(take(rl, "k", 10000, &ra), 0);
    cr_assert_eq(take(rl, "k", 5000, &ra), OT_ERR);
    cr_assert_eq(take(rl, "k", 10999, &ra), OT_ERR);
    cr_assert_eq(take(rl, "k", 11000, &ra), 0);
    ot_ratelimit_free(rl);
}

Test(ratelimit, invalid_arguments_are_rejected)
{
    cr_assert_null(ot_ratelimit_new(INFINITY, 1, 8));
    cr_assert_null(ot_ratelimit_new(1, NAN, 8));
    cr_assert_null(ot_ratelimit_new(1, 1, SIZE_MAX));
}

/* ---- in-flight caps (issue 10 #6: a bounded KDF queue with a per-client share) ---- */

Test(inflight, per_key_share_then_global_bound_then_release)
{
    ot_inflight *f = ot_inflight_new(3, 2);
    cr_assert_not_null(f);
    cr_assert_eq(ot_inflight_acquire(f, "a", 1), 0);
    cr_assert_eq(ot_inflight_acquire(f, "a", 1), 0);
    cr_assert_eq(ot_inflight_acquire(f, "a", 1), OT_INFLIGHT_EKEY);
    cr_assert_eq(ot_inflight_acquire(f, "b", 1), 0);
    cr_assert_eq(ot_inflight_acquire(f, "c", 1), OT_INFLIGHT_EFULL);
    cr_assert_eq(ot_inflight_acquire(f, "a", 1), OT_INFLIGHT_EKEY); /* its share first, though full */
    cr_assert_eq(ot_inflight_count(f), 3);
    ot_inflight_release(f, "a", 1);
    cr_assert_eq(ot_inflight_acquire(f, "c", 1), 0);
    ot_inflight_release(f, "zz", 2); /* unknown key: ignored */
    cr_assert_eq(ot_inflight_count(f), 3);
    ot_inflight_release(f, "a", 1);
    ot_inflight_release(f, "b", 1);
    ot_inflight_release(f, "c", 1);
    cr_assert_eq(ot_inflight_count(f), 0);
    /* Slots are reused after release, for any key. */
    for (int round = 0; round < 100; round++) {
        char k[2] = { (char)('a' + round % 26), 0 };
        cr_assert_eq(ot_inflight_acquire(f, k, 1), 0);
        ot_inflight_release(f, k, 1);
    }
    cr_assert_eq(ot_inflight_count(f), 0);
    ot_inflight_free(f);
}

Test(inflight, keys_differing_in_length_or_beyond_the_key_max)
{
    ot_inflight *f = ot_inflight_new(8, 1);
    unsigned char v4[4] = { 127, 0, 0, 1 }, v6[16] = { 127, 0, 0, 1 };
    cr_assert_eq(ot_inflight_acquire(f, v4, 4), 0);
    cr_assert_eq(ot_inflight_acquire(f, v6, 16), 0); /* same prefix, other length: another key */
    char big[OT_RATELIMIT_KEY_MAX + 10];
    memset(big, 'x', sizeof big);
    cr_assert_eq(ot_inflight_acquire(f, big, sizeof big), 0);
    cr_assert_eq(ot_inflight_acquire(f, big, sizeof big), OT_INFLIGHT_EKEY);
    cr_assert_null(ot_inflight_new(0, 1));
    cr_assert_null(ot_inflight_new(1, 0));
    ot_inflight_free(f);
}
