/* RFC 6455 §4.2: checking a client's opening handshake. */
#include "ot/http/ws_handshake.h"

#include <stdio.h>
#include <string.h>

#include "ot/codec/ws_frame.h"

static ot_str trim_ows(ot_str s)
{
    while (s.len && (s.base[0] == ' ' || s.base[0] == '\t')) {
        s.base++;
        s.len--;
    }
    while (s.len && (s.base[s.len - 1] == ' ' || s.base[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* The value of a header that must appear exactly once; n = how many there were. */
static ot_str header_once(const ot_http_request *h, const char *name, int *n)
{
    ot_str v = OT_STR_NULL;
    *n = 0;
    for (size_t i = 0; i < h->num_headers; i++) {
        if (ot_str_ieq(h->headers[i].name, name)) {
            if ((*n)++ == 0)
                v = trim_ows(h->headers[i].value);
        }
    }
    return v;
}

int ot_ws_check_handshake(const ot_http_request *h, char accept[29], const char **why)
{
    int n;
    /* §4.2.1 items 1-4: a GET over HTTP/1.1 or higher, with Upgrade: websocket
     * and an "Upgrade" token in Connection (the parser derived the last two). */
    if (!ot_str_eq_lit(h->method, "GET")) {
        *why = "a WebSocket handshake must be a GET";
        return 400;
    }
    if (h->minor_version < 1) {
        *why = "a WebSocket handshake needs HTTP/1.1";
        return 400;
    }
    if (!h->upgrade_websocket) {
        *why = "expected Upgrade: websocket and Connection: Upgrade";
        return 400;
    }
    /* §4.2.1 item 6 / §4.4: we speak version 13 only and say so in a 426. */
    ot_str ver = header_once(h, "Sec-WebSocket-Version", &n);
    if (n != 1 || !ot_str_eq_lit(ver, "13")) {
        *why = "Sec-WebSocket-Version must be 13";
        return 426;
    }
    /* §4.2.1 item 5: exactly one key, the base64 of 16 bytes. */
    ot_str key = header_once(h, "Sec-WebSocket-Key", &n);
    if (n != 1 || ot_ws_accept_key(key, accept) < 0) {
        *why = "missing or invalid Sec-WebSocket-Key";
        return 400;
    }
    /* Origin is not checked on purpose: it guards against cross-site use of
     * ambient credentials (cookies), and we take none; a foreign page cannot
     * obtain the bearer token this handshake needs. */
    *why = NULL;
    return 0;
}

int ot_ws_token(const ot_http_request *h, char *out, size_t cap, size_t *len)
{
    if (h->authorization.len) {
        ot_str a = h->authorization;
        /* An Authorization header of another scheme is an error, not a reason
         * to look at the query: two credentials would be ambiguous. */
        if (a.len < 7 || !ot_str_ieq(ot_str_make(a.base, 7), "Bearer "))
            return OT_ERR;
        ot_str t = trim_ows(ot_str_make(a.base + 7, a.len - 7));
        if (t.len == 0 || t.len > cap)
            return OT_ERR;
        memcpy(out, t.base, t.len);
        *len = t.len;
        return 0;
    }
    ot_str raw;
    if (!ot_http_query_get(h->query, "access_token", &raw))
        return OT_ERR;
    if (ot_url_decode(raw, out, cap, len) < 0 || *len == 0)
        return OT_ERR;
    return 0;
}

int ot_ws_101(const char accept[29], char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    return n > 0 && (size_t)n < cap ? n : OT_ERR;
}
