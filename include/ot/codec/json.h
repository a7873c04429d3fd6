/* JSON (RFC 8259) reader: one validating pass (the writer is json_write.h,
 * included here because most modules that read JSON also write it).
 *
 * Reader: ot_json_parse walks the text once, checking the whole grammar as it
 * goes (separators, the number and literal grammar, string escapes, UTF-8 in
 * strings, nesting depth, trailing bytes after the root, duplicate object keys)
 * and recording one token per value and per key into the CALLER's array (no
 * allocation). There is no second validation pass over the bytes: a document
 * that parses is valid JSON, and every accessor below may then assume
 * well-formed tokens. Each token knows the index just past its subtree, so
 * skipping a value is O(1). ot_json keeps pointers into `js` and `toks`: both
 * must outlive it.
 *
 * Duplicate keys are rejected because RFC 8259 §4 leaves their meaning to the
 * implementation ("SHOULD be unique"): one parser takes the first, another the
 * last. A token whose "role" or "alg" two components read differently is the
 * classic privilege-escalation shape, so ambiguity is an error.
 */
#ifndef OT_JSON_H
#define OT_JSON_H

#include "ot/core/buf.h"
#include "ot/core/common.h"
#include "ot/core/utf8.h"
#include "ot/codec/json_write.h"

/* Containers nested deeper than this are rejected (bounds the recursion). */
#define OT_JSON_MAX_DEPTH 64

enum { OT_JSON_OBJ = 1, OT_JSON_ARR, OT_JSON_STR, OT_JSON_PRIM };

/* One value or key. Strings: start/end bound the contents without the quotes;
 * primitives: their text; containers: '{' or '[' up to just past the closer.
 * size counts direct children (an object's keys, a key's one value, an array's
 * elements), all following in document order; next is the index just past the
 * subtree (for a key: past its value). */
typedef struct {
    uint8_t type;
    uint8_t esc; /* string with at least one backslash escape */
    int32_t start, end;
    int32_t size;
    int32_t next;
} ot_json_tok;

typedef struct {
    const char *js;
    size_t len;
    ot_json_tok *toks;
    int ntoks;
} ot_json;

/* Parses js[0..len) into toks[0..max_toks). 0, or OT_ERR when the text is not
 * one valid JSON value (optionally surrounded by whitespace) or needs more than
 * max_toks tokens. Token 0 is the root. */
int ot_json_parse(ot_json *doc, const char *js, size_t len, ot_json_tok *toks, int max_toks);
/* The same into stack[0..nstack) or, when the text needs more tokens, into a
 * heap array returned in *heap (NULL otherwise, and always NULL on failure;
 * the caller frees it after its last use of doc). A text of n bytes never
 * needs more than n/2 + 1. */
int ot_json_parse_grow(ot_json *doc, const char *js, size_t len, ot_json_tok *stack, int nstack, ot_json_tok **heap);

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

#endif
