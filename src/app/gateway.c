/* The WebSocket gateway: the upgrade of GET /ws/orders, and the ops that
 * connect the transport (http/ws.h) to the hub's modules. */
#include "ot/app/gateway.h"

#include <stdlib.h>

#include "ot/app/bearer.h"
#include "ot/app/hub_msg.h"
#include "ot/app/replay.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/http/ws_handshake.h"

static void client_text(ot_ws_conn *ws, const uint8_t *p, size_t n) { ot_hub_on_text(ws->data, p, n); }

static void client_drained(ot_ws_conn *ws)
{
    ot_hub_client *c = ws->data;
    if (c->replay)
        ot_hub_on_drained(c);
}

/* The socket died: everything the modules hold for the client goes, then the
 * index forgets it (and the worker may finish a drain). */
static void client_close(ot_ws_conn *ws)
{
    ot_hub_client *c = ws->data;
    ot_hub_msg_cancel(c);
    ot_hub_replay_cancel(c);
    ot_hub_detach(c->hub, c);
}

static size_t client_held(const ot_ws_conn *ws) { return ot_hub_held_bytes(ws->data); }

static void client_free(ot_ws_conn *ws)
{
    ot_hub_client *c = ws->data;
    free(c->subs);
    free(c);
}

static const ot_ws_ops client_ops = {
    .on_text = client_text,
    .on_drained = client_drained,
    .on_close = client_close,
    .held_bytes = client_held,
    .on_free = client_free,
};

static bool parse_since(ot_str s, int64_t *out)
{
    if (s.len == 0 || s.len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.base[i] < '0' || s.base[i] > '9')
            return false;
        v = v * 10 + (s.base[i] - '0');
    }
    *out = v;
    return true;
}

void ot_h_ws(ot_req *r)
{
    ot_hub *hub = r->data;
    const ot_config *cfg = ot_hub_cfg(hub);
    char accept[29];
    const char *why;
    int st = ot_ws_check_handshake(&r->head, accept, &why);
    if (st == 426) {
        ot_resp_header(r, "Sec-WebSocket-Version", "13");
        ot_respond_error(r, 426, "upgrade_required", "%s", why);
        return;
    }
    if (st) {
        ot_respond_error(r, 400, "bad_handshake", "%s", why);
        return;
    }
    /* Authenticate before upgrading, so a refusal is a plain HTTP answer. */
    char tok[OT_JWT_MAX_LEN];
    size_t toklen = 0;
    ot_jwt_claims cl;
    if (ot_ws_token(&r->head, tok, sizeof(tok), &toklen) < 0) {
        ot_resp_header(r, "WWW-Authenticate", "Bearer");
        ot_respond_error(r, 401, "unauthorized", "missing bearer token (Authorization header or access_token)");
        return;
    }
    int jr = ot_bearer_verify(cfg, ot_str_make(tok, toklen), &cl);
    if (jr != OT_JWT_OK) {
        ot_resp_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        ot_respond_error(r, 401, jr == OT_JWT_EEXPIRED ? "token_expired" : "invalid_token", "%s",
                         ot_jwt_strerror(jr));
        return;
    }
    int64_t since = -1;
    ot_str sv;
    if (ot_http_query_get(r->head.query, "since", &sv) && !parse_since(sv, &since)) {
        ot_respond_error(r, 400, "bad_request", "since must be a non-negative event sequence number");
        return;
    }
    if (!ot_hub_accepting(hub)) {
        ot_resp_header(r, "Retry-After", "1");
        ot_respond_error(r, 503, "unavailable", "not accepting WebSocket connections now");
        return;
    }
    /* Caps per user and per IP, checked before the upgrade so a refusal is a
     * plain 429 the client can back off from (Retry-After). */
    ot_hub_slot *slots[2];
    int over = ot_hub_admit(hub, cl.sub, strlen(cl.sub), r->remote_key, r->remote_key_len, slots);
    if (over) {
        ot_resp_header(r, "Retry-After", "5");
        if (over == OT_HUB_OVER_USER)
            ot_respond_error(r, 429, "too_many_connections", "at most %u open WebSockets per user",
                             (unsigned)cfg->ws_max_per_user);
        else
            ot_respond_error(r, 429, "too_many_connections", "at most %u open WebSockets per client address",
                             (unsigned)cfg->ws_max_per_ip);
        return;
    }
    char resp[192];
    int rn = ot_ws_101(accept, resp, sizeof(resp));
    ot_hub_client *c = rn > 0 ? calloc(1, sizeof(*c)) : NULL;
    ot_wsbuf *hello = c ? ot_wsbuf_raw(ot_str_make(resp, (size_t)rn)) : NULL;
    if (!c || !hello) {
        free(c);
        ot_wsbuf_unref(hello);
        ot_hub_release(hub, slots);
        ot_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    /* r dies with the HTTP connection at takeover: log and count first. */
    uint64_t dur = ot_now_us() - r->start_us;
    ot_metrics_http(r->route, 101, dur, (uint64_t)rn);
    ot_log_access(r->head.method, r->head.path, 101, (uint64_t)rn, dur, ot_str_c(r->remote));
    ot_buf left = OT_BUF_INIT;
    ot_io io;
    ot_http_takeover(r, &io, &left);

    ot_ws_conn_init(ot_hub_transport(hub), &c->ws, &client_ops, c, io);
    c->hub = hub;
    c->user_slot = slots[0];
    c->ip_slot = slots[1];
    size_t sl = strlen(cl.sub); /* our own NUL-terminated copy, <= OT_JWT_SUB_MAX */
    memcpy(c->sub, cl.sub, sl + 1);
    c->sub_len = (uint8_t)sl;
    c->role = cl.role;
    c->exp = cl.exp;
    ot_hub_attach(hub, c);
    int rc = ot_ws_open(&c->ws, hello, &left);
    ot_buf_free(&left);
    if (rc == 0 && since >= 0 && c->ws.state == OT_WS_OPEN)
        ot_hub_resume(c, since);
}
