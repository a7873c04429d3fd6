/* libFuzzer: the hub's client messages (ot_hub_parse_msg) and UUIDs on
 * arbitrary bytes. Invariants (abort on violation): every verdict is
 * complete (an INVALID carries a code and a message; AUTH a non-empty token
 * that fits; RESUME a non-negative since); a parsed message, written back out
 * canonically, parses to the same thing; a UUID round-trips through its
 * canonical spelling, which equals the input lower-cased. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/clientmsg.h"
#include "ot/codec/json.h"

#define TOKCAP 256

static void check_uuid(const uint8_t *data, size_t size)
{
    uint8_t id[16], id2[16];
    char txt[37];
    if (ot_uuid_to_bytes(ot_str_make((const char *)data, size), id) < 0)
        return;
    ot_uuid_to_text(id, txt);
    if (size != 36 || ot_uuid_to_bytes(ot_str_make(txt, 36), id2) < 0 || memcmp(id, id2, 16) != 0)
        abort();
    for (size_t i = 0; i < 36; i++)
        if (txt[i] != (char)tolower(data[i]))
            abort();
}

/* The canonical form of a parsed message. */
static size_t rewrite(ot_hub_msg_kind k, const ot_hub_msg *m, const char *tok, char *out, size_t cap)
{
    char ids[37];
    ot_buf b = OT_BUF_INIT;
    ot_jw jw;
    size_t n = 0;
    switch (k) {
    case OT_HUB_MSG_SUBSCRIBE:
    case OT_HUB_MSG_UNSUBSCRIBE:
        ot_uuid_to_text(m->order_id, ids);
        n = (size_t)snprintf(out, cap, "{\"action\":\"%s\",\"orderId\":\"%s\"}",
                             k == OT_HUB_MSG_SUBSCRIBE ? "subscribe" : "unsubscribe", ids);
        break;
    case OT_HUB_MSG_RESUME:
        n = (size_t)snprintf(out, cap, "{\"action\":\"resume\",\"since\":%lld}", (long long)m->since);
        break;
    case OT_HUB_MSG_PING:
        n = (size_t)snprintf(out, cap, "{\"action\":\"ping\"}");
        break;
    case OT_HUB_MSG_AUTH:
        /* The token may hold any unescaped bytes: let the JSON writer escape it. */
        ot_jw_init(&jw, &b);
        ot_jw_obj_open(&jw);
        ot_jw_key_str(&jw, OT_STR("action"));
        ot_jw_str(&jw, OT_STR("auth"));
        ot_jw_key_str(&jw, OT_STR("token"));
        ot_jw_str(&jw, ot_str_make(tok, m->token_len));
        ot_jw_obj_close(&jw);
        if (ot_jw_error(&jw) != 0 || b.len >= cap)
            abort();
        memcpy(out, b.data, b.len);
        n = b.len;
        ot_buf_free(&b);
        break;
    default:
        abort();
    }
    if (n >= cap)
        abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_uuid(data, size);
    ot_hub_msg m, m2;
    static char tok[TOKCAP], tok2[TOKCAP];
    ot_hub_msg_kind k = ot_hub_parse_msg(ot_str_make((const char *)data, size), &m, tok, sizeof(tok));
    switch (k) {
    case OT_HUB_MSG_INVALID:
        if (!m.error || !m.message || !*m.error || !*m.message)
            abort();
        return 0;
    case OT_HUB_MSG_AUTH:
        if (m.token_len == 0 || m.token_len > sizeof(tok))
            abort();
        break;
    case OT_HUB_MSG_RESUME:
        if (m.since < 0)
            abort();
        break;
    case OT_HUB_MSG_SUBSCRIBE:
    case OT_HUB_MSG_UNSUBSCRIBE:
    case OT_HUB_MSG_PING:
        break;
    default:
        abort();
    }
    char out[8 * TOKCAP];
    size_t n = rewrite(k, &m, tok, out, sizeof(out));
    if (ot_hub_parse_msg(ot_str_make(out, n), &m2, tok2, sizeof(tok2)) != k)
        abort();
    if (memcmp(m.order_id, m2.order_id, 16) != 0 || m.since != m2.since || m.token_len != m2.token_len ||
        (m.token_len && memcmp(tok, tok2, m.token_len) != 0))
        abort();
    return 0;
}
