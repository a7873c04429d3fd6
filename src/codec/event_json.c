/* Event JSON and its pub/sub envelope; see event_json.h. */
#include "ot/codec/event_json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#include "ot/codec/hmac.h"
#include "ot/codec/json.h"

/* Every token but the root takes at least two bytes ("1," or "[]" ...). */
#define OT_EVENT_TOKS_BOUND(len) ((len) / 2 + 2)
/* Past this an event is refused rather than tokenized on the heap. */
#define OT_EVENT_MAX_LEN (16u << 20)

static int fields(const ot_json *d, ot_str json, ot_event *out);

int ot_event_parse(ot_str json, ot_event *out)
{
    /* An event object has ~10 members, one of them the items array: 1024
     * tokens hold the largest order the API accepts (100 items). A row
     * written by other means may be larger and is still a committed event:
     * it gets a heap array, or it would be skipped as a rolled-back gap. */
    ot_json_tok toks[1024];
    ot_json d;
    memset(out, 0, sizeof(*out));
    if (ot_json_parse(&d, json.base, json.len, toks, (int)OT_ARRAY_LEN(toks)) == 0)
        return fields(&d, json, out);
    if (OT_EVENT_TOKS_BOUND(json.len) <= OT_ARRAY_LEN(toks) || json.len > OT_EVENT_MAX_LEN)
        return OT_ERR; /* it could not have needed more tokens, or it is absurd */
    size_t n = OT_EVENT_TOKS_BOUND(json.len);
    ot_json_tok *big = malloc(n * sizeof(*big));
    if (!big)
        return OT_ERR;
    int rc = ot_json_parse(&d, json.base, json.len, big, (int)n) == 0 ? fields(&d, json, out) : OT_ERR;
    free(big); /* the event's fields point into json, not into the tokens */
    return rc;
}

static int fields(const ot_json *d, ot_str json, ot_event *out)
{
    if (!ot_json_is_obj(d, 0))
        return OT_ERR;
    int t;
    if ((t = ot_json_obj_get(d, 0, "seq")) < 0 || ot_json_get_int64(d, t, &out->seq) < 0)
        return OT_ERR;
    if ((t = ot_json_obj_get(d, 0, "version")) >= 0 && ot_json_get_int64(d, t, &out->version) < 0)
        return OT_ERR;
    if ((t = ot_json_obj_get(d, 0, "orderId")) >= 0 && ot_json_is_str(d, t))
        out->order_id = ot_json_raw(d, t);
    if ((t = ot_json_obj_get(d, 0, "userId")) >= 0 && ot_json_is_str(d, t))
        out->user_id = ot_json_raw(d, t);
    if ((t = ot_json_obj_get(d, 0, "status")) >= 0 && ot_json_is_str(d, t))
        out->status = ot_json_raw(d, t);
    if ((t = ot_json_obj_get(d, 0, "type")) >= 0 && ot_json_is_str(d, t))
        out->type = ot_json_raw(d, t);
    if ((t = ot_json_obj_get(d, 0, "eventId")) >= 0 && ot_json_is_str(d, t))
        out->event_id = ot_json_raw(d, t);
    if ((t = ot_json_obj_get(d, 0, "timestamp")) >= 0 && ot_json_is_str(d, t))
        out->timestamp = ot_json_raw(d, t);
    out->json = json;
    return 0;
}

static size_t peek_ws(ot_str s, size_t i)
{
    while (i < s.len && (s.base[i] == ' ' || s.base[i] == '\t' || s.base[i] == '\n' || s.base[i] == '\r'))
        i++;
    return i;
}

int ot_event_peek_seq(ot_str json, int64_t *seq)
{
    size_t i = peek_ws(json, 0);
    if (i >= json.len || json.base[i] != '{')
        return OT_ERR;
    i = peek_ws(json, i + 1);
    if (json.len - i < 5 || memcmp(json.base + i, "\"seq\"", 5) != 0)
        return OT_ERR;
    i = peek_ws(json, i + 5);
    if (i >= json.len || json.base[i] != ':')
        return OT_ERR;
    i = peek_ws(json, i + 1);
    size_t st = i;
    uint64_t v = 0;
    /* 18 digits cannot overflow; a seq is a positive bigint. */
    while (i < json.len && i - st < 18 && json.base[i] >= '0' && json.base[i] <= '9')
        v = v * 10 + (uint64_t)(json.base[i++] - '0');
    if (i == st || (json.base[st] == '0' && i - st > 1))
        return OT_ERR;
    i = peek_ws(json, i);
    if (i >= json.len || (json.base[i] != ',' && json.base[i] != '}'))
        return OT_ERR;
    *seq = (int64_t)v;
    return 0;
}

#define PREFIX "ot1:"
#define PREFIX_LEN 4
#define MAC_HEX 64

int ot_event_mac_key(ot_str secret, uint8_t key[OT_EVENT_MAC_KEY_LEN])
{
    static const char label[] = "ordertrack pubsub v1";
    unsigned int n = 0;
    if (secret.len == 0 || secret.len > INT32_MAX)
        return OT_ERR;
    if (!HMAC(EVP_sha256(), secret.base, (int)secret.len, (const unsigned char *)label, sizeof(label) - 1, key, &n) ||
        n != OT_EVENT_MAC_KEY_LEN)
        return OT_ERR;
    return 0;
}

/* HMAC-SHA256(key, channel "\n" json), streamed: an event may be far larger
 * than any stack buffer we would want to join it in. The key schedule is
 * prepared once (hmac.h); per process, the workers are single-threaded. */
static int mac(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str json, uint8_t out[32])
{
    static ot_hmac keys = OT_HMAC_INIT;
    ot_str parts[] = { channel, ot_str_make("\n", 1), json };
    return ot_hmac_sha256(&keys, ot_str_make((const char *)key, OT_EVENT_MAC_KEY_LEN), parts, 3, out);
}

int ot_event_seal_hex(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str json, char hex[MAC_HEX])
{
    uint8_t m[32];
    if (mac(key, channel, json, m) < 0)
        return OT_ERR;
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = ot_hex_lower[m[i] >> 4];
        hex[2 * i + 1] = ot_hex_lower[m[i] & 15];
    }
    return 0;
}

size_t ot_event_seal(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str json, char *out, size_t cap)
{
    if (cap < OT_EVENT_SEAL_OVERHEAD || cap - OT_EVENT_SEAL_OVERHEAD < json.len ||
        ot_event_seal_hex(key, channel, json, out + PREFIX_LEN) < 0)
        return 0;
    memcpy(out, PREFIX, PREFIX_LEN);
    out[PREFIX_LEN + MAC_HEX] = ':';
    if (json.len)
        memcpy(out + OT_EVENT_SEAL_OVERHEAD, json.base, json.len);
    return OT_EVENT_SEAL_OVERHEAD + json.len;
}

/* Lower case only: one spelling per MAC. */
static int unhex(char c) { return c >= 'A' && c <= 'F' ? -1 : ot_hex_val((unsigned char)c); }

int ot_event_open(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str msg, ot_str *json)
{
    uint8_t got[32], want[32];
    *json = OT_STR_NULL;
    if (msg.len < OT_EVENT_SEAL_OVERHEAD || memcmp(msg.base, PREFIX, PREFIX_LEN) != 0 ||
        msg.base[PREFIX_LEN + MAC_HEX] != ':')
        return OT_ERR;
    for (int i = 0; i < 32; i++) {
        int hi = unhex(msg.base[PREFIX_LEN + 2 * i]), lo = unhex(msg.base[PREFIX_LEN + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return OT_ERR;
        got[i] = (uint8_t)(hi << 4 | lo);
    }
    ot_str body = ot_str_make(msg.base + OT_EVENT_SEAL_OVERHEAD, msg.len - OT_EVENT_SEAL_OVERHEAD);
    if (mac(key, channel, body, want) < 0 || !ot_ct_equal(got, want, 32))
        return OT_ERR;
    *json = body;
    return 0;
}
