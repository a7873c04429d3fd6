/* The WebSocket gateway: pure helpers (handshake checks, tokens, client
 * messages, UUIDs, shared frames and queues), then the real connection code
 * driven over a socketpair on a real loop, without a database. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ot/cmd/app.h"
#include "ot/http/http.h"
#include "ot/app/hub.h"
#include "ot/codec/jwt.h"
#include "ot/http/ws.h"
#include "ot/http/ws_handshake.h"
#include "ot/app/gateway.h"
#include "ot/app/hub_msg.h"
#include "ot/app/replay.h"

/* ------------------------------------------------------------------ handshake (pure) */

static char head_buf[4096];
static ot_http_header head_hdrs[32];

static ot_http_request parse_head(const char *raw)
{
    ot_http_request h;
    snprintf(head_buf, sizeof(head_buf), "%s", raw);
    memset(&h, 0, sizeof(h));
    h.headers = head_hdrs;
    h.num_headers = OT_ARRAY_LEN(head_hdrs);
    int rc = ot_http_parse_request(head_buf, strlen(head_buf), &h, NULL);
    cr_assert_gt(rc, 0, "test request must parse: %d", rc);
    return h;
}

#define GOOD_HEAD(extra)                                                                                             \
    "GET /ws/orders HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"                \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" extra "\r\n"

Test(ws_handshake, accepts_rfc_example_and_computes_accept_key)
{
    ot_http_request h = parse_head(GOOD_HEAD("Sec-WebSocket-Version: 13\r\n"));
    char acc[29];
    const char *why;
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 0);
    cr_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 §1.3 */
}

Test(ws_handshake, missing_or_other_version_is_426)
{
    char acc[29];
    const char *why;
    ot_http_request h = parse_head(GOOD_HEAD(""));
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 426);
    h = parse_head(GOOD_HEAD("Sec-WebSocket-Version: 8\r\n"));
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 426);
    h = parse_head(GOOD_HEAD("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n"));
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 426);
}

Test(ws_handshake, bad_key_method_version_or_upgrade_is_400)
{
    char acc[29];
    const char *why;
    ot_http_request h = parse_head("GET /ws/orders HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n");
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 400);
    h = parse_head(GOOD_HEAD("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 400, "two keys");
    h = parse_head("POST /ws/orders HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 400);
    h = parse_head("GET /ws/orders HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 400, "no Upgrade header");
    h = parse_head("GET /ws/orders HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    cr_assert_eq(ot_ws_check_handshake(&h, acc, &why), 400, "HTTP/1.0");
}

Test(ws_token, bearer_header_wins_and_scheme_is_case_insensitive)
{
    char tok[64];
    size_t n;
    ot_http_request h = parse_head("GET /ws/orders?access_token=q HTTP/1.1\r\nHost: x\r\nAuthorization: bEaReR abc.def\r\n\r\n");
    cr_assert_eq(ot_ws_token(&h, tok, sizeof(tok), &n), 0);
    cr_assert_eq(n, 7);
    cr_assert_eq(memcmp(tok, "abc.def", 7), 0);
    h = parse_head("GET /ws/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Basic abc\r\n\r\n");
    cr_assert_eq(ot_ws_token(&h, tok, sizeof(tok), &n), OT_ERR);
}

Test(ws_token, query_token_is_percent_decoded_and_required)
{
    char tok[64];
    size_t n;
    ot_http_request h = parse_head("GET /ws/orders?since=4&access_token=a%2Eb HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(ot_ws_token(&h, tok, sizeof(tok), &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(tok, "a.b", 3), 0);
    h = parse_head("GET /ws/orders?access_token= HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(ot_ws_token(&h, tok, sizeof(tok), &n), OT_ERR);
    h = parse_head("GET /ws/orders HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(ot_ws_token(&h, tok, sizeof(tok), &n), OT_ERR);
}

/* ------------------------------------------------------------------ client messages, UUIDs */

#define OID "0b6f3a2e-8c1d-4e5f-9a7b-1c2d3e4f5a6b"

Test(hub_msg, subscribe_and_unsubscribe_carry_the_order_id)
{
    ot_hub_msg m;
    char tok[16];
    uint8_t want[16];
    cr_assert_eq(ot_uuid_to_bytes(OT_STR(OID), want), 0);
    cr_assert_eq(ot_hub_parse_msg(OT_STR("{\"action\":\"subscribe\",\"orderId\":\"" OID "\"}"), &m, tok, sizeof(tok)),
                 OT_HUB_MSG_SUBSCRIBE);
    cr_assert_eq(memcmp(m.order_id, want, 16), 0);
    cr_assert_eq(ot_hub_parse_msg(OT_STR("{\"orderId\":\"" OID "\",\"action\":\"unsubscribe\"}"), &m, tok, sizeof(tok)),
                 OT_HUB_MSG_UNSUBSCRIBE);
    cr_assert_eq(memcmp(m.order_id, want, 16), 0);
}

Test(hub_msg, auth_resume_ping)
{
    ot_hub_msg m;
    char tok[16];
    cr_assert_eq(ot_hub_parse_msg(OT_STR("{\"action\":\"auth\",\"token\":\"a.b\\u002ec\"}"), &m, tok, sizeof(tok)),
                 OT_HUB_MSG_AUTH);
    cr_assert_eq(m.token_len, 5);
    cr_assert_eq(memcmp(tok, "a.b.c", 5), 0);
    cr_assert_eq(ot_hub_parse_msg(OT_STR("{\"action\":\"resume\",\"since\":42}"), &m, tok, sizeof(tok)),
                 OT_HUB_MSG_RESUME);
    cr_assert_eq(m.since, 42);
    cr_assert_eq(ot_hub_parse_msg(OT_STR("{\"action\":\"ping\"}"), &m, tok, sizeof(tok)), OT_HUB_MSG_PING);
}

Test(hub_msg, malformed_messages_are_invalid_with_a_reason)
{
    ot_hub_msg m;
    char tok[8];
    static const char *bad[] = {
        "not json",
        "[1,2]",
        "{\"action\":1}",
        "{\"orderId\":\"" OID "\"}",
        "{\"action\":\"subscribe\",\"orderId\":\"nope\"}",
        "{\"action\":\"subscribe\",\"orderId\":\"" OID "x\"}",
        "{\"action\":\"resume\",\"since\":-1}",
        "{\"action\":\"resume\",\"since\":1.5}",
        "{\"action\":\"auth\",\"token\":\"\"}",
        "{\"action\":\"auth\",\"token\":\"longer-than-cap\"}",
        "{\"action\":\"subscribe\",\"action\":\"unsubscribe\",\"orderId\":\"" OID "\"}",
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        cr_assert_eq(ot_hub_parse_msg(ot_str_c(bad[i]), &m, tok, sizeof(tok)), OT_HUB_MSG_INVALID, "%s", bad[i]);
        cr_assert_str_eq(m.error, "bad_request", "%s", bad[i]);
    }
    cr_assert_eq(ot_hub_parse_msg(OT_STR("{\"action\":\"dance\"}"), &m, tok, sizeof(tok)), OT_HUB_MSG_INVALID);
    cr_assert_str_eq(m.error, "unknown_action");
}

Test(uuid, parses_either_case_and_formats_lower)
{
    uint8_t id[16];
    char out[37];
    cr_assert_eq(ot_uuid_to_bytes(OT_STR("0B6F3A2E-8C1D-4E5F-9A7B-1C2D3E4F5A6B"), id), 0);
    ot_uuid_to_text(id, out);
    cr_assert_str_eq(out, OID);
    cr_assert_eq(ot_uuid_to_bytes(OT_STR("0b6f3a2e8c1d-4e5f-9a7b-1c2d3e4f5a6b0"), id), OT_ERR);
    cr_assert_eq(ot_uuid_to_bytes(OT_STR("0b6f3a2e-8c1d-4e5f-9a7b-1c2d3e4f5a6g"), id), OT_ERR);
    cr_assert_eq(ot_uuid_to_bytes(OT_STR("0b6f3a2e-8c1d-4e5f-9a7b-1c2d3e4f5a6"), id), OT_ERR);
}

/* ------------------------------------------------------------------ shared frames and queues */

Test(wsbuf, frame_is_header_plus_concatenated_payload)
{
    ot_wsbuf *b = ot_wsbuf_frame(OT_WS_OP_TEXT, OT_STR("{\"a\":"), OT_STR("1"), OT_STR("}"));
    cr_assert_not_null(b);
    cr_assert_eq(b->len, 2 + 7);
    cr_assert_eq(b->data[0], 0x81);
    cr_assert_eq(b->data[1], 7);
    cr_assert_eq(memcmp(b->data + 2, "{\"a\":1}", 7), 0);
    char big[300];
    memset(big, 'x', sizeof(big));
    ot_wsbuf *l = ot_wsbuf_frame(OT_WS_OP_TEXT, ot_str_make(big, sizeof(big)), OT_STR_NULL, OT_STR_NULL);
    cr_assert_eq(l->len, 4 + 300);
    cr_assert_eq(l->data[1], 126);
    ot_wsbuf_unref(b);
    ot_wsbuf_unref(l);
}

Test(wsq, fifo_order_survives_wraparound_and_growth)
{
    ot_wsq q = { 0 };
    ot_wsbuf *bufs[40];
    for (int i = 0; i < 40; i++) {
        char s[8];
        int n = snprintf(s, sizeof(s), "%d", i);
        bufs[i] = ot_wsbuf_raw(ot_str_make(s, (size_t)n));
    }
    int next_in = 0, next_out = 0;
    size_t bytes = 0;
    /* Interleave pushes and pops so head wraps before the ring grows. */
    for (int round = 0; round < 10; round++) {
        for (int k = 0; k < 4 && next_in < 40; k++) {
            cr_assert_eq(ot_wsq_push(&q, ot_wsbuf_ref(bufs[next_in])), 0);
            bytes += bufs[next_in++]->len;
        }
        for (int k = 0; k < 1 + round % 3 && q.len; k++) {
            ot_wsbuf *b = ot_wsq_pop(&q);
            cr_assert_eq(b, bufs[next_out], "element %d out of order", next_out);
            bytes -= bufs[next_out++]->len;
            ot_wsbuf_unref(b);
        }
        cr_assert_eq(q.bytes, bytes);
    }
    ot_wsq_clear(&q);
    cr_assert_eq(q.len, 0);
    cr_assert_eq(q.bytes, 0);
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(bufs[i]->refs, 1, "queue must drop exactly its references");
        ot_wsbuf_unref(bufs[i]);
    }
}

/* ------------------------------------------------------------------ live sockets over a socketpair */

#define SECRET "unit-secret"
#define USER_A "11111111-1111-4111-8111-111111111111"
#define USER_B "22222222-2222-4222-8222-222222222222"

static ot_config cfg;
static ot_http_server wk;
static ot_app app;

/* The worker's rule (cmd/app.c): WebSockets and HTTP connections share its fd budget. */
static bool worker_room(void *data, int open)
{
    ot_http_server *w = data;
    return !w->draining && open + w->nconns <= w->max_conns;
}

static void setup_worker(void)
{
    ot_config_defaults(&cfg);
    cfg.jwt_secret = SECRET;
    cfg.ws_max_message = 1024;
    cfg.ws_max_queue = 64 * 1024;
    memset(&wk, 0, sizeof(wk));
    memset(&app, 0, sizeof(app));
    wk.cfg = &cfg;
    wk.loop = ot_loop_new(1024);
    wk.max_conns = 100;
    ot_router_init(&wk.router);
    app.hub = ot_hub_new(&(ot_hub_env){ .loop = wk.loop, .cfg = &cfg, .room = worker_room, .data = &wk });
    ot_router_add(&wk.router, "GET", "/ws/orders", "ws", ot_h_ws, app.hub);
    cr_assert_not_null(app.hub);
}

static void teardown_worker(void)
{
    ot_hub_free(app.hub);
    ot_loop_free(wk.loop);
}

static void spin(int rounds)
{
    for (int i = 0; i < rounds; i++)
        ot_loop_run_once(wk.loop, 5);
}

static char *token(const char *sub, ot_role role, int64_t ttl)
{
    ot_jwt_claims c = { 0 };
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    c.role = role;
    c.iat = time(NULL);
    c.exp = c.iat + ttl;
    ot_buf b = OT_BUF_INIT;
    cr_assert_eq(ot_jwt_sign(OT_STR(SECRET), &c, &b), 0);
    ot_buf_append(&b, "", 1);
    return b.data;
}

/* Reads what the server sent within a few loop turns. */
static size_t drain_client(int fd, uint8_t *out, size_t cap)
{
    size_t got = 0;
    for (int i = 0; i < 20; i++) {
        spin(1);
        ssize_t n;
        while (got < cap && (n = read(fd, out + got, cap - got)) > 0)
            got += (size_t)n;
    }
    return got;
}

/* Opens a socket through the real HTTP layer; returns the client fd. */
static int ws_open(const char *sub, ot_role role, int64_t ttl)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct sockaddr sa = { .sa_family = AF_UNIX };
    ot_http_conn_new(&wk, sv[0], &sa, sizeof(sa));
    char *t = token(sub, role, ttl);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws/orders?access_token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     t);
    free(t);
    cr_assert_eq(write(sv[1], req, (size_t)n), n);
    uint8_t resp[512];
    size_t got = drain_client(sv[1], resp, sizeof(resp));
    cr_assert_gt(got, 12);
    cr_assert_eq(memcmp(resp, "HTTP/1.1 101 ", 13), 0, "%.*s", (int)got, resp);
    return sv[1];
}

/* Sends a masked client frame. */
static void send_frame(int fd, uint8_t b0, const void *payload, size_t n, bool masked)
{
    uint8_t f[2048];
    size_t h = 0;
    f[h++] = b0;
    if (n < 126) {
        f[h++] = (uint8_t)((masked ? 0x80 : 0) | n);
    } else {
        f[h++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        f[h++] = (uint8_t)(n >> 8);
        f[h++] = (uint8_t)n;
    }
    uint8_t mask[4] = { 1, 2, 3, 4 };
    if (masked) {
        memcpy(f + h, mask, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++)
        f[h + i] = ((const uint8_t *)payload)[i] ^ (masked ? mask[i & 3] : 0);
    cr_assert_eq(write(fd, f, h + n), (ssize_t)(h + n));
}

/* First server frame in buf: opcode, payload. */
static int first_frame(const uint8_t *buf, size_t n, const uint8_t **payload, size_t *plen)
{
    cr_assert_geq(n, 2);
    size_t h = 2, len = buf[1] & 0x7f;
    if (len == 126) {
        len = (size_t)buf[2] << 8 | buf[3];
        h = 4;
    }
    cr_assert_geq(n, h + len);
    *payload = buf + h;
    *plen = len;
    return buf[0] & 0x0f;
}

static uint16_t close_code_of(int fd)
{
    uint8_t buf[4096];
    const uint8_t *p;
    size_t n = drain_client(fd, buf, sizeof(buf)), pl;
    /* Skip non-close frames. */
    size_t off = 0;
    while (off < n) {
        int op = first_frame(buf + off, n - off, &p, &pl);
        if (op == OT_WS_OP_CLOSE)
            return pl >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
        off = (size_t)(p - buf) + pl;
    }
    return 0;
}

static void fake_event(int64_t seq, const char *user, const char *order)
{
    char json[512];
    int n = snprintf(json, sizeof(json),
                     "{\"seq\":%lld,\"version\":1,\"orderId\":\"%s\",\"userId\":\"%s\",\"type\":\"order.created\","
                     "\"status\":\"CREATED\"}",
                     (long long)seq, order, user);
    ot_event ev;
    cr_assert_eq(ot_event_parse(ot_str_make(json, (size_t)n), &ev), 0);
    ev.seen_us = ot_now_us();
    ot_hub_event(app.hub, &ev);
}

static bool received_seq(int fd, int64_t seq)
{
    uint8_t buf[8192];
    size_t n = drain_client(fd, buf, sizeof(buf) - 1);
    buf[n] = 0;
    char want[64];
    snprintf(want, sizeof(want), "\"seq\":%lld,", (long long)seq);
    return n > 0 && memmem(buf, n, want, strlen(want)) != NULL;
}

TestSuite(ws_live, .init = setup_worker, .fini = teardown_worker);

Test(ws_live, customer_sees_only_own_events_admin_sees_all)
{
    int a = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    int b = ws_open(USER_B, OT_ROLE_CUSTOMER, 3600);
    int adm = ws_open("33333333-3333-4333-8333-333333333333", OT_ROLE_ADMIN, 3600);
    cr_assert_eq(ot_hub_count(app.hub), 3);
    fake_event(7, USER_A, OID);
    cr_assert(received_seq(a, 7));
    cr_assert_not(received_seq(b, 7), "customer B must not see A's order");
    cr_assert(received_seq(adm, 7));
    close(a);
    close(b);
    close(adm);
    spin(5);
    cr_assert_eq(ot_hub_count(app.hub), 0);
}

Test(ws_live, ping_is_answered_with_pong_echoing_payload)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    send_frame(fd, 0x89, "hi", 2, true);
    uint8_t buf[256];
    const uint8_t *p;
    size_t pl, n = drain_client(fd, buf, sizeof(buf));
    cr_assert_eq(first_frame(buf, n, &p, &pl), OT_WS_OP_PONG);
    cr_assert_eq(pl, 2);
    cr_assert_eq(memcmp(p, "hi", 2), 0);
    close(fd);
}

Test(ws_live, close_is_echoed_then_tcp_closed)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    uint8_t code[2] = { 0x0f, 0xa0 }; /* 4000 */
    send_frame(fd, 0x88, code, 2, true);
    cr_assert_eq(close_code_of(fd), 4000);
    /* The server half-closed after its Close frame: we read EOF. */
    uint8_t tmp[16];
    cr_assert_eq(read(fd, tmp, sizeof(tmp)), 0);
    close(fd);
    spin(3);
    cr_assert_eq(ot_hub_count(app.hub), 0);
}

Test(ws_live, unmasked_frame_is_1002)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    send_frame(fd, 0x81, "{}", 2, false);
    cr_assert_eq(close_code_of(fd), 1002);
    close(fd);
}

Test(ws_live, invalid_utf8_split_across_fragments_is_1007)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    send_frame(fd, 0x01, "{\"a\":\"\xe2\x82", 8, true); /* text, FIN=0, ends mid-sequence: fine so far */
    send_frame(fd, 0x80, "(\"}", 3, true);               /* continuation: 0x28 cannot continue it */
    cr_assert_eq(close_code_of(fd), 1007);
    close(fd);
}

Test(ws_live, fragmented_message_over_the_limit_is_1009)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    char part[700];
    memset(part, ' ', sizeof(part));
    send_frame(fd, 0x01, part, sizeof(part), true);
    send_frame(fd, 0x80, part, sizeof(part), true); /* 1400 > ws_max_message 1024 */
    cr_assert_eq(close_code_of(fd), 1009);
    close(fd);
}

Test(ws_live, fragmented_json_message_is_reassembled_and_answered)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    send_frame(fd, 0x01, "{\"action\":", 10, true);
    send_frame(fd, 0x89, "x", 1, true); /* a control frame between fragments is allowed (§5.4) */
    send_frame(fd, 0x80, "\"ping\"}", 7, true);
    uint8_t buf[512];
    size_t n = drain_client(fd, buf, sizeof(buf));
    cr_assert_not_null(memmem(buf, n, "{\"event\":\"pong\"", 15), "%.*s", (int)n, buf);
    close(fd);
}

Test(ws_live, bad_json_gets_an_error_event_and_keeps_the_socket)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    send_frame(fd, 0x81, "nonsense", 8, true);
    uint8_t buf[512];
    size_t n = drain_client(fd, buf, sizeof(buf));
    cr_assert_not_null(memmem(buf, n, "\"code\":\"bad_request\"", 20));
    fake_event(9, USER_A, OID);
    cr_assert(received_seq(fd, 9), "socket still open and receiving");
    close(fd);
}

Test(ws_live, client_that_never_reads_is_dropped_and_memory_released)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    /* Fill the socketpair and then the 64 KiB queue cap; the client reads nothing. */
    for (int i = 0; i < 5000 && ot_hub_count(app.hub) == 1; i++) {
        fake_event(100 + i, USER_A, OID);
        spin(1);
    }
    /* Dropped: after the linger the socket is gone. */
    for (int i = 0; i < 600 && ot_hub_count(app.hub) > 0; i++)
        spin(1);
    cr_assert_eq(ot_hub_count(app.hub), 0);
    close(fd);
}

Test(ws_live, expired_token_closes_with_4401)
{
    /* exp is whole seconds: a 1 s token signed late in a second could expire
     * while the handshake is still being read; 2 s leaves 1..2 s. */
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 2);
    uint16_t code = 0;
    for (int i = 0; i < 60 && !code; i++) /* at least 6 s */
        code = close_code_of(fd);
    cr_assert_eq(code, 4401);
    close(fd);
}

Test(ws_live, drain_closes_with_1001)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    ot_hub_drain(app.hub);
    cr_assert_eq(close_code_of(fd), 1001);
    close(fd);
}

Test(ws_live, close_user_closes_only_that_users_sockets_with_the_given_code)
{
    int a1 = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    int a2 = ws_open(USER_A, OT_ROLE_ADMIN, 3600);
    int b = ws_open(USER_B, OT_ROLE_CUSTOMER, 3600);
    /* Upper case: the id is normalised like a token's sub. */
    cr_assert_eq(ot_hub_close_user(app.hub, OT_STR("11111111-1111-4111-8111-111111111111"), 4401, "token revoked"),
                 2);
    cr_assert_eq(close_code_of(a1), 4401);
    cr_assert_eq(close_code_of(a2), 4401);
    fake_event(77, USER_B, OID);
    cr_assert(received_seq(b, 77), "another user's socket stays open");
    cr_assert_eq(ot_hub_close_user(app.hub, OT_STR("not-a-user"), 4401, "x"), 0);
    close(a1);
    close(a2);
    close(b);
}

Test(ws_live, events_at_or_below_a_resumes_since_are_never_pushed)
{
    /* A worker behind the client's since (it learnt of those events later
     * than the worker the client came from) must not send them again. Here
     * the resume itself cannot run (no database), which changes nothing:
     * the client has every event <= since. */
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    const char *msg = "{\"action\":\"resume\",\"since\":50}";
    send_frame(fd, 0x81, msg, strlen(msg), true);
    spin(5);
    fake_event(49, USER_A, OID);
    fake_event(50, USER_A, OID);
    fake_event(51, USER_A, OID);
    uint8_t buf[8192];
    size_t n = drain_client(fd, buf, sizeof(buf));
    cr_assert_null(memmem(buf, n, "\"seq\":49,", 9), "%.*s", (int)n, buf);
    cr_assert_null(memmem(buf, n, "\"seq\":50,", 9), "%.*s", (int)n, buf);
    cr_assert_not_null(memmem(buf, n, "\"seq\":51,", 9), "%.*s", (int)n, buf);
    close(fd);
}

Test(hub_bucket, burst_then_rate_and_off_when_rate_is_zero_or_nan)
{
    double tok = 0;
    uint64_t last = 0;
    int ok = 0;
    for (int i = 0; i < 100; i++)
        ok += ot_hub_bucket_take(&tok, &last, 1000, 20, 40);
    cr_assert_eq(ok, 40, "a full burst, then nothing at the same instant");
    cr_assert(!ot_hub_bucket_take(&tok, &last, 1049, 20, 40), "0.98 token after 49 ms at 20/s");
    cr_assert(ot_hub_bucket_take(&tok, &last, 1050, 20, 40), "one token per 50 ms");
    cr_assert(!ot_hub_bucket_take(&tok, &last, 900, 20, 40), "a clock step back adds nothing");
    ok = 0;
    for (int i = 0; i < 100; i++)
        ok += ot_hub_bucket_take(&tok, &last, 1000000, 20, 40);
    cr_assert_eq(ok, 40, "refills to the burst, never beyond");
    cr_assert(ot_hub_bucket_take(&tok, &last, 1000000, 0, 40));
    cr_assert(ot_hub_bucket_take(&tok, &last, 1000000, 0.0 / 0.0, 40));
}

Test(ws_live, a_client_that_sends_without_reading_is_no_longer_read_then_fully_answered)
{
    int fd = ws_open(USER_A, OT_ROLE_CUSTOMER, 3600);
    /* 125-byte pings, masked: each is answered by a 127-byte pong. */
    uint8_t ping[131] = { 0x89, 0x80 | 125, 0, 0, 0, 0 };
    memset(ping + 6, 'p', 125);
    size_t sent = 0, limit = 4u << 20;
    int idle = 0;
    while (sent < limit && idle < 50) {
        ssize_t w = write(fd, ping + sent % sizeof(ping), sizeof(ping) - sent % sizeof(ping));
        if (w > 0) {
            sent += (size_t)w;
            idle = 0;
        } else {
            idle++;
        }
        spin(1);
    }
    /* Old code read and answered all 4 MiB, queueing every pong. */
    cr_assert_lt(sent, limit, "the server kept reading while its output was above the high-water mark");
    cr_assert_eq(ot_hub_count(app.hub), 1, "paused, not dropped");
    /* Finish the last frame, then read: input resumes and every ping is answered. */
    size_t npings = (sent + sizeof(ping) - 1) / sizeof(ping), pongs = 0;
    uint8_t buf[65536];
    size_t have = 0;
    for (int rounds = 0; rounds < 20000 && pongs < npings; rounds++) {
        if (sent % sizeof(ping)) {
            ssize_t w = write(fd, ping + sent % sizeof(ping), sizeof(ping) - sent % sizeof(ping));
            if (w > 0)
                sent += (size_t)w;
        }
        spin(1);
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n > 0)
            have += (size_t)n;
        size_t off = 0;
        while (have - off >= 2 && have - off >= 2 + (size_t)(buf[off + 1] & 0x7f)) {
            if ((buf[off] & 0x0f) == OT_WS_OP_PONG)
                pongs++;
            off += 2 + (buf[off + 1] & 0x7f);
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    cr_assert_eq(pongs, npings);
    cr_assert_eq(ot_hub_count(app.hub), 1);
    close(fd);
}

/* ------------------------------------------------------------------ resume against a model */

/* An in-memory order_events and event reader: events 1..committed exist,
 * 1..delivered were handed to the hub (watermark delivered + 1); replay reads
 * are answered only when the script says so. */
#define M_EVENTS 1400
#define M_PENDING 16

static struct {
    int committed, delivered;
    char user[M_EVENTS + 1]; /* 'A' or 'B' */
    struct {
        bool live;
        int64_t since, until;
        bool all;
        ot_hub_replay *rp;
    } pend[M_PENDING];
} mdb;

static bool m_available(void *ctx) { return true; }
static int64_t m_watermark(void *ctx) { return mdb.delivered + 1; }
static void *m_fetch(void *ctx, int64_t since, int64_t until, const char *user, ot_hub_replay *rp)
{
    for (int i = 0; i < M_PENDING; i++) {
        if (!mdb.pend[i].live) {
            mdb.pend[i].live = true;
            mdb.pend[i].since = since;
            mdb.pend[i].until = until;
            mdb.pend[i].all = user == NULL;
            mdb.pend[i].rp = rp;
            if (user)
                cr_assert_str_eq(user, USER_A);
            return &mdb.pend[i];
        }
    }
    return NULL;
}
static void m_cancel(void *ctx, void *q) { ((__typeof__(&mdb.pend[0]))q)->live = false; }

static int m_event_json(int seq, char *out, size_t cap)
{
    return snprintf(out, cap,
                    "{\"seq\":%d,\"version\":1,\"orderId\":\"" OID "\",\"userId\":\"%s\",\"type\":\"order.created\","
                    "\"status\":\"CREATED\"}",
                    seq, mdb.user[seq] == 'A' ? USER_A : USER_B);
}

/* Answers pending read i from the model (a page of at most OT_HUB_REPLAY_PAGE rows). */
static void m_answer(int i)
{
    static char texts[OT_HUB_REPLAY_PAGE][256];
    static ot_hub_row rows[OT_HUB_REPLAY_PAGE];
    int n = 0;
    for (int64_t s = mdb.pend[i].since + 1; s < mdb.pend[i].until && n < OT_HUB_REPLAY_PAGE; s++) {
        cr_assert_leq(s, mdb.committed, "a replay may only ask for committed rows");
        if (!mdb.pend[i].all && mdb.user[s] != 'A')
            continue;
        int len = m_event_json((int)s, texts[n], sizeof(texts[n]));
        rows[n].seq = s;
        rows[n].json = ot_str_make(texts[n], (size_t)len);
        n++;
    }
    mdb.pend[i].live = false;
    ot_hub_replay_rows(mdb.pend[i].rp, true, rows, n);
}

static void m_deliver(void)
{
    char json[256];
    int seq = ++mdb.delivered;
    int n = m_event_json(seq, json, sizeof(json));
    ot_event ev;
    cr_assert_eq(ot_event_parse(ot_str_make(json, (size_t)n), &ev), 0);
    ev.seen_us = ot_now_us();
    ot_hub_event(app.hub, &ev);
}

typedef struct {
    int fd;
    bool admin;
    int64_t since;
    uint8_t buf[1 << 16];
    size_t have;
    int64_t got[M_EVENTS + 8];
    int ngot, acks;
} m_client;

static void spin_fast(int n)
{
    for (int i = 0; i < n; i++)
        ot_loop_run_once(wk.loop, 0);
}

static void m_read(m_client *c)
{
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
        if (r <= 0)
            break;
        c->have += (size_t)r;
        size_t off = 0;
        while (c->have - off >= 2) {
            size_t h = 2, len = c->buf[off + 1] & 0x7f;
            if (len == 126) {
                if (c->have - off < 4)
                    break;
                len = (size_t)c->buf[off + 2] << 8 | c->buf[off + 3];
                h = 4;
            }
            cr_assert_neq(len, 127);
            if (c->have - off < h + len)
                break;
            uint8_t op = c->buf[off] & 0x0f;
            cr_assert_neq(op, OT_WS_OP_CLOSE, "closed: %.*s", (int)len, c->buf + off + h);
            char msg[512];
            snprintf(msg, sizeof(msg), "%.*s", (int)len, (const char *)c->buf + off + h);
            if (op == OT_WS_OP_TEXT && strstr(msg, "\"event\":\"order.updated\"")) {
                const char *p = strstr(msg, "\"seq\":");
                cr_assert_not_null(p);
                c->got[c->ngot++] = strtoll(p + 6, NULL, 10);
            } else if (op == OT_WS_OP_TEXT && strstr(msg, "\"event\":\"resumed\"")) {
                c->acks++;
            } else if (op == OT_WS_OP_TEXT) {
                cr_assert_fail("unexpected message %s", msg);
            }
            off += h + len;
        }
        memmove(c->buf, c->buf + off, c->have - off);
        c->have -= off;
    }
}

static int m_open(bool admin, int64_t since)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct sockaddr sa = { .sa_family = AF_UNIX };
    ot_http_conn_new(&wk, sv[0], &sa, sizeof(sa));
    char *t = token(admin ? USER_B : USER_A, admin ? OT_ROLE_ADMIN : OT_ROLE_CUSTOMER, 3600);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws/orders?access_token=%s&since=%lld HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     t, (long long)since);
    free(t);
    cr_assert_eq(write(sv[1], req, (size_t)n), n);
    char resp[256];
    size_t got = 0;
    for (int i = 0; i < 1000 && got < sizeof(resp) && !memmem(resp, got, "\r\n\r\n", 4); i++) {
        ssize_t r = read(sv[1], resp + got, 1); /* byte by byte: frames may follow the head */
        if (r > 0)
            got += (size_t)r;
        else
            spin_fast(1);
    }
    cr_assert(memmem(resp, got, "\r\n\r\n", 4) && memcmp(resp, "HTTP/1.1 101 ", 13) == 0, "%.*s", (int)got, resp);
    return sv[1];
}

static uint32_t m_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* The delivery guarantee (docs/ARCHITECTURE.md): a client resuming with since
 * gets every event it may see with seq > since exactly once, in order,
 * whether the worker is behind the client (since >= watermark), level with it
 * or ahead (a replay, with live events held), with replay answers late and
 * commits and deliveries interleaved at random. */
Test(ws_live, resume_delivers_every_visible_event_above_since_exactly_once_against_a_model)
{
    cfg.ws_max_queue = 64u << 20; /* the cap has its own tests; here nothing may be dropped */
    ot_hub_source src = { .ctx = NULL, .available = m_available, .watermark = m_watermark, .fetch = m_fetch,
                          .cancel = m_cancel };
    ot_hub_set_source(app.hub, &src);
    static m_client cl[6];
    for (uint32_t seed = 1; seed <= 60; seed++) {
        memset(&mdb, 0, sizeof(mdb));
        uint32_t rs = seed;
        int big = seed % 10 == 0 ? 1300 : 120; /* some runs need more than one replay page */
        int nclients = 0;
        for (int i = 1; i <= big; i++)
            mdb.user[i] = m_rand(&rs) % 3 ? 'A' : 'B';
        while (mdb.delivered < big || nclients < 6) {
            uint32_t op = m_rand(&rs) % 10;
            if (op < 3 && mdb.committed < big) {
                int k = 1 + (int)(m_rand(&rs) % (big / 20 + 1));
                mdb.committed = mdb.committed + k > big ? big : mdb.committed + k;
            } else if (op < 5 && mdb.delivered < mdb.committed) {
                int k = 1 + (int)(m_rand(&rs) % (big / 20 + 1));
                while (k-- && mdb.delivered < mdb.committed)
                    m_deliver();
            } else if (op < 7) {
                for (int i = 0; i < M_PENDING; i++)
                    if (mdb.pend[i].live && m_rand(&rs) % 2)
                        m_answer(i);
            } else if (op < 8 && nclients < 6 && mdb.delivered >= nclients * big / 7) {
                /* Spread over the run, so later ones have long replays (several pages). */
                /* since anywhere up to what is committed: ahead of the worker or behind it. */
                m_client *c = &cl[nclients++];
                memset(c, 0, sizeof(*c));
                c->admin = m_rand(&rs) % 3 == 0;
                c->since = (int64_t)(m_rand(&rs) % (uint32_t)(mdb.committed + 1));
                c->fd = m_open(c->admin, c->since);
            } else {
                spin_fast(2);
                for (int i = 0; i < nclients; i++)
                    m_read(&cl[i]);
            }
            if (mdb.delivered == mdb.committed && mdb.committed < big && op >= 8)
                mdb.committed++;
        }
        /* Drain: answer every read, flush, read. */
        for (int round = 0; round < 2000; round++) {
            bool pending = false;
            for (int i = 0; i < M_PENDING; i++)
                if (mdb.pend[i].live) {
                    pending = true;
                    m_answer(i);
                }
            spin_fast(2);
            for (int i = 0; i < nclients; i++)
                m_read(&cl[i]);
            if (!pending && round > 20)
                break;
        }
        for (int i = 0; i < nclients; i++) {
            m_client *c = &cl[i];
            int want = 0;
            for (int s = (int)c->since + 1; s <= big; s++) {
                if (!c->admin && mdb.user[s] != 'A')
                    continue;
                cr_assert_lt(want, c->ngot, "seed %u client %d (since %lld, admin %d): missing seq %d", seed, i,
                             (long long)c->since, c->admin, s);
                cr_assert_eq(c->got[want], s, "seed %u client %d (since %lld): got %lld where %d was due", seed, i,
                             (long long)c->since, (long long)c->got[want], s);
                want++;
            }
            cr_assert_eq(c->ngot, want, "seed %u client %d: %d extra pushes", seed, i, c->ngot - want);
            cr_assert_eq(c->acks, 1, "seed %u client %d: one resumed ack", seed, i);
            close(c->fd);
        }
        for (int t = 0; t < 200 && ot_hub_count(app.hub) > 0; t++)
            spin_fast(1);
        cr_assert_eq(ot_hub_count(app.hub), 0);
    }
    ot_hub_set_source(app.hub, NULL);
}
