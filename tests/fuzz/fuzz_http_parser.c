/* libFuzzer target for src/http_parser.c.
 *
 * Input: byte 0 picks the limits (defaults, or small ones from bytes 1..3 so
 * 414/431 paths are reached), the rest is a request head possibly followed by
 * a chunked body. Checks, beyond "no crash / no sanitizer report":
 *  - the result is a known code, or a head length <= len;
 *  - every ot_str lies inside the head, the head ends in CRLFCRLF and holds
 *    no bare CR or LF, and the derived semantics are self-consistent;
 *  - for small inputs, every prefix is INCOMPLETE or gives the same result
 *    (the byte-by-byte equivalence the connection layer relies on);
 *  - the chunked decoder agrees with itself whole, byte by byte and in place,
 *    never consumes more than it was given nor outputs more than it consumed.
 * Every parse runs on an exact-size heap copy so ASan sees any overread. */
#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/http_parser.h"

#include "fuzz_check.h"

#define NHDR 24
#define SMALL_INPUT 384

static bool known_code(int rc)
{
    switch (rc) {
    case OT_HTTP_INCOMPLETE:
    case OT_HTTP_E_BAD:
    case OT_HTTP_E_URI_TOO_LONG:
    case OT_HTTP_E_HEAD_TOO_LARGE:
    case OT_HTTP_E_VERSION:
    case OT_HTTP_E_SMUGGLING:
    case OT_HTTP_E_TE:
    case OT_HTTP_E_BAD_HEADER:
    case OT_HTTP_E_METHOD:
        return true;
    default:
        return false;
    }
}

static void check_in(ot_str s, const char *buf, size_t n)
{
    if (s.len == 0)
        return;
    CHECK(s.base >= buf && s.base + s.len <= buf + n);
}

static int parse_copy(const uint8_t *data, size_t len, ot_http_request *r, ot_http_header *h,
                      const ot_http_limits *lim, char **keep)
{
    char *b = malloc(len ? len : 1);
    memcpy(b, data, len);
    memset(r, 0, sizeof(*r));
    r->headers = h;
    r->num_headers = NHDR;
    int rc = ot_http_parse_request(b, len, r, lim);
    if (keep)
        *keep = b;
    else
        free(b);
    return rc;
}

static void check_request(const ot_http_request *r, const char *b, size_t n, const ot_http_limits *lim)
{
    CHECK(n >= 4 && memcmp(b + n - 4, "\r\n\r\n", 4) == 0);
    CHECK(n <= lim->max_head);
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\r')
            CHECK(i + 1 < n && b[i + 1] == '\n');
        if (b[i] == '\n')
            CHECK(i > 0 && b[i - 1] == '\r');
    }
    CHECK(r->num_headers <= NHDR && r->num_headers <= lim->max_headers);
    check_in(r->method, b, n);
    check_in(r->target, b, n);
    check_in(r->query, b, n);
    if (r->absolute_form && r->path.len == 1 && r->path.base[0] == '/')
        ; /* the static "/" of an empty absolute-form path */
    else
        check_in(r->path, b, n);
    check_in(r->host, b, n);
    check_in(r->authorization, b, n);
    check_in(r->content_type, b, n);
    check_in(r->idempotency_key, b, n);
    check_in(r->if_match, b, n);
    for (size_t i = 0; i < r->num_headers; i++) {
        CHECK(r->headers[i].name.len > 0);
        check_in(r->headers[i].name, b, n);
        check_in(r->headers[i].value, b, n);
    }
    CHECK(r->method.len > 0 && r->target.len > 0 && r->target.len <= lim->max_uri);
    CHECK(r->minor_version == 0 || r->minor_version == 1);
    CHECK(!(r->chunked && r->content_length >= 0));
    CHECK(!(r->chunked && r->minor_version == 0));
    CHECK(r->content_length >= -1);
    CHECK(!(r->upgrade_websocket && r->minor_version == 0));
}

/* Decoding never grows a string, so cap = len must always be enough. */
static void check_decode(ot_str in, bool path)
{
    char *out = malloc(in.len ? in.len : 1);
    size_t n = (size_t)-1;
    int rc = path ? ot_url_decode_path(in, out, in.len, &n) : ot_url_decode(in, out, in.len, &n);
    CHECK(rc == OT_ERR || (rc == OT_OK && n <= in.len));
    if (rc == OT_OK)
        CHECK(memchr(out, 0, n) == NULL);
    free(out);
}

static void check_url_helpers(const ot_http_request *r)
{
    check_decode(r->path, true);
    static const char *const keys[] = { "since", "q", "a", "" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ot_str v;
        if (ot_http_query_get(r->query, keys[i], &v)) {
            CHECK(v.base >= r->query.base && v.base + v.len <= r->query.base + r->query.len);
            check_decode(v, false);
        }
    }
}

static void check_chunked(const uint8_t *data, size_t len)
{
    char *in = malloc(len ? len : 1), *out = malloc(len ? len : 1);
    memcpy(in, data, len);

    ot_http_chunked d;
    ot_http_chunked_init(&d);
    size_t olen = 0;
    ssize_t whole = ot_http_chunked_decode(&d, in, len, out, &olen);
    bool done = d.done;
    CHECK(whole == OT_HTTP_E_BAD || (whole >= 0 && (size_t)whole <= len && olen <= (size_t)whole));
    CHECK(whole < 0 || done || (size_t)whole == len);

    /* Byte by byte, in place: the output overwrites the input it came from. */
    ot_http_chunked_init(&d);
    size_t i = 0, o = 0;
    ssize_t rc = 0;
    while (i < len && !d.done) {
        size_t ol = 0;
        rc = ot_http_chunked_decode(&d, in + i, 1, in + o, &ol);
        if (rc < 0)
            break;
        CHECK(rc == 1 && ol <= 1);
        i += 1;
        o += ol;
    }
    if (whole < 0) {
        CHECK(rc < 0);
    } else {
        CHECK(rc >= 0 && i == (size_t)whole && d.done == done && o == olen);
        CHECK(memcmp(in, out, olen) == 0);
    }
    free(in);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    ot_http_limits lim;
    ot_http_limits_default(&lim);
    if (data[0] & 1) {
        lim.max_uri = data[1] % 64;
        lim.max_head = data[2];
        lim.max_headers = data[3] % 8;
    }
    const uint8_t *p = data + 4;
    size_t len = size - 4;

    ot_http_header h[NHDR];
    ot_http_request r;
    char *b = NULL;
    int rc = parse_copy(p, len, &r, h, &lim, &b);
    CHECK(rc > 0 ? (size_t)rc <= len : known_code(rc));
    if (rc > 0) {
        check_request(&r, b, (size_t)rc, &lim);
        check_url_helpers(&r);
    } else {
        CHECK(ot_http_error_code(rc) && ot_http_error_message(rc));
        CHECK(rc == OT_HTTP_INCOMPLETE || ot_http_error_status(rc) >= 400);
    }
    free(b);

    if (len <= SMALL_INPUT) {
        ot_http_header h2[NHDR];
        ot_http_request r2;
        for (size_t k = 0; k < len; k++) {
            int prc = parse_copy(p, k, &r2, h2, &lim, NULL);
            if (rc > 0 && k < (size_t)rc)
                CHECK(prc == OT_HTTP_INCOMPLETE);
            else
                CHECK(prc == OT_HTTP_INCOMPLETE || prc == rc);
        }
    }

    size_t off = rc > 0 ? (size_t)rc : 0;
    check_chunked(p + off, len - off);
    return 0;
}
