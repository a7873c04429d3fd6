/* HTTP/1.1 request-head parser and chunked body decoder (RFC 9112).
 *
 * Pure functions over bytes, in the shape of picohttpparser: nothing is
 * allocated, no socket is touched, and every ot_str written into an
 * ot_http_request points INTO the caller's buffer (the one exception is the
 * path of an absolute-form target with an empty path, which points at a static
 * "/"). Those pointers stay valid only while the caller keeps the buffer where
 * it is: compact or grow the buffer and the request must be parsed again.
 *
 * Strictness is deliberate: every ambiguity a front proxy might resolve
 * differently (request smuggling, RFC 9112 §11.2) is an error here, and every
 * error means "answer and close the connection", since after a bad head the
 * start of the next request can no longer be found.
 */
#ifndef OT_HTTP_PARSER_H
#define OT_HTTP_PARSER_H

#include <sys/types.h>

#include "ot/core/common.h"

typedef struct {
    ot_str name, value;
} ot_http_header;

typedef struct {
    size_t max_uri;     /* request-target bytes; over -> OT_HTTP_E_URI_TOO_LONG (414). default 8192 */
    size_t max_head;    /* whole head incl. request line; over -> OT_HTTP_E_HEAD_TOO_LARGE (431). default 8192 */
    size_t max_headers; /* header field count (also bounded by the caller's array). over -> 431. default 100 */
} ot_http_limits;

typedef struct {
    ot_str method, target, path, query; /* path = target up to '?', query = after '?' (without it), may be empty */
    int minor_version;                  /* HTTP/1.0 -> 0, HTTP/1.1 (and 1.2..1.9, see below) -> 1 */
    ot_http_header *headers;            /* in: caller's array */
    size_t num_headers;                 /* in: capacity of headers; out (on success only): count */
    /* Semantics derived while parsing, so the connection layer never re-walks headers: */
    int64_t content_length; /* -1 if absent */
    bool chunked;           /* Transfer-Encoding: chunked (the only coding accepted) */
    bool keep_alive;        /* 1.1: true unless "Connection: close"; 1.0: only with a keep-alive token */
    bool expect_continue;   /* Expect: 100-continue on HTTP/1.1 (ignored on 1.0, RFC 9110 §10.1.1) */
    bool upgrade_websocket; /* HTTP/1.1, Connection has "upgrade" and Upgrade has "websocket" */
    bool absolute_form;     /* target was absolute-form; host then comes from the target (§3.2.2) */
    /* Convenience copies (empty {NULL,0} if absent). Host, Authorization,
     * Content-Type and Idempotency-Key given twice are rejected (400);
     * If-Match is a list and may legally repeat: if_match is the first one,
     * a handler that needs all of them walks headers. */
    ot_str host, authorization, content_type, idempotency_key, if_match;
} ot_http_request;

enum {
    OT_HTTP_INCOMPLETE = -2,         /* need more bytes */
    OT_HTTP_E_BAD = -100,            /* 400 generic malformed (request line, Host) */
    OT_HTTP_E_URI_TOO_LONG = -101,   /* 414 */
    OT_HTTP_E_HEAD_TOO_LARGE = -102, /* 431 (size or field count) */
    OT_HTTP_E_VERSION = -103,        /* 505: HTTP/0.x and HTTP/2+ on this port */
    OT_HTTP_E_SMUGGLING = -104,      /* 400: CL with TE, differing CL, bad CL value, TE on HTTP/1.0 */
    OT_HTTP_E_TE = -105,             /* 501: any coding but a single final chunked */
    OT_HTTP_E_BAD_HEADER = -106,     /* 400: bad name, space before colon, obs-fold, bare CR/LF, CTL in value */
    OT_HTTP_E_METHOD = -107,         /* 400: method is not a token */
};

void ot_http_limits_default(ot_http_limits *l);

/* Parses the request head in buf[0..len). Returns the head length (> 0, bytes
 * up to and including the blank line, counting up to 4 ignored leading CRLFs)
 * when complete, OT_HTTP_INCOMPLETE, or an OT_HTTP_E_* error. lim may be NULL
 * (defaults). Restarts from the beginning on every call.
 *
 * Over-limit input is refused as soon as it is visible, complete or not, and
 * the answer never depends on more than the first max_head bytes: the caller
 * never needs to buffer more than max_head bytes of head. A target longer than
 * max_uri, or one still unfinished when max_head bytes are in, is 414; any
 * other head that does not fit in max_head bytes (or has more fields than
 * min(max_headers, capacity)) is 431. Every prefix of an input parses to
 * OT_HTTP_INCOMPLETE or to the same result as the whole.
 *
 * Decisions (RFC 9112 / RFC 9110):
 *  - Lines end in CRLF only. A bare LF or bare CR anywhere in the head is an
 *    error: stricter than the MAY of §2.2, because a front end that splits on
 *    bare LF and one that does not disagree on where headers end.
 *  - HTTP/1.2..1.9 are processed as 1.1 (minor_version = 1): a recipient uses
 *    the highest minor version it implements (RFC 9110 §2.5, §6.2).
 *    HTTP/0.x and HTTP/2..9 -> 505. Anything not "HTTP/" DIGIT "." DIGIT -> 400.
 *  - Targets: origin-form, "*" for OPTIONS only, or absolute-form with an
 *    http/https scheme, a non-empty authority and no userinfo (RFC 9110 §4.2.4).
 *    Bytes outside 0x21..0x7E and '#' are rejected.
 *  - Content-Length is 1*DIGIT (no sign, < 2^63). The list form "5, 5" and
 *    repeated headers are accepted only if every value is equal (RFC 9110 §8.6).
 *  - Transfer-Encoding, across all its headers, must be exactly one "chunked"
 *    (case-insensitive, no parameters) optionally among empty list elements;
 *    anything else (gzip, identity, chunked twice) is 501 since we implement
 *    no other coding (RFC 9112 §6.1, §7).
 *  - A repeated or invalid Host is 400, a missing Host on 1.1 is 400 (§3.2).
 */
int ot_http_parse_request(const char *buf, size_t len, ot_http_request *req, const ot_http_limits *lim);

int ot_http_error_status(int err);          /* -> 400/414/431/501/505 */
const char *ot_http_error_message(int err); /* human message for the JSON error body */
const char *ot_http_error_code(int err);    /* short machine code, e.g. "header_too_large" */

/* Chunked body decoder (RFC 9112 §7.1), incremental and resumable at ANY byte
 * boundary. Chunk extensions are validated for characters and skipped;
 * trailer fields are validated and discarded (we honour none). */
typedef struct {
    int state;
    uint64_t chunk_left;
    size_t ext_bytes;     /* chunk-ext bytes in the current size line */
    size_t trailer_bytes; /* trailer section bytes so far */
    bool done;            /* final CRLF of the trailer section consumed */
    unsigned digits;      /* hex digits in the current size line */
} ot_http_chunked;

#define OT_HTTP_CHUNK_MAX ((uint64_t)1 << 62)
#define OT_HTTP_CHUNK_EXT_MAX 4096
#define OT_HTTP_TRAILER_MAX 4096

void ot_http_chunked_init(ot_http_chunked *d);
/* Consumes from in[0..len), writes decoded data to out (out may == in; the
 * output never outruns the input, so out needs len bytes) and sets *outlen.
 * Returns input bytes consumed (>= 0; stops right after the final CRLF of the
 * trailer section, leaving following pipelined bytes unconsumed, and sets
 * d->done), or OT_HTTP_E_BAD on malformed input. After done, consumes nothing. */
ssize_t ot_http_chunked_decode(ot_http_chunked *d, const char *in, size_t len, char *out, size_t *outlen);

/* URL helpers for the router/handlers. Both reject a '%' not followed by two
 * hex digits and "%00" (decoded values end up in C-string APIs such as libpq
 * parameters, where a NUL would silently truncate), and output over cap. */
/* Query values (application/x-www-form-urlencoded): %XX, and '+' -> space. */
int ot_url_decode(ot_str in, char *out, size_t cap, size_t *outlen);
/* Path segments: %XX only; '+' stays '+'. */
int ot_url_decode_path(ot_str in, char *out, size_t cap, size_t *outlen);
/* First key=value pair of query whose raw key equals key; *raw_value is still
 * encoded (empty for "key" or "key="). Pairs are separated by '&'. */
bool ot_http_query_get(ot_str query, const char *key, ot_str *raw_value);

#endif
