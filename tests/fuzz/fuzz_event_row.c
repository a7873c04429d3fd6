/* libFuzzer: the event JSON written from an order_events row's columns
 * (codec/event_row.c). The input is the ten columns split at NUL bytes (text
 * from PostgreSQL holds none); a column that is the one byte 0x01 is SQL NULL.
 * Invariants: what is written fits the bound; seq and version decide whether
 * anything is; when every text column is UTF-8 and the payload a JSON value
 * (what PostgreSQL hands over), the text parses as an event with exactly the
 * fields the writer reported, and each text column unescapes to its bytes. */
#include <stdlib.h>
#include <string.h>

#include "ot/codec/event_row.h"
#include "ot/codec/json.h"
#include "ot/core/buf.h"
#include "ot/core/utf8.h"

#include "fuzz_check.h"

#define NCOLS 10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ot_str c[NCOLS];
    size_t at = 0;
    for (int i = 0; i < NCOLS; i++) {
        if (at > size) { /* past the input: NULL */
            c[i] = OT_STR_NULL;
            continue;
        }
        size_t end = at;
        while (end < size && data[end] != 0)
            end++;
        c[i] = ot_str_make((const char *)data + at, end - at);
        if (c[i].len == 1 && c[i].base[0] == 1)
            c[i] = OT_STR_NULL;
        at = end + 1;
    }
    ot_event_row r = { c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9] };
    size_t bound = ot_event_row_json_bound(&r);
    char *out = malloc(bound);
    CHECK(out);
    ot_event ev;
    size_t n = ot_event_row_json(&r, out, &ev);
    CHECK(n <= bound);
    if (n == 0) {
        free(out);
        return 0;
    }
    CHECK(ev.json.base == out && ev.json.len == n);
    ot_str *texts[] = { &r.event_id, &r.order_id, &r.user_id, &r.type, &r.status, &r.timestamp, &r.actor };
    bool clean = true;
    for (size_t i = 0; i < OT_ARRAY_LEN(texts); i++)
        clean = clean && (!texts[i]->base || ot_utf8_valid((const uint8_t *)texts[i]->base, texts[i]->len));
    ot_json_tok stack[64], *heap = NULL;
    ot_json d;
    if (clean && r.payload.base) {
        clean = ot_json_parse_grow(&d, r.payload.base, r.payload.len, stack, 64, &heap) == 0;
        free(heap);
        heap = NULL;
    }
    if (clean) {
        ot_event parsed;
        CHECK(ot_event_parse(ev.json, &parsed) == 0);
        parsed.seen_us = 0;
        CHECK(memcmp(&parsed, &ev, sizeof ev) == 0);
        CHECK(ot_json_parse_grow(&d, out, n, stack, 64, &heap) == 0);
        static const char *const keys[] = { "eventId", "orderId", "userId", "type", "status", "timestamp", "actor" };
        for (size_t i = 0; i < OT_ARRAY_LEN(texts); i++) {
            int t = ot_json_obj_get(&d, 0, keys[i]);
            CHECK(t >= 0);
            if (!texts[i]->base) {
                CHECK(ot_json_is_null(&d, t));
                continue;
            }
            ot_buf b;
            ot_buf_init(&b);
            CHECK(ot_json_get_str(&d, t, &b) == 0);
            CHECK(b.len == texts[i]->len && (b.len == 0 || memcmp(b.data, texts[i]->base, b.len) == 0));
            ot_buf_free(&b);
        }
        free(heap);
    }
    free(out);
    return 0;
}
