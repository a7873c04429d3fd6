/* The client's messages on its socket: subscribe / unsubscribe, auth,
 * resume, ping. See hub_msg.h. */
#include "ot/app/hub_msg.h"

#include <stdio.h>
#include <stdlib.h>

#include "ot/app/bearer.h"
#include "ot/app/replay.h"

#define OT_STR_(x) #x
#define OT_XSTR(x) OT_STR_(x)

const ot_pg_stmt ot_hub_msg_stmts[] = {
    { "hub_order_owner", "SELECT user_id::text FROM orders WHERE id = $1::uuid", 1, true },
};
const size_t ot_hub_msg_nstmts = OT_ARRAY_LEN(ot_hub_msg_stmts);

/* A subscribe waiting for the database to name the order's owner. */
struct ot_hub_subq {
    ot_hub_subq *next;
    ot_hub_client *c;
    ot_pg_query *q;
    uint8_t id[16];
};

static void send_order_ack(ot_hub_client *c, const char *event, const uint8_t oid[16])
{
    char ids[37];
    ot_uuid_to_text(oid, ids);
    ot_hub_send_fmt(c, "{\"event\":\"%s\",\"data\":{\"orderId\":\"%s\"}}", event, ids);
}

/* ---------------------------------------------------------------- subscribe / unsubscribe */

static int add_sub(ot_hub_client *c, const uint8_t id[16])
{
    if (ot_hub_has_sub(c, id))
        return 0;
    if (c->nsubs >= OT_HUB_MAX_SUBS)
        return OT_ERR;
    if (c->nsubs == c->subs_cap) {
        int n = c->subs_cap ? c->subs_cap * 2 : 4;
        if (n > OT_HUB_MAX_SUBS)
            n = OT_HUB_MAX_SUBS;
        void *p = realloc(c->subs, (size_t)n * 16);
        if (!p)
            return OT_ERR;
        c->subs = p;
        c->subs_cap = (uint8_t)n;
    }
    memcpy(c->subs[c->nsubs++], id, 16);
    return 0;
}

static void del_sub(ot_hub_client *c, const uint8_t id[16])
{
    for (int i = 0; i < c->nsubs; i++) {
        if (memcmp(c->subs[i], id, 16) == 0) {
            memcpy(c->subs[i], c->subs[c->nsubs - 1], 16);
            c->nsubs--;
            break;
        }
    }
    if (c->nsubs == 0) {
        free(c->subs);
        c->subs = NULL;
        c->subs_cap = 0;
    }
}

static void on_owner(void *data, int status, PGresult *res)
{
    ot_hub_subq *q = data, **pp;
    ot_hub_client *c = q->c;
    for (pp = &c->subq; *pp && *pp != q; pp = &(*pp)->next) {
    }
    if (*pp)
        *pp = q->next;
    c->nsubq--;
    if (status != OT_PG_OK) {
        ot_hub_send_error(c, "unavailable", "could not check the order, try again", q->id);
    } else if (PQntuples(res) != 1 ||
               (c->role != OT_ROLE_ADMIN && ((size_t)PQgetlength(res, 0, 0) != c->sub_len ||
                                             memcmp(PQgetvalue(res, 0, 0), c->sub, c->sub_len) != 0))) {
        /* A foreign order looks exactly like a missing one: no existence oracle. */
        ot_hub_send_error(c, "not_found", "no such order", q->id);
    } else if (add_sub(c, q->id) < 0) {
        ot_hub_send_error(c, "too_many_subscriptions", "at most " OT_XSTR(OT_HUB_MAX_SUBS) " subscriptions", q->id);
    } else {
        send_order_ack(c, "subscribed", q->id);
    }
    free(q);
}

static void subscribe(ot_hub_client *c, const uint8_t id[16])
{
    ot_pg *pg = ot_hub_pg(c->hub);
    if (ot_hub_has_sub(c, id)) {
        send_order_ack(c, "subscribed", id);
        return;
    }
    if (c->nsubs + c->nsubq >= OT_HUB_MAX_SUBS) {
        ot_hub_send_error(c, "too_many_subscriptions", "at most " OT_XSTR(OT_HUB_MAX_SUBS) " subscriptions", id);
        return;
    }
    if (c->nsubq >= OT_HUB_MAX_SUBQ) {
        ot_hub_send_error(c, "too_many_requests", "wait for the pending subscriptions to be answered", id);
        return;
    }
    if (!pg) {
        ot_hub_send_error(c, "unavailable", "no database", id);
        return;
    }
    ot_hub_subq *q = calloc(1, sizeof(*q));
    if (!q) {
        ot_hub_send_error(c, "internal", "out of memory", id);
        return;
    }
    q->c = c;
    memcpy(q->id, id, 16);
    char ids[37];
    ot_uuid_to_text(id, ids);
    const char *vals[1] = { ids };
    q->q = ot_pg_exec(pg, "hub_order_owner", 1, vals, NULL, on_owner, q);
    if (!q->q) {
        free(q);
        ot_hub_send_error(c, "internal", "out of memory", id);
        return;
    }
    q->next = c->subq;
    c->subq = q;
    c->nsubq++;
}

/* ---------------------------------------------------------------- auth */

static void reauth(ot_hub_client *c, const char *tok, size_t len)
{
    ot_jwt_claims cl;
    int rc = ot_bearer_verify(ot_hub_cfg(c->hub), ot_str_make(tok, len), &cl);
    /* EUNVERIFIED: signed by us, its user not cached here; the owner check
     * comes first so another user's token is still named as such. */
    if (rc != OT_JWT_OK && rc != OT_JWT_EUNVERIFIED) {
        ot_hub_send_error(c, rc == OT_JWT_EEXPIRED ? "token_expired" : "invalid_token", ot_jwt_strerror(rc), NULL);
        return;
    }
    size_t sl = strlen(cl.sub);
    ot_hub_normalize_sub(cl.sub, &sl);
    if (sl != c->sub_len || memcmp(cl.sub, c->sub, sl) != 0) {
        ot_hub_send_error(c, "forbidden", "the token belongs to another user", NULL);
        return;
    }
    if (rc != OT_JWT_OK) {
        ot_hub_send_error(c, "invalid_token", ot_jwt_strerror(rc), NULL);
        return;
    }
    ot_hub_set_role(c, cl.role);
    c->exp = cl.exp;
    ot_hub_arm_expiry(c);
    ot_hub_send_fmt(c, "{\"event\":\"authenticated\",\"data\":{\"role\":\"%s\",\"exp\":%lld}}", ot_role_name(c->role),
             (long long)c->exp);
}

bool ot_hub_bucket_take(double *tokens, uint64_t *last_ms, uint64_t now_ms, double rate, double burst)
{
    if (!(rate > 0))
        return true;
    if (!(burst >= 1))
        burst = 1;
    if (*last_ms == 0) {
        *tokens = burst;
        *last_ms = now_ms ? now_ms : 1;
    } else if (now_ms > *last_ms) {
        *tokens += (double)(now_ms - *last_ms) * rate / 1000.0;
        if (*tokens > burst)
            *tokens = burst;
        *last_ms = now_ms;
    }
    if (*tokens < 1.0)
        return false;
    *tokens -= 1.0;
    return true;
}

/* Actions that cost a query or a signature check go through the socket's
 * bucket; refused ones get an error, and a client that keeps going while
 * refused (burst refusals in a row) is closed 1008. */
static bool action_allowed(ot_hub_client *c)
{
    const ot_config *cfg = ot_hub_cfg(c->hub);
    if (ot_hub_bucket_take(&c->tokens, &c->tokens_ms, ot_loop_now_ms(ot_hub_loop(c->hub)), cfg->ws_rate, cfg->ws_rate_burst)) {
        c->refused = 0;
        return true;
    }
    if (c->refused < UINT16_MAX)
        c->refused++;
    if (c->refused >= (cfg->ws_rate_burst >= 1 ? cfg->ws_rate_burst : 1)) {
        ot_ws_close(&c->ws, 1008, "rate limit exceeded");
        return false;
    }
    ot_hub_send_error(c, "rate_limited", "too many actions on this socket; slow down", NULL);
    return false;
}

void ot_hub_on_text(ot_hub_client *c, const uint8_t *p, size_t n)
{
    char tok[OT_JWT_MAX_LEN];
    ot_hub_msg m;
    ot_hub_msg_kind kind = ot_hub_parse_msg(ot_str_make((const char *)p, n), &m, tok, sizeof(tok));
    if (kind != OT_HUB_MSG_INVALID && kind != OT_HUB_MSG_PING && !action_allowed(c))
        return;
    switch (kind) {
    case OT_HUB_MSG_SUBSCRIBE:
        subscribe(c, m.order_id);
        break;
    case OT_HUB_MSG_UNSUBSCRIBE:
        del_sub(c, m.order_id);
        send_order_ack(c, "unsubscribed", m.order_id);
        break;
    case OT_HUB_MSG_AUTH:
        reauth(c, tok, m.token_len);
        break;
    case OT_HUB_MSG_RESUME:
        ot_hub_resume(c, m.since);
        break;
    case OT_HUB_MSG_PING:
        ot_ws_send_text(&c->ws, OT_STR("{\"event\":\"pong\",\"data\":{}}"));
        break;
    default:
        ot_hub_send_error(c, m.error, m.message, NULL);
        break;
    }
}

void ot_hub_msg_cancel(ot_hub_client *c)
{
    while (c->subq) {
        ot_hub_subq *q = c->subq;
        c->subq = q->next;
        ot_pg_cancel(q->q);
        free(q);
    }
    c->nsubq = 0;
}
