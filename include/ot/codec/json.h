/* JSON (RFC 8259): a validating reader over jsmn tokens and an escaping writer.
 *
 * Reader: ot_json_parse tokenizes with jsmn into the CALLER's token array (no
 * allocation) and then checks what jsmn does not: the separators between
 * tokens (jsmn accepts "[1 2]", "[1,,2]", "{"a":1,}"), the number and literal
 * grammar, string escapes, UTF-8 in strings, trailing bytes after the root and
 * duplicate object keys. A document that passes is valid JSON; every accessor
 * below may then assume well-formed tokens. ot_json keeps pointers into `js`
 * and `toks`: both must outlive it.
 *
 * Duplicate keys are rejected because RFC 8259 §4 leaves their meaning to the
 * implementation ("SHOULD be unique"): one parser takes the first, another the
 * last. A token whose "role" or "alg" two components read differently is the
 * classic privilege-escalation shape, so ambiguity is an error.
 *
 * Writer: ot_jw emits compact JSON into an ot_buf, inserting commas and
 * colons itself; misuse (value without key in an object, unbalanced close,
 * nesting deeper than OT_JW_MAX_DEPTH, allocation failure) latches an error
 * that ot_jw_error reports once at the end.
 */
#ifndef OT_JSON_H
#define OT_JSON_H

/* jsmn's token layout depends on these macros: they are set HERE so that every
 * translation unit sees the same jsmntok_t. JSMN_STRICT: only true/false/null
 * and numbers as unquoted primitives, no primitive keys. JSMN_PARENT_LINKS:
 * closing a container walks parents (O(depth)) instead of scanning every token
 * back (O(n) per close, O(n^2) on hostile input). The implementation is
 * compiled once, in src/json.c (which defines OT_JSON_JSMN_IMPL first); other
 * modules use the ot_json API rather than jsmn directly. */
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#ifndef OT_JSON_JSMN_IMPL
#define JSMN_HEADER
#endif
#include <jsmn.h>

#include "ot/core/buf.h"
#include "ot/core/common.h"
#include "ot/core/utf8.h"

/* Containers nested deeper than this are rejected by the reader (bounds its
 * recursion) and by the writer. */
#define OT_JSON_MAX_DEPTH 64
#define OT_JW_MAX_DEPTH 32

typedef struct {
    const char *js;
    size_t len;
    jsmntok_t *toks;
    int ntoks;
} ot_json;

/* Parses js[0..len) into toks[0..max_toks). 0, or OT_ERR when the text is not
 * one valid JSON value (optionally surrounded by whitespace) or needs more than
 * max_toks tokens. Token 0 is the root. */
int ot_json_parse(ot_json *doc, const char *js, size_t len, jsmntok_t *toks, int max_toks);
/* The same into stack[0..nstack) or, when the text needs more tokens, into a
 * heap array returned in *heap (NULL otherwise; the caller frees it after
 * its last use of doc). A text of n bytes never needs more than n/2 + 1. */
int ot_json_parse_grow(ot_json *doc, const char *js, size_t len, jsmntok_t *stack, int nstack, jsmntok_t **heap);

/* Value token of `key` in object `obj`, or -1 (absent, or obj not an object). */
int ot_json_obj_get(const ot_json *d, int obj, const char *key);
/* Index of the first token after tok's whole subtree (== ntoks at the end). */
int ot_json_skip(const ot_json *d, int tok);

bool ot_json_is_obj(const ot_json *d, int t);
bool ot_json_is_arr(const ot_json *d, int t);
bool ot_json_is_str(const ot_json *d, int t);
bool ot_json_is_null(const ot_json *d, int t);
bool ot_json_is_num(const ot_json *d, int t);
bool ot_json_is_bool(const ot_json *d, int t);

/* Element count of array `arr`, or -1 if it is not an array. */
int ot_json_arr_len(const ot_json *d, int arr);
/* Token index of the i-th element, or -1. O(i). */
int ot_json_arr_at(const ot_json *d, int arr, int i);

/* Appends the unescaped UTF-8 value of string token t. OT_ERR if t is not a
 * string or on allocation failure. Note the result may contain NUL (\u0000). */
int ot_json_get_str(const ot_json *d, int t, ot_buf *out);
/* Same into a fixed buffer (no allocation): writes *outlen bytes, no NUL is
 * added. OT_ERR if t is not a string or the value needs more than cap bytes. */
int ot_json_get_str_buf(const ot_json *d, int t, char *out, size_t cap, size_t *outlen);
/* String token t, unescaped, equals the NUL-terminated `lit` byte for byte. */
bool ot_json_str_eq(const ot_json *d, int t, const char *lit);

/* Source text of the token: string contents without quotes (still escaped),
 * number/literal text, or the whole container text. */
ot_str ot_json_raw(const ot_json *d, int t);
/* Raw JSON text of the value, quotes included for strings. */
ot_str ot_json_raw_value(const ot_json *d, int t);

/* OT_ERR unless t is an integer literal (no fraction, no exponent) that fits. */
int ot_json_get_int64(const ot_json *d, int t, int64_t *out);
int ot_json_get_bool(const ot_json *d, int t, bool *out);

/* ---- writer ---- */
typedef struct {
    ot_buf *out;
    uint32_t depth;     /* open containers */
    uint64_t first;     /* bit d: no element written yet at depth d (bit 0: root) */
    uint64_t is_obj;    /* bit d: container at depth d is an object */
    bool after_key;     /* a key was written, its value is due */
    int err;
} ot_jw;

void ot_jw_init(ot_jw *w, ot_buf *out);
void ot_jw_obj_open(ot_jw *w);
void ot_jw_obj_close(ot_jw *w);
void ot_jw_arr_open(ot_jw *w);
void ot_jw_arr_close(ot_jw *w);
void ot_jw_key(ot_jw *w, const char *key);
void ot_jw_key_str(ot_jw *w, ot_str key);
void ot_jw_str(ot_jw *w, ot_str s);
void ot_jw_cstr(ot_jw *w, const char *s); /* NULL -> null */
void ot_jw_int(ot_jw *w, int64_t v);
void ot_jw_uint(ot_jw *w, uint64_t v);
/* Shortest of %.15g/%.17g that reads back exactly; NaN and infinities have no
 * JSON form and are written as null (as JavaScript's JSON.stringify does). */
void ot_jw_double(ot_jw *w, double v);
void ot_jw_bool(ot_jw *w, bool v);
void ot_jw_null(ot_jw *w);
/* Splices an already-encoded JSON value; the caller vouches for it. */
void ot_jw_raw(ot_jw *w, ot_str json);
/* 0, or OT_ERR if any call failed or containers are still open. */
int ot_jw_error(const ot_jw *w);

/* Appends s[0..n) escaped for use between JSON quotes: '"' '\\' and controls
 * < 0x20 (\n \r \t \b \f, others \u00XX); DEL and valid UTF-8 pass through;
 * each byte of an invalid UTF-8 sequence becomes U+FFFD, so the output is
 * always valid JSON text. 0 or OT_ERR (allocation). */
int ot_json_escape(ot_buf *out, const char *s, size_t n);

#endif
