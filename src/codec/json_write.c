/* JSON writer and string escaping. See include/ot/codec/json_write.h. */
#include "ot/codec/json_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/core/fmt.h"
#include "ot/core/utf8.h"


int ot_json_escape(ot_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while ((i = ot_json_esc_plain_run(p, i, n, OT_JSON_ESC_STD)) < n) {
        char esc[6];
        size_t adv, elen = ot_json_esc_one(p + i, n - i, OT_JSON_ESC_STD, esc, &adv);
        if (elen == 0) { /* valid UTF-8: part of the run */
            i += adv;
            continue;
        }
        if (ot_buf_append(out, s + run, i - run) < 0 || ot_buf_append(out, esc, elen) < 0)
            return OT_ERR;
        run = i += adv;
    }
    return ot_buf_append(out, s + run, n - run);
}

static void jw_put(ot_jw *w, const char *s, size_t n)
{
    if (!w->err && ot_buf_append(w->out, s, n) < 0)
        w->err = OT_ERR;
}

static uint64_t jw_bit(const ot_jw *w) { return 1ull << w->depth; }

/* Places the separator before a value; false (error latched) if a value is
 * not allowed here. */
static bool jw_value(ot_jw *w)
{
    if (w->err)
        return false;
    uint64_t bit = jw_bit(w);
    if (w->depth == 0) {
        if (!(w->first & bit)) /* a second root value would not be one JSON text */
            w->err = OT_ERR;
        w->first &= ~bit;
    } else if (w->is_obj & bit) {
        if (!w->after_key)
            w->err = OT_ERR;
        w->after_key = false;
    } else {
        if (!(w->first & bit))
            jw_put(w, ",", 1);
        w->first &= ~bit;
    }
    return !w->err;
}

void ot_jw_init(ot_jw *w, ot_buf *out) { *w = (ot_jw){ .out = out, .first = 1 }; }

static void jw_open(ot_jw *w, bool obj)
{
    if (!jw_value(w))
        return;
    if (w->depth >= OT_JW_MAX_DEPTH) {
        w->err = OT_ERR;
        return;
    }
    w->depth++;
    uint64_t bit = jw_bit(w);
    w->first |= bit;
    w->is_obj = obj ? (w->is_obj | bit) : (w->is_obj & ~bit);
    jw_put(w, obj ? "{" : "[", 1);
}

static void jw_close(ot_jw *w, bool obj)
{
    if (w->err)
        return;
    if (w->depth == 0 || !!(w->is_obj & jw_bit(w)) != obj || w->after_key) {
        w->err = OT_ERR;
        return;
    }
    jw_put(w, obj ? "}" : "]", 1);
    w->depth--;
}

void ot_jw_obj_open(ot_jw *w) { jw_open(w, true); }
void ot_jw_obj_close(ot_jw *w) { jw_close(w, true); }
void ot_jw_arr_open(ot_jw *w) { jw_open(w, false); }
void ot_jw_arr_close(ot_jw *w) { jw_close(w, false); }

void ot_jw_key_str(ot_jw *w, ot_str key)
{
    if (w->err)
        return;
    uint64_t bit = jw_bit(w);
    if (w->depth == 0 || !(w->is_obj & bit) || w->after_key) {
        w->err = OT_ERR;
        return;
    }
    jw_put(w, (w->first & bit) ? "\"" : ",\"", (w->first & bit) ? 1 : 2);
    w->first &= ~bit;
    if (!w->err && ot_json_escape(w->out, key.base, key.len) < 0)
        w->err = OT_ERR;
    jw_put(w, "\":", 2);
    w->after_key = true;
}

void ot_jw_key(ot_jw *w, const char *key) { ot_jw_key_str(w, ot_str_c(key)); }

void ot_jw_str(ot_jw *w, ot_str s)
{
    if (!jw_value(w))
        return;
    jw_put(w, "\"", 1);
    if (!w->err && ot_json_escape(w->out, s.base, s.len) < 0)
        w->err = OT_ERR;
    jw_put(w, "\"", 1);
}

void ot_jw_cstr(ot_jw *w, const char *s)
{
    if (s)
        ot_jw_str(w, ot_str_c(s));
    else
        ot_jw_null(w);
}

static void jw_scalar(ot_jw *w, const char *s, size_t n)
{
    if (jw_value(w))
        jw_put(w, s, n);
}

void ot_jw_int(ot_jw *w, int64_t v)
{
    char tmp[OT_FMT_U64_MAX + 1];
    size_t n = 0;
    if (v < 0)
        tmp[n++] = '-';
    /* The magnitude in unsigned arithmetic: defined for INT64_MIN too. */
    n += ot_fmt_u64(tmp + n, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
    jw_scalar(w, tmp, n);
}

void ot_jw_uint(ot_jw *w, uint64_t v)
{
    char tmp[OT_FMT_U64_MAX];
    jw_scalar(w, tmp, ot_fmt_u64(tmp, v));
}

void ot_jw_double(ot_jw *w, double v)
{
    if (!isfinite(v)) {
        ot_jw_null(w);
        return;
    }
    /* %g never yields a form JSON rejects for finite values ("1e+20", "-0",
     * "0.5"); the process must keep the "C" numeric locale (no setlocale). */
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof tmp, "%.17g", v);
    jw_scalar(w, tmp, (size_t)n);
}

void ot_jw_bool(ot_jw *w, bool v) { jw_scalar(w, v ? "true" : "false", v ? 4 : 5); }
void ot_jw_null(ot_jw *w) { jw_scalar(w, "null", 4); }
void ot_jw_raw(ot_jw *w, ot_str json) { jw_scalar(w, json.base, json.len); }

int ot_jw_error(const ot_jw *w)
{
    /* Open containers, a dangling key or no value at all: not a JSON text. */
    return (w->err || w->depth != 0 || w->after_key || (w->first & 1)) ? OT_ERR : 0;
}
