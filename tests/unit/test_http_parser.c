/* Unit tests for src/http_parser.c: request heads, limits, smuggling defences,
 * chunked decoding and URL helpers. Every input is also replayed byte by byte
 * and split at every position, from exact-size heap copies so ASan sees any
 * read past the bytes we handed over. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/http_parser.h"

#define NHDR 32
static ot_http_header g_hdrs[NHDR];

static int parse_lim(const char *s, size_t len, ot_http_request *r, const ot_http_limits *lim)
{
    memset(r, 0, sizeof(*r));
    r->headers = g_hdrs;
    r->num_headers = NHDR;
    return ot_http_parse_request(s, len, r, lim);
}

/* Parse from an exact-size heap copy: reading byte len is then an ASan error. */
static int parse_copy(const char *s, size_t len, ot_http_request *r, const ot_http_limits *lim)
{
    char *b = malloc(len ? len : 1);
    memcpy(b, s, len);
    int rc = parse_lim(b, len, r, lim);
    free(b);
    return rc;
}

#define S(lit) (lit), (sizeof(lit) - 1)
#define PARSE(lit, r) parse_lim(S(lit), (r), NULL)

static bool str_is(ot_str s, const char *lit) { return ot_str_eq_lit(s, lit); }

/* Every prefix of a request must be "incomplete" (or, for an invalid request,
 * the same error as the whole), and the whole must give `expect`. */
static void check_incremental(const char *s, size_t len, const ot_http_limits *lim, int expect)
{
    ot_http_request r;
    cr_assert_eq(parse_copy(s, len, &r, lim), expect, "whole input");
    for (size_t k = 0; k < len; k++) {
        int rc = parse_copy(s, k, &r, lim);
        if (expect > 0 && k < (size_t)expect)
            cr_assert_eq(rc, OT_HTTP_INCOMPLETE, "prefix %zu of %zu gave %d", k, len, rc);
        else if (expect > 0)
            cr_assert_eq(rc, expect, "prefix %zu holding the whole head gave %d", k, rc);
        else
            cr_assert(rc == OT_HTTP_INCOMPLETE || rc == expect, "prefix %zu gave %d, whole %d", k, rc, expect);
    }
}

/* ---- the basics ---- */

Test(http_parse, simple_get_fills_every_field)
{
    ot_http_request r;
    const char req[] = "GET /orders/42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
    int n = PARSE(req, &r);
    cr_assert_eq(n, (int)sizeof(req) - 1);
    cr_assert(str_is(r.method, "GET"));
    cr_assert(str_is(r.target, "/orders/42"));
    cr_assert(str_is(r.path, "/orders/42"));
    cr_assert_eq(r.query.len, 0);
    cr_assert_eq(r.minor_version, 1);
    cr_assert_eq(r.num_headers, 2);
    cr_assert(str_is(r.headers[0].name, "Host"));
    cr_assert(str_is(r.headers[0].value, "example.com"));
    cr_assert(str_is(r.host, "example.com"));
    cr_assert_eq(r.content_length, -1);
    cr_assert(!r.chunked);
    cr_assert(r.keep_alive);
    cr_assert(!r.expect_continue);
    cr_assert(!r.upgrade_websocket);
    cr_assert_null(r.authorization.base);
}

Test(http_parse, query_is_split_from_path_without_question_mark)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET /search?q=a+b&since=5 HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert(str_is(r.path, "/search"));
    cr_assert(str_is(r.query, "q=a+b&since=5"));
    cr_assert_gt(PARSE("GET /x? HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert(str_is(r.path, "/x"));
    cr_assert_eq(r.query.len, 0);
    cr_assert_not_null(r.query.base);
}

Test(http_parse, post_with_content_length)
{
    ot_http_request r;
    const char req[] = "POST /orders HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                       "Content-Length: 13\r\n\r\n{\"item\":\"x\"}";
    int n = PARSE(req, &r);
    cr_assert_eq(n, (int)(sizeof(req) - 1 - 12));
    cr_assert_eq(r.content_length, 13);
    cr_assert(str_is(r.content_type, "application/json"));
}

Test(http_parse, header_values_have_ows_trimmed_and_keep_inner_spaces)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a  b \t\r\nX-Empty:   \r\nAuthorization: Bearer t\r\n"
                       "Idempotency-Key: k1\r\nIf-Match: \"v1\"\r\nIf-Match: \"v2\"\r\n\r\n", &r), 0);
    cr_assert_eq(r.num_headers, 7);
    cr_assert(str_is(r.headers[0].value, "h"));
    cr_assert(str_is(r.headers[1].value, "a  b"));
    cr_assert_eq(r.headers[2].value.len, 0);
    cr_assert(str_is(r.authorization, "Bearer t"));
    cr_assert(str_is(r.idempotency_key, "k1"));
    cr_assert(str_is(r.if_match, "\"v1\""), "first If-Match wins");
}

Test(http_parse, obs_text_is_allowed_in_values)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\r\n\r\n", &r), 0);
    cr_assert(str_is(r.headers[1].value, "caf\xc3\xa9"));
}

Test(http_parse, leading_crlfs_are_skipped_and_counted)
{
    ot_http_request r;
    const char req[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(PARSE(req, &r), (int)sizeof(req) - 1);
    cr_assert(str_is(r.method, "GET"));
    cr_assert_eq(PARSE("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
}

Test(http_parse, pipelined_requests_are_found_by_returned_length)
{
    const char two[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /c HT";
    ot_http_request r;
    int n1 = PARSE(two, &r);
    cr_assert_gt(n1, 0);
    cr_assert(str_is(r.path, "/a"));
    int n2 = parse_lim(two + n1, sizeof(two) - 1 - (size_t)n1, &r, NULL);
    cr_assert_gt(n2, 0);
    cr_assert(str_is(r.path, "/b"));
    size_t off = (size_t)n1 + (size_t)n2 + (size_t)r.content_length;
    cr_assert_eq(parse_lim(two + off, sizeof(two) - 1 - off, &r, NULL), OT_HTTP_INCOMPLETE);
}

static const char *const valid_reqs[] = {
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /a/b?c=d&e HTTP/1.0\r\n\r\n",
    "\r\nPOST /orders HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 5\r\nConnection: keep-alive, Upgrade\r\n\r\n",
    "PATCH /orders/1/status HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET http://example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX:\r\nY: \t\r\n\r\n",
};

Test(http_parse, every_valid_request_byte_by_byte_and_split_everywhere)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(valid_reqs); i++) {
        const char *s = valid_reqs[i];
        size_t len = strlen(s);
        check_incremental(s, len, NULL, (int)len);
        /* Split into two reads at every position: the caller reparses the
         * grown buffer, and the result must match the one-shot parse field
         * for field, at the same offsets. */
        ot_http_request whole, split;
        cr_assert_eq(parse_lim(s, len, &whole, NULL), (int)len);
        size_t noff[NHDR], nlen[NHDR], voff[NHDR], vlen[NHDR];
        for (size_t h = 0; h < whole.num_headers; h++) {
            noff[h] = (size_t)(g_hdrs[h].name.base - s);
            nlen[h] = g_hdrs[h].name.len;
            voff[h] = (size_t)(g_hdrs[h].value.base - s);
            vlen[h] = g_hdrs[h].value.len;
        }
        for (size_t k = 0; k <= len; k++) {
            char *b = malloc(len);
            memcpy(b, s, k);
            cr_assert_eq(parse_lim(b, k, &split, NULL), k == len ? (int)len : OT_HTTP_INCOMPLETE);
            memcpy(b + k, s + k, len - k);
            cr_assert_eq(parse_lim(b, len, &split, NULL), (int)len);
            cr_assert_eq(split.num_headers, whole.num_headers);
            cr_assert_eq(split.method.base - b, whole.method.base - s);
            cr_assert_eq(split.target.len, whole.target.len);
            cr_assert_eq(split.path.len, whole.path.len);
            cr_assert_eq(split.query.len, whole.query.len);
            cr_assert_eq(split.minor_version, whole.minor_version);
            cr_assert_eq(split.content_length, whole.content_length);
            cr_assert_eq(split.keep_alive, whole.keep_alive);
            cr_assert_eq(split.chunked, whole.chunked);
            cr_assert_eq(split.expect_continue, whole.expect_continue);
            cr_assert_eq(split.upgrade_websocket, whole.upgrade_websocket);
            cr_assert_eq(split.host.len, whole.host.len);
            for (size_t h = 0; h < split.num_headers; h++) {
                cr_assert_eq((size_t)(g_hdrs[h].name.base - b), noff[h]);
                cr_assert_eq(g_hdrs[h].name.len, nlen[h]);
                cr_assert_eq((size_t)(g_hdrs[h].value.base - b), voff[h]);
                cr_assert_eq(g_hdrs[h].value.len, vlen[h]);
            }
            free(b);
        }
    }
}

/* ---- connection semantics ---- */

Test(http_parse, keep_alive_defaults_per_version_and_connection_tokens)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert(r.keep_alive);
    cr_assert_gt(PARSE("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &r), 0);
    cr_assert(!r.keep_alive);
    cr_assert_gt(PARSE("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n", &r), 0);
    cr_assert(!r.keep_alive, "close wins over keep-alive");
    cr_assert_gt(PARSE("GET / HTTP/1.0\r\n\r\n", &r), 0);
    cr_assert(!r.keep_alive);
    cr_assert_eq(r.minor_version, 0);
    cr_assert_gt(PARSE("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
    cr_assert(r.keep_alive);
    cr_assert_gt(PARSE("GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive, Upgrade\r\n\r\n", &r), 0);
    cr_assert(r.keep_alive, "tokens are collected across Connection fields");
    cr_assert_gt(PARSE("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n", &r), 0);
    cr_assert(r.keep_alive);
    cr_assert(!r.upgrade_websocket, "no Upgrade field");
}

Test(http_parse, upgrade_websocket_needs_both_tokens_and_http11)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n", &r), 0);
    cr_assert(r.upgrade_websocket);
    cr_assert_gt(PARSE("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, websocket\r\nConnection: upgrade\r\n\r\n", &r), 0);
    cr_assert(r.upgrade_websocket);
    cr_assert_gt(PARSE("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", &r), 0);
    cr_assert(!r.upgrade_websocket);
    cr_assert_gt(PARSE("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websockets\r\nConnection: upgrade\r\n\r\n", &r), 0);
    cr_assert(!r.upgrade_websocket);
    cr_assert_gt(PARSE("GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", &r), 0);
    cr_assert(!r.upgrade_websocket);
}

Test(http_parse, expect_continue_is_case_insensitive_and_ignored_on_http10)
{
    ot_http_request r;
    cr_assert_gt(PARSE("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", &r), 0);
    cr_assert(r.expect_continue);
    cr_assert_gt(PARSE("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", &r), 0);
    cr_assert(!r.expect_continue);
    cr_assert_gt(PARSE("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &r), 0);
    cr_assert(!r.expect_continue);
}

Test(http_parse, chunked_transfer_encoding_is_accepted_once_and_case_insensitive)
{
    ot_http_request r;
    cr_assert_gt(PARSE("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", &r), 0);
    cr_assert(r.chunked);
    cr_assert_eq(r.content_length, -1);
    cr_assert_gt(PARSE("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n", &r), 0);
    cr_assert(r.chunked, "empty list elements are ignored");
}

/* ---- request line ---- */

Test(http_parse, versions_per_rfc9110)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET / HTTP/1.2\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert_eq(r.minor_version, 1, "1.x above 1.1 is handled as 1.1");
    cr_assert_eq(PARSE("GET / HTTP/2.0\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_VERSION);
    cr_assert_eq(PARSE("GET / HTTP/0.9\r\n\r\n", &r), OT_HTTP_E_VERSION);
    cr_assert_eq(PARSE("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &r), OT_HTTP_E_VERSION);
    cr_assert_eq(PARSE("GET / http/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET / HTTP/1.10\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET / HTTP/1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET /\r\n\r\n", &r), OT_HTTP_E_BAD, "HTTP/0.9 simple request");
}

Test(http_parse, request_line_whitespace_and_target_are_strict)
{
    ot_http_request r;
    cr_assert_eq(PARSE("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_METHOD);
    cr_assert_eq(PARSE("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET orders HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET * HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_gt(PARSE("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert(str_is(r.path, "*"));
}

Test(http_parse, method_must_be_a_token)
{
    ot_http_request r;
    cr_assert_eq(PARSE("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_METHOD);
    cr_assert_eq(PARSE("GE\"T / HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_METHOD);
    cr_assert_eq(PARSE(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_METHOD);
    cr_assert_gt(PARSE("M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert(str_is(r.method, "M-SEARCH"));
}

Test(http_parse, absolute_form_takes_host_from_target)
{
    ot_http_request r;
    cr_assert_gt(PARSE("GET HTTP://api.example.com:8080/orders?x=1 HTTP/1.1\r\nHost: evil\r\n\r\n", &r), 0);
    cr_assert(r.absolute_form);
    cr_assert(str_is(r.host, "api.example.com:8080"));
    cr_assert(str_is(r.path, "/orders"));
    cr_assert(str_is(r.query, "x=1"));
    cr_assert_gt(PARSE("GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
    cr_assert(str_is(r.path, "/"), "empty path means /");
    cr_assert(str_is(r.query, "q"));
    cr_assert_eq(PARSE("GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", &r), OT_HTTP_E_BAD);
    cr_assert_eq(PARSE("GET http://h/x HTTP/1.1\r\n\r\n", &r), OT_HTTP_E_BAD, "Host still required on 1.1");
}

/* ---- limits ---- */

static char *make_get(size_t target_len, size_t *outlen)
{
    char *b = malloc(target_len + 64);
    memcpy(b, "GET /", 5);
    memset(b + 5, 'a', target_len - 1);
    size_t n = 4 + target_len;
    memcpy(b + n, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
    *outlen = n + 22;
    return b;
}

Test(http_limits, uri_at_limit_passes_and_one_over_is_414_even_incomplete)
{
    ot_http_limits lim = { .max_uri = 100, .max_head = 8192, .max_headers = 10 };
    ot_http_request r;
    size_t len;
    char *ok = make_get(100, &len);
    cr_assert_eq(parse_copy(ok, len, &r, &lim), (int)len);
    cr_assert_eq(r.target.len, 100);
    free(ok);
    char *big = make_get(101, &len);
    cr_assert_eq(parse_copy(big, len, &r, &lim), OT_HTTP_E_URI_TOO_LONG);
    /* Early: only the method and 101 target bytes have arrived. */
    cr_assert_eq(parse_copy(big, 4 + 101, &r, &lim), OT_HTTP_E_URI_TOO_LONG);
    cr_assert_eq(parse_copy(big, 4 + 100, &r, &lim), OT_HTTP_INCOMPLETE);
    check_incremental(big, len, &lim, OT_HTTP_E_URI_TOO_LONG);
    free(big);
}

Test(http_limits, long_uri_with_default_limits_is_414_not_431)
{
    ot_http_request r;
    size_t len;
    char *big = make_get(9000, &len);
    cr_assert_eq(parse_copy(big, len, &r, NULL), OT_HTTP_E_URI_TOO_LONG);
    cr_assert_eq(parse_copy(big, 8200, &r, NULL), OT_HTTP_E_URI_TOO_LONG);
    free(big);
}

Test(http_limits, target_unfinished_at_max_head_is_414_within_max_head_bytes)
{
    ot_http_limits lim = { .max_uri = 1000, .max_head = 64, .max_headers = 10 };
    ot_http_request r;
    size_t len;
    char *big = make_get(70, &len);
    cr_assert_eq(parse_copy(big, 63, &r, &lim), OT_HTTP_INCOMPLETE);
    cr_assert_eq(parse_copy(big, 64, &r, &lim), OT_HTTP_E_URI_TOO_LONG);
    check_incremental(big, len, &lim, OT_HTTP_E_URI_TOO_LONG);
    free(big);
    /* A target that fits but leaves no room for the rest of the head is 431. */
    big = make_get(50, &len);
    cr_assert_eq(parse_copy(big, len, &r, &lim), OT_HTTP_E_HEAD_TOO_LARGE);
    check_incremental(big, len, &lim, OT_HTTP_E_HEAD_TOO_LARGE);
    free(big);
}

Test(http_limits, head_at_limit_passes_and_one_over_is_431)
{
    const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    ot_http_limits lim = { .max_uri = 100, .max_head = sizeof(req) - 1, .max_headers = 10 };
    ot_http_request r;
    cr_assert_eq(parse_copy(S(req), &r, &lim), (int)sizeof(req) - 1);
    lim.max_head--;
    cr_assert_eq(parse_copy(S(req), &r, &lim), OT_HTTP_E_HEAD_TOO_LARGE);
    check_incremental(S(req), &lim, OT_HTTP_E_HEAD_TOO_LARGE);
}

Test(http_limits, endless_head_is_431_as_soon_as_it_crosses_max_head)
{
    size_t len = 9000;
    char *b = malloc(len);
    memcpy(b, "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ", 32);
    memset(b + 32, 'x', len - 32);
    ot_http_request r;
    cr_assert_eq(parse_copy(b, len, &r, NULL), OT_HTTP_E_HEAD_TOO_LARGE);
    cr_assert_eq(parse_copy(b, 8192, &r, NULL), OT_HTTP_E_HEAD_TOO_LARGE);
    cr_assert_eq(parse_copy(b, 8191, &r, NULL), OT_HTTP_INCOMPLETE);
    /* Many small header lines without the blank line: same. */
    memcpy(b, "GET / HTTP/1.1\r\n", 16);
    for (size_t i = 16; i + 6 <= len; i += 6)
        memcpy(b + i, "A: b\r\n", 6);
    ot_http_limits lim = { .max_uri = 8192, .max_head = 8192, .max_headers = 10000 };
    ot_http_header *many = calloc(10000, sizeof(*many));
    memset(&r, 0, sizeof(r));
    r.headers = many;
    r.num_headers = 10000;
    cr_assert_eq(ot_http_parse_request(b, 16 + (len - 16) / 6 * 6, &r, &lim), OT_HTTP_E_HEAD_TOO_LARGE);
    free(many);
    free(b);
}

Test(http_limits, long_method_is_431_not_unbounded)
{
    ot_http_limits lim = { .max_uri = 100, .max_head = 64, .max_headers = 10 };
    char b[80];
    memset(b, 'G', sizeof(b));
    ot_http_request r;
    cr_assert_eq(parse_copy(b, 63, &r, &lim), OT_HTTP_INCOMPLETE);
    cr_assert_eq(parse_copy(b, 64, &r, &lim), OT_HTTP_E_HEAD_TOO_LARGE);
}

Test(http_limits, header_count_over_max_headers_or_capacity_is_431_early)
{
    const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    ot_http_limits lim = { .max_uri = 100, .max_head = 8192, .max_headers = 3 };
    ot_http_request r;
    cr_assert_eq(parse_copy(S(req), &r, &lim), (int)sizeof(req) - 1);
    cr_assert_eq(r.num_headers, 3);
    lim.max_headers = 2;
    cr_assert_eq(parse_copy(S(req), &r, &lim), OT_HTTP_E_HEAD_TOO_LARGE);
    /* Detected at the first byte of the third field line. */
    cr_assert_eq(parse_copy(req, 32, &r, &lim), OT_HTTP_E_HEAD_TOO_LARGE);
    cr_assert_eq(parse_copy(req, 31, &r, &lim), OT_HTTP_INCOMPLETE);
    check_incremental(S(req), &lim, OT_HTTP_E_HEAD_TOO_LARGE);
    /* The caller's array is a limit too. */
    ot_http_header two[2];
    memset(&r, 0, sizeof(r));
    r.headers = two;
    r.num_headers = 2;
    cr_assert_eq(ot_http_parse_request(S(req), &r, NULL), OT_HTTP_E_HEAD_TOO_LARGE);
    r.num_headers = 2;
    cr_assert_eq(ot_http_parse_request(req, 30, &r, NULL), OT_HTTP_INCOMPLETE);
    cr_assert_eq(r.num_headers, 2, "capacity survives an incomplete parse");
}

/* ---- smuggling and malformed heads ---- */

typedef struct {
    const char *req;
    int expect;
} bad_case;

static const bad_case bad_cases[] = {
    /* CL / TE framing */
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", OT_HTTP_E_SMUGGLING },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", OT_HTTP_E_TE },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", OT_HTTP_E_TE },
    /* line structure */
    { "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\n Host: h\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\nHost: h\r\n\r\n", OT_HTTP_E_BAD },
    { "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\n\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\rHost: h\r\n\r\n", OT_HTTP_E_BAD },
    { "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nX(a): b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nX\x80: b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    /* Host */
    { "GET / HTTP/1.1\r\n\r\n", OT_HTTP_E_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", OT_HTTP_E_BAD },
    { "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", OT_HTTP_E_BAD },
    { "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", OT_HTTP_E_BAD },
    { "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", OT_HTTP_E_BAD },
    /* singleton fields we hand to handlers */
    { "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nIdempotency-Key: a\r\nidempotency-key: a\r\n\r\n", OT_HTTP_E_BAD_HEADER },
    { "GET / HTTP/1.1\r\nHost: h\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", OT_HTTP_E_BAD_HEADER },
};

Test(http_smuggling, every_ambiguous_or_malformed_head_is_rejected_at_any_split)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(bad_cases); i++) {
        ot_http_request r;
        const char *s = bad_cases[i].req;
        size_t len = strlen(s);
        int rc = parse_copy(s, len, &r, NULL);
        cr_assert_eq(rc, bad_cases[i].expect, "case %zu (%s): got %d want %d", i, s, rc, bad_cases[i].expect);
        check_incremental(s, len, NULL, bad_cases[i].expect);
        cr_assert_geq(ot_http_error_status(rc), 400);
    }
}

Test(http_smuggling, nul_in_value_is_rejected)
{
    const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    ot_http_request r;
    cr_assert_eq(parse_copy(S(req), &r, NULL), OT_HTTP_E_BAD_HEADER);
    const char req2[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(parse_copy(S(req2), &r, NULL), OT_HTTP_E_BAD);
}

Test(http_smuggling, identical_content_lengths_are_merged)
{
    ot_http_request r;
    cr_assert_gt(PARSE("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &r), 0);
    cr_assert_eq(r.content_length, 5);
    cr_assert_gt(PARSE("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7 ,7\r\n\r\n", &r), 0);
    cr_assert_eq(r.content_length, 7);
    cr_assert_gt(PARSE("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n", &r), 0);
    cr_assert_eq(r.content_length, INT64_MAX);
    cr_assert_gt(PARSE("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r), 0);
    cr_assert_eq(r.content_length, 0);
}

Test(http_errors, statuses_codes_and_messages)
{
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_BAD), 400);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_URI_TOO_LONG), 414);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_HEAD_TOO_LARGE), 431);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_VERSION), 505);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_SMUGGLING), 400);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_TE), 501);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_BAD_HEADER), 400);
    cr_assert_eq(ot_http_error_status(OT_HTTP_E_METHOD), 400);
    cr_assert_str_eq(ot_http_error_code(OT_HTTP_E_HEAD_TOO_LARGE), "header_too_large");
    cr_assert_str_eq(ot_http_error_code(OT_HTTP_E_URI_TOO_LONG), "uri_too_long");
    cr_assert_str_neq(ot_http_error_code(OT_HTTP_E_SMUGGLING), ot_http_error_code(OT_HTTP_E_BAD));
    cr_assert_gt(strlen(ot_http_error_message(OT_HTTP_E_TE)), 0);
}

/* ---- chunked decoder ---- */

typedef struct {
    ssize_t rc;     /* total consumed, or the error */
    size_t outlen;
    char out[512];
    bool done;
} dec_result;

/* Decodes s in pieces of `step` bytes (0 = all at once) from exact-size heap
 * copies, the way a connection feeds whatever each read returned. */
static dec_result decode_steps(const char *s, size_t len, size_t step)
{
    dec_result res = { 0 };
    ot_http_chunked d;
    ot_http_chunked_init(&d);
    size_t off = 0;
    if (step == 0)
        step = len ? len : 1;
    while (off < len && !d.done) {
        size_t n = len - off < step ? len - off : step;
        char *in = malloc(n);
        memcpy(in, s + off, n);
        size_t ol = 0;
        ssize_t rc = ot_http_chunked_decode(&d, in, n, res.out + res.outlen, &ol);
        free(in);
        if (rc < 0) {
            res.rc = rc;
            return res;
        }
        cr_assert_leq((size_t)rc, n);
        cr_assert_leq(ol, (size_t)rc);
        res.outlen += ol;
        off += (size_t)rc;
        if (!d.done)
            cr_assert_eq((size_t)rc, n, "a decoder that is not done consumes everything");
    }
    res.rc = (ssize_t)off;
    res.done = d.done;
    return res;
}

/* Whole, byte by byte, and every two-piece split must agree. */
static dec_result decode_all_ways(const char *s, size_t len)
{
    dec_result whole = decode_steps(s, len, 0);
    dec_result bytes = decode_steps(s, len, 1);
    cr_assert_eq(bytes.rc, whole.rc);
    cr_assert_eq(bytes.done, whole.done);
    if (whole.rc >= 0) {
        cr_assert_eq(bytes.outlen, whole.outlen);
        cr_assert(memcmp(bytes.out, whole.out, whole.outlen) == 0);
    }
    for (size_t k = 1; k < len; k++) {
        dec_result two = { 0 };
        ot_http_chunked d;
        ot_http_chunked_init(&d);
        size_t ol1 = 0, ol2 = 0;
        ssize_t r1 = ot_http_chunked_decode(&d, s, k, two.out, &ol1);
        ssize_t r2 = 0;
        if (r1 >= 0 && !d.done)
            r2 = ot_http_chunked_decode(&d, s + k, len - k, two.out + ol1, &ol2);
        if (whole.rc < 0) {
            cr_assert(r1 < 0 || r2 < 0, "split %zu hides the error", k);
            continue;
        }
        cr_assert_eq(r1 + r2, whole.rc, "split %zu", k);
        cr_assert_eq(ol1 + ol2, whole.outlen);
        cr_assert(memcmp(two.out, whole.out, whole.outlen) == 0);
        cr_assert_eq(d.done, whole.done);
    }
    return whole;
}

#define DEC(lit) decode_all_ways(S(lit))

Test(http_chunked, simple_body_decodes_and_stops_at_end)
{
    const char in[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    dec_result r = DEC(in);
    cr_assert_eq(r.rc, (ssize_t)sizeof(in) - 1);
    cr_assert(r.done);
    cr_assert_eq(r.outlen, 11);
    cr_assert(memcmp(r.out, "hello world", 11) == 0);
}

Test(http_chunked, hex_sizes_are_case_insensitive_with_leading_zeros)
{
    dec_result r = DEC("A\r\n0123456789\r\n00b\r\nabcdefghijk\r\n000\r\n\r\n");
    cr_assert(r.done);
    cr_assert_eq(r.outlen, 21);
    cr_assert(memcmp(r.out, "0123456789abcdefghijk", 21) == 0);
}

Test(http_chunked, extensions_are_skipped)
{
    dec_result r = DEC("5;name=val;q=\"a b\"\r\nhello\r\n1 ;x\r\n!\r\n0;last\r\n\r\n");
    cr_assert(r.done);
    cr_assert_eq(r.outlen, 6);
    cr_assert(memcmp(r.out, "hello!", 6) == 0);
}

Test(http_chunked, trailers_are_consumed_and_discarded)
{
    const char in[] = "3\r\nabc\r\n0\r\nX-Checksum: 123\r\nX-Empty:\r\n\r\n";
    dec_result r = DEC(in);
    cr_assert(r.done);
    cr_assert_eq(r.rc, (ssize_t)sizeof(in) - 1);
    cr_assert_eq(r.outlen, 3);
}

Test(http_chunked, pipelined_bytes_after_the_body_are_left_unconsumed)
{
    const char in[] = "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    dec_result r = DEC(in);
    cr_assert(r.done);
    cr_assert_eq(r.rc, 12);
    ot_http_chunked d;
    ot_http_chunked_init(&d);
    char out[64];
    size_t ol;
    cr_assert_eq(ot_http_chunked_decode(&d, S(in), out, &ol), 12);
    cr_assert_eq(ot_http_chunked_decode(&d, in + 12, sizeof(in) - 13, out, &ol), 0, "done consumes nothing");
    cr_assert_eq(ol, 0);
}

Test(http_chunked, decodes_in_place)
{
    char buf[] = "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n";
    ot_http_chunked d;
    ot_http_chunked_init(&d);
    size_t ol;
    cr_assert_eq(ot_http_chunked_decode(&d, buf, sizeof(buf) - 1, buf, &ol), (ssize_t)sizeof(buf) - 1);
    cr_assert(d.done);
    cr_assert_eq(ol, 7);
    cr_assert(memcmp(buf, "abcdefg", 7) == 0);
}

Test(http_chunked, in_place_byte_by_byte_matches)
{
    const char src[] = "3\r\nxyz\r\n2;e\r\n12\r\n0\r\nT: v\r\n\r\n";
    char buf[sizeof(src)];
    memcpy(buf, src, sizeof(src));
    ot_http_chunked d;
    ot_http_chunked_init(&d);
    size_t in = 0, out = 0;
    while (!d.done) {
        size_t ol;
        ssize_t rc = ot_http_chunked_decode(&d, buf + in, 1, buf + out, &ol);
        cr_assert_eq(rc, 1);
        in += 1;
        out += ol;
    }
    cr_assert_eq(in, sizeof(src) - 1);
    cr_assert_eq(out, 5);
    cr_assert(memcmp(buf, "xyz12", 5) == 0);
}

Test(http_chunked, size_of_exactly_2_pow_62_is_accepted_and_one_more_is_not)
{
    dec_result r = DEC("4000000000000000\r\nabc");
    cr_assert_eq(r.rc, 21);
    cr_assert(!r.done);
    cr_assert_eq(r.outlen, 3);
    r = DEC("4000000000000001\r\n");
    cr_assert_eq(r.rc, OT_HTTP_E_BAD);
    r = DEC("FFFFFFFFFFFFFFFFF\r\n");
    cr_assert_eq(r.rc, OT_HTTP_E_BAD);
    r = DEC("00000000000000001\r\n");
    cr_assert_eq(r.rc, OT_HTTP_E_BAD, "17 digits, even zeros, are refused");
}

static const char *const bad_chunked[] = {
    "5g\r\nhello\r\n0\r\n\r\n",       /* bad hex */
    "g\r\n",                          /* no digits */
    "\r\nhello\r\n",                  /* empty size */
    "-5\r\nhello\r\n",                /* sign */
    "0x5\r\nhello\r\n",               /* hex prefix */
    "5\r\nhelloX\r\n0\r\n\r\n",       /* missing CRLF after data */
    "5\r\nhello\rX0\r\n\r\n",         /* CR without LF after data */
    "5\r\nhello\n0\r\n\r\n",          /* bare LF after data */
    "5\nhello\r\n0\r\n\r\n",          /* bare LF after size */
    "5\rhello\r\n0\r\n\r\n",          /* bare CR after size */
    "5 \r\nhello\r\n0\r\n\r\n",       /* BWS not followed by ';' */
    "5;a\nb\r\nhello\r\n0\r\n\r\n",   /* LF inside extension */
    "5;a\x01\r\nhello\r\n0\r\n\r\n",  /* CTL inside extension */
    "0\r\n X: y\r\n\r\n",             /* obs-fold in trailer */
    "0\r\nX y: z\r\n\r\n",            /* bad trailer name */
    "0\r\nX: a\x7f\r\n\r\n",          /* DEL in trailer value */
    "0\r\nX: y\n\r\n",                /* bare LF in trailer */
    "0\r\n\n",                        /* bare LF as final line */
    "0\r\n\rX",                       /* bare CR as final line */
};

Test(http_chunked, malformed_bodies_are_rejected_at_any_split)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(bad_chunked); i++) {
        dec_result r = decode_all_ways(bad_chunked[i], strlen(bad_chunked[i]));
        cr_assert_eq(r.rc, OT_HTTP_E_BAD, "case %zu", i);
    }
}

Test(http_chunked, extension_and_trailer_limits)
{
    size_t n = 5000;
    char *b = malloc(n + 64);
    memcpy(b, "1;", 2);
    memset(b + 2, 'x', OT_HTTP_CHUNK_EXT_MAX - 1);
    memcpy(b + 2 + OT_HTTP_CHUNK_EXT_MAX - 1, "\r\na\r\n0\r\n\r\n", 11);
    cr_assert(decode_steps(b, strlen(b), 0).done, "4 KiB of extension is accepted");
    memset(b + 2, 'x', OT_HTTP_CHUNK_EXT_MAX);
    memcpy(b + 2 + OT_HTTP_CHUNK_EXT_MAX, "\r\na\r\n0\r\n\r\n", 11);
    cr_assert_eq(decode_steps(b, strlen(b), 0).rc, OT_HTTP_E_BAD);
    cr_assert_eq(decode_steps(b, strlen(b), 7).rc, OT_HTTP_E_BAD);

    memcpy(b, "0\r\nX: ", 6);
    memset(b + 6, 'v', n - 6);
    memcpy(b + n, "\r\n\r\n", 5);
    cr_assert_eq(decode_steps(b, strlen(b), 0).rc, OT_HTTP_E_BAD);
    /* Early: refused before the trailer ends. */
    ot_http_chunked d;
    ot_http_chunked_init(&d);
    size_t ol;
    cr_assert_eq(ot_http_chunked_decode(&d, b, OT_HTTP_TRAILER_MAX + 10, b, &ol), OT_HTTP_E_BAD);
    free(b);
}

Test(http_chunked, errors_are_sticky)
{
    ot_http_chunked d;
    ot_http_chunked_init(&d);
    char out[16];
    size_t ol;
    cr_assert_eq(ot_http_chunked_decode(&d, S("z"), out, &ol), OT_HTTP_E_BAD);
    cr_assert_eq(ot_http_chunked_decode(&d, S("0\r\n\r\n"), out, &ol), OT_HTTP_E_BAD);
}

/* ---- URL helpers ---- */

Test(http_url, decode_handles_percent_and_plus)
{
    char out[64];
    size_t n;
    cr_assert_eq(ot_url_decode(OT_STR("a%20b+c%2Bd%e2%82%ac"), out, sizeof(out), &n), OT_OK);
    cr_assert_eq(n, 10);
    cr_assert(memcmp(out, "a b c+d\xe2\x82\xac", 10) == 0);
    cr_assert_eq(ot_url_decode_path(OT_STR("a+b%2F"), out, sizeof(out), &n), OT_OK);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(out, "a+b/", 4) == 0);
    cr_assert_eq(ot_url_decode(OT_STR(""), out, sizeof(out), &n), OT_OK);
    cr_assert_eq(n, 0);
}

Test(http_url, decode_rejects_bad_escapes_nul_and_overflow)
{
    char out[4];
    size_t n;
    cr_assert_eq(ot_url_decode(OT_STR("%"), out, sizeof(out), &n), OT_ERR);
    cr_assert_eq(ot_url_decode(OT_STR("%4"), out, sizeof(out), &n), OT_ERR);
    cr_assert_eq(ot_url_decode(OT_STR("%zz"), out, sizeof(out), &n), OT_ERR);
    cr_assert_eq(ot_url_decode(OT_STR("%g1"), out, sizeof(out), &n), OT_ERR);
    cr_assert_eq(ot_url_decode(OT_STR("a%00"), out, sizeof(out), &n), OT_ERR);
    cr_assert_eq(ot_url_decode(OT_STR("abcd"), out, sizeof(out), &n), OT_OK);
    cr_assert_eq(ot_url_decode(OT_STR("abcde"), out, sizeof(out), &n), OT_ERR);
    cr_assert_eq(ot_url_decode(OT_STR("%41%41%41%41%41"), out, sizeof(out), &n), OT_ERR);
}

Test(http_url, query_get_finds_first_exact_key)
{
    ot_str v;
    ot_str q = OT_STR("ab=1&a=2&flag&a=3&empty=");
    cr_assert(ot_http_query_get(q, "a", &v));
    cr_assert(str_is(v, "2"));
    cr_assert(ot_http_query_get(q, "ab", &v));
    cr_assert(str_is(v, "1"));
    cr_assert(ot_http_query_get(q, "flag", &v));
    cr_assert_eq(v.len, 0);
    cr_assert(ot_http_query_get(q, "empty", &v));
    cr_assert_eq(v.len, 0);
    cr_assert(!ot_http_query_get(q, "b", &v));
    cr_assert(!ot_http_query_get(q, "fla", &v));
    cr_assert(!ot_http_query_get(OT_STR_NULL, "a", &v));
    cr_assert(ot_http_query_get(OT_STR("since=12%20"), "since", &v));
    cr_assert(str_is(v, "12%20"), "value stays encoded");
}
