/* An order_events row's event JSON from its columns; see event_row.h. */
#include "ot/codec/event_row.h"

#include <string.h>

#include "ot/core/utf8.h"

/* Keys with the separators json_build_object puts around them. */
#define K_FIRST(k) "{\"" k "\" : "
#define K_NEXT(k) ", \"" k "\" : "

/* The widest escape, "\u00xx", is six bytes for one. */
#define ESC_MAX 6

typedef struct {
    char *p;
} wr;

static void put(wr *w, const char *s, size_t n)
{
    memcpy(w->p, s, n);
    w->p += n;
}
#define PUT_LIT(w, lit) put(w, lit, sizeof(lit) - 1)

/* The member value between quotes (escape_json); returns where its content
 * starts and its length, the slice ot_json_raw gives for it. The responses'
 * escapes (utf8.h's STD form) but for bytes >= 0x80: PostgreSQL copies them
 * as they are, where that form would turn invalid UTF-8 into U+FFFD (a
 * SQL_ASCII database can hold such text). */
static ot_str put_quoted(wr *w, ot_str s)
{
    const unsigned char *p = (const unsigned char *)s.base;
    *w->p++ = '"';
    char *start = w->p;
    size_t i = 0;
    for (;;) {
        size_t run = ot_json_esc_plain_run(p, i, s.len, OT_JSON_ESC_STD);
        put(w, s.base + i, run - i);
        if ((i = run) >= s.len)
            break;
        if (p[i] >= 0x80) {
            *w->p++ = (char)p[i++];
            continue;
        }
        char esc[ESC_MAX];
        size_t adv, n = ot_json_esc_one(p + i, s.len - i, OT_JSON_ESC_STD, esc, &adv);
        put(w, esc, n);
        i += adv;
    }
    ot_str raw = ot_str_make(start, (size_t)(w->p - start));
    *w->p++ = '"';
    return raw;
}

/* A string member: quoted, or null (then the event's field stays empty, as
 * ot_event_parse leaves a member that is not a string). */
static ot_str put_text(wr *w, ot_str s)
{
    if (!s.base) {
        PUT_LIT(w, "null");
        return OT_STR_NULL;
    }
    return put_quoted(w, s);
}

/* int8out's text: an optional '-' and digits without a leading zero (a JSON
 * number, as int8out writes them), within int64. */
static bool int64_of(ot_str s, int64_t *out)
{
    size_t i = s.len > 0 && s.base[0] == '-';
    if (!s.base || i == s.len || (s.base[i] == '0' && s.len - i > 1))
        return false;
    uint64_t lim = i ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; i < s.len; i++) {
        unsigned d = (unsigned)(s.base[i] - '0');
        if (d > 9 || v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = s.base[0] == '-' ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static size_t quoted_bound(ot_str s) { return s.base ? 2 + ESC_MAX * s.len : 4; }

size_t ot_event_row_json_bound(const ot_event_row *r)
{
    /* The keys and separators, with room to spare. */
    size_t n = 160;
    n += r->seq.len + r->version.len;
    n += quoted_bound(r->event_id) + quoted_bound(r->order_id) + quoted_bound(r->user_id);
    n += quoted_bound(r->type) + quoted_bound(r->status) + quoted_bound(r->timestamp) + quoted_bound(r->actor);
    n += r->payload.base ? r->payload.len : 4;
    return n;
}

size_t ot_event_row_json(const ot_event_row *r, char *out, ot_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (!int64_of(r->seq, &ev->seq) || !int64_of(r->version, &ev->version))
        return 0;
    wr w = { out };
    PUT_LIT(&w, K_FIRST("seq"));
    put(&w, r->seq.base, r->seq.len);
    PUT_LIT(&w, K_NEXT("version"));
    put(&w, r->version.base, r->version.len);
    PUT_LIT(&w, K_NEXT("eventId"));
    ev->event_id = put_text(&w, r->event_id);
    PUT_LIT(&w, K_NEXT("orderId"));
    ev->order_id = put_text(&w, r->order_id);
    PUT_LIT(&w, K_NEXT("userId"));
    ev->user_id = put_text(&w, r->user_id);
    PUT_LIT(&w, K_NEXT("type"));
    ev->type = put_text(&w, r->type);
    PUT_LIT(&w, K_NEXT("status"));
    ev->status = put_text(&w, r->status);
    PUT_LIT(&w, K_NEXT("timestamp"));
    ev->timestamp = put_text(&w, r->timestamp);
    PUT_LIT(&w, K_NEXT("payload"));
    if (r->payload.base)
        put(&w, r->payload.base, r->payload.len);
    else
        PUT_LIT(&w, "null");
    PUT_LIT(&w, K_NEXT("actor"));
    put_text(&w, r->actor);
    *w.p++ = '}';
    ev->json = ot_str_make(out, (size_t)(w.p - out));
    return ev->json.len;
}
