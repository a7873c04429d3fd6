/* Order events as JSON (the object SQL ot_event_json builds) and the
 * authenticated envelope they travel in over Redis pub/sub. Pure: no I/O (a
 * heap token array only for events larger than any the API writes); fuzzed by
 * tests/fuzz/fuzz_event_payload.c.
 *
 * Envelope: "ot1:" <64 lowercase hex HMAC-SHA256> ":" <event json>, the MAC
 * taken over <channel> "\n" <event json> with a key derived from the server's
 * JWT secret. The channel is covered so a message cannot be replayed into
 * another channel; the JSON stays readable to tools that strip the prefix. */
#ifndef OT_CODEC_EVENT_JSON_H
#define OT_CODEC_EVENT_JSON_H

#include "ot/core/common.h"

typedef struct {
    int64_t seq;
    int64_t version;
    ot_str order_id, user_id, status, type;
    ot_str event_id, timestamp; /* timestamp: ISO-8601 UTC, the row's created_at */
    ot_str json;       /* the whole event object as JSON (the "data" of a push) */
    uint64_t seen_us;  /* ot_now_us() when this worker first learned of it */
} ot_event;

/* Parses an event object. Points into `json`. OT_ERR if malformed (not an
 * object, "seq" missing or "seq"/"version" not integers) or over 16 MiB. */
int ot_event_parse(ot_str json, ot_event *out);

/* The value of a leading "seq" member ({"seq":N,... or {"seq":N}, whitespace
 * allowed, as ot_event_json and the large-event stub write it), without
 * reading the rest: for a payload that is only a hint (a NOTIFY), where a
 * wrong answer costs one tail query at most. OT_ERR if the text does not start
 * that way (the caller then treats it as unknown). */
int ot_event_peek_seq(ot_str json, int64_t *seq);

#define OT_EVENT_MAC_KEY_LEN 32
/* "ot1:" + 64 hex + ":" */
#define OT_EVENT_SEAL_OVERHEAD 69

/* key = HMAC-SHA256(secret, "ordertrack pubsub v1"): the pub/sub key is not the
 * token key, so a leaked MAC never helps forge a token. */
int ot_event_mac_key(ot_str secret, uint8_t key[OT_EVENT_MAC_KEY_LEN]);
/* Writes the envelope of `json` on `channel` into out (cap bytes); returns its
 * length, or 0 if cap < json.len + OT_EVENT_SEAL_OVERHEAD. */
size_t ot_event_seal(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str json, char *out,
                     size_t cap);
/* The 64 lower-case hex digits of that envelope's MAC alone, for a carrier
 * with a field of its own for it (the relay's Kafka header): the JSON is not
 * copied. 0, or OT_ERR (OpenSSL). */
int ot_event_seal_hex(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str json, char hex[64]);
/* Checks an envelope received on `channel` (constant-time MAC compare); on
 * success *json points at the event inside `msg`. OT_ERR: not an envelope or
 * the MAC does not match. */
int ot_event_open(const uint8_t key[OT_EVENT_MAC_KEY_LEN], ot_str channel, ot_str msg, ot_str *json);

/* Kafka: the relay seals each message's value on this channel and carries the
 * 64 hex digits of the MAC in this header, so a consumer that pushes to
 * dashboards (app/kafka_feed.c) takes only what a server with the secret
 * published, not what anyone allowed to produce to the topic wrote. */
#define OT_EVENT_KAFKA_CHANNEL "kafka"
#define OT_EVENT_SEAL_HEADER "seal"
#define OT_EVENT_SEAL_HEX 64

#endif
