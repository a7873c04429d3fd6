/* libFuzzer: the event payload as it reaches the reader from NOTIFY, a tail
 * row or Redis (codec/event_json.c). Each input is taken three ways:
 *  - as an event object (ot_event_parse): fields must point inside the input;
 *    where the NOTIFY peek (ot_event_peek_seq) also reads a seq, it must be
 *    the parsed one;
 *  - as a pub/sub envelope (ot_event_open): an accepted one must hold
 *    exactly the bytes after the MAC;
 *  - sealed, then opened: must round-trip, and parse the same as directly;
 *    any single flipped byte, another channel or a cut must be refused.
 * Invariant violations abort. */
#include <stdlib.h>

#include "ot/codec/event_json.h"

static bool inside(ot_str s, const char *base, size_t n)
{
    return s.len == 0 || (s.base >= base && s.base + s.len <= base + n);
}

static void check_parse(const char *p, size_t n, ot_event *ev, int *rc)
{
    *rc = ot_event_parse(ot_str_make(p, n), ev);
    if (*rc == 0 && (!inside(ev->order_id, p, n) || !inside(ev->user_id, p, n) || !inside(ev->status, p, n) ||
                     !inside(ev->type, p, n) || ev->json.base != p || ev->json.len != n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t key[OT_EVENT_MAC_KEY_LEN];
    static bool have_key;
    if (!have_key) {
        if (ot_event_mac_key(OT_STR("fuzz-secret"), key) < 0)
            abort();
        have_key = true;
    }
    const char *p = (const char *)data;
    ot_event ev;
    int rc;
    check_parse(p, size, &ev, &rc);
    int64_t peeked;
    if (ot_event_peek_seq(ot_str_make(p, size), &peeked) == 0 && rc == 0 && peeked != ev.seq)
        abort();

    ot_str json;
    if (ot_event_open(key, OT_STR("ot:admin"), ot_str_make(p, size), &json) == 0) {
        /* Only a sealed seed can get here: the fuzzer cannot forge the MAC. */
        if (json.base != p + OT_EVENT_SEAL_OVERHEAD || json.len != size - OT_EVENT_SEAL_OVERHEAD)
            abort();
        ot_event inner;
        int irc;
        check_parse(json.base, json.len, &inner, &irc);
    } else if (json.len != 0) {
        abort();
    }

    if (size > 1 << 16)
        return 0;
    size_t cap = size + OT_EVENT_SEAL_OVERHEAD;
    char *sealed = malloc(cap);
    if (!sealed)
        return 0;
    size_t n = ot_event_seal(key, OT_STR("ot:admin"), ot_str_make(p, size), sealed, cap);
    if (n != cap || ot_event_seal(key, OT_STR("ot:admin"), ot_str_make(p, size), sealed, cap - 1) != 0)
        abort();
    if (ot_event_open(key, OT_STR("ot:admin"), ot_str_make(sealed, n), &json) < 0 || json.len != size ||
        (size && memcmp(json.base, p, size) != 0))
        abort();
    ot_event again;
    int arc;
    check_parse(json.base, json.len, &again, &arc);
    if (arc != rc || (rc == 0 && (again.seq != ev.seq || again.version != ev.version ||
                                  again.order_id.len != ev.order_id.len || again.type.len != ev.type.len)))
        abort();
    if (ot_event_open(key, OT_STR("ot:user:x"), ot_str_make(sealed, n), &json) == 0)
        abort();
    size_t at = size ? (size_t)data[0] * 7919 % n : n / 2;
    sealed[at] ^= 0x20;
    if (ot_event_open(key, OT_STR("ot:admin"), ot_str_make(sealed, n), &json) == 0)
        abort();
    sealed[at] ^= 0x20;
    if (ot_event_open(key, OT_STR("ot:admin"), ot_str_make(sealed, n - 1), &json) == 0 && n > OT_EVENT_SEAL_OVERHEAD)
        abort(); /* a cut body is refused (an empty one sealed as such is fine) */
    free(sealed);
    return 0;
}
