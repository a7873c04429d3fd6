/* The hub's client messages: pure, no loop, no socket (fuzzed by
 * tests/fuzz/fuzz_hub_msg.c). */
#include "ot/codec/clientmsg.h"

#include <string.h>

#include "ot/codec/json.h"

static ot_hub_msg_kind invalid(ot_hub_msg *m, const char *code, const char *msg)
{
    m->error = code;
    m->message = msg;
    return OT_HUB_MSG_INVALID;
}

ot_hub_msg_kind ot_hub_parse_msg(ot_str text, ot_hub_msg *m, char *tok, size_t tokcap)
{
    memset(m, 0, sizeof(*m));
    /* Valid messages are flat objects of two members: a few tokens suffice,
     * and anything needing more is not one of ours. */
    ot_json_tok toks[16];
    ot_json d;
    if (ot_json_parse(&d, text.base, text.len, toks, (int)OT_ARRAY_LEN(toks)) < 0 || !ot_json_is_obj(&d, 0))
        return invalid(m, "bad_request", "expected a JSON object with an action");
    int a = ot_json_obj_get(&d, 0, "action");
    if (a < 0 || !ot_json_is_str(&d, a))
        return invalid(m, "bad_request", "missing action");
    if (ot_json_str_eq(&d, a, "subscribe") || ot_json_str_eq(&d, a, "unsubscribe")) {
        int t = ot_json_obj_get(&d, 0, "orderId");
        char buf[40];
        size_t n;
        if (t < 0 || ot_json_get_str_buf(&d, t, buf, sizeof(buf), &n) < 0 ||
            ot_uuid_to_bytes(ot_str_make(buf, n), m->order_id) < 0)
            return invalid(m, "bad_request", "orderId must be a UUID");
        return ot_json_str_eq(&d, a, "subscribe") ? OT_HUB_MSG_SUBSCRIBE : OT_HUB_MSG_UNSUBSCRIBE;
    }
    if (ot_json_str_eq(&d, a, "auth")) {
        int t = ot_json_obj_get(&d, 0, "token");
        if (t < 0 || ot_json_get_str_buf(&d, t, tok, tokcap, &m->token_len) < 0 || m->token_len == 0)
            return invalid(m, "bad_request", "token must be a non-empty string");
        return OT_HUB_MSG_AUTH;
    }
    if (ot_json_str_eq(&d, a, "resume")) {
        int t = ot_json_obj_get(&d, 0, "since");
        if (t < 0 || ot_json_get_int64(&d, t, &m->since) < 0 || m->since < 0)
            return invalid(m, "bad_request", "since must be a non-negative integer");
        return OT_HUB_MSG_RESUME;
    }
    if (ot_json_str_eq(&d, a, "ping"))
        return OT_HUB_MSG_PING;
    return invalid(m, "unknown_action", "action must be subscribe, unsubscribe, auth, resume or ping");
}

