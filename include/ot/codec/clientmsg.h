/* What a WebSocket client may send the hub ({"action":...}) and the UUIDs in
 * it: pure parsing, shared by the hub and its fuzz target. */
#ifndef OT_CLIENTMSG_H
#define OT_CLIENTMSG_H

#include "ot/codec/uuid.h" /* the ids in it: ot_uuid_to_bytes / ot_uuid_to_text */
#include "ot/core/common.h"

typedef enum {
    OT_HUB_MSG_INVALID = -1, /* not JSON, no/unknown action, bad field: m->error says why */
    OT_HUB_MSG_SUBSCRIBE = 1,
    OT_HUB_MSG_UNSUBSCRIBE,
    OT_HUB_MSG_AUTH,
    OT_HUB_MSG_RESUME,
    OT_HUB_MSG_PING,
} ot_hub_msg_kind;

typedef struct {
    uint8_t order_id[16];  /* subscribe / unsubscribe */
    size_t token_len;      /* auth: token in the caller's buffer */
    int64_t since;         /* resume */
    const char *error;     /* code for {"event":"error"} when INVALID */
    const char *message;
} ot_hub_msg;

/* Parses one client message ({"action":...}). The token of an auth message is
 * unescaped into tok[0..tokcap). */
ot_hub_msg_kind ot_hub_parse_msg(ot_str text, ot_hub_msg *m, char *tok, size_t tokcap);

#endif
