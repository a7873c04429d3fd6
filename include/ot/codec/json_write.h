/* JSON (RFC 8259) writer: ot_jw emits compact JSON into an ot_buf, inserting
 * commas and colons itself; misuse (value without key in an object,
 * unbalanced close, nesting deeper than OT_JW_MAX_DEPTH, allocation failure)
 * latches an error that ot_jw_error reports once at the end. Integers are
 * formatted by hand (no printf on the paths that answer every request). */
#ifndef OT_JSON_WRITE_H
#define OT_JSON_WRITE_H

#include "ot/core/buf.h"
#include "ot/core/common.h"

#define OT_JW_MAX_DEPTH 32

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
