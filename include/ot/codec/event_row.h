/* The event JSON of an order_events row, written here from its columns instead
 * of by SQL ot_event_json (sql/001_init.sql). Pure; fuzzed by
 * tests/fuzz/fuzz_event_row.c, and checked byte for byte against the real
 * function in tests/integration/test_event_row.py.
 *
 * Why: ot_event_json costs the replay query about two thirds of its time (43
 * vs 14 ms per 2,000-row page, pgbench), and the replay is what the Kafka
 * relay and the search indexer read a backlog through. The output must equal
 * the function's to the byte: the relay's seal (an HMAC over it) and every
 * consumer see these bytes, and the live path still publishes the SQL
 * function's.
 *
 * json_build_object's rules (PostgreSQL's json.c), which this mirrors: members
 * joined by ", " with " : " after each key; integers as their text output;
 * jsonb as its text output, unquoted; NULL as null; every other value quoted,
 * with '"', '\\', \b \f \n \r \t escaped by name and other bytes below 0x20
 * as \u00xx (lower-case hex), everything else byte for byte. */
#ifndef OT_CODEC_EVENT_ROW_H
#define OT_CODEC_EVENT_ROW_H

#include "ot/codec/event_json.h"

/* The row's columns as PostgreSQL's text output functions write them, in
 * ot_event_json's member order; a base of NULL is SQL NULL. timestamp is
 * ot_iso(created_at), computed by the query. */
typedef struct {
    ot_str seq, version, event_id, order_id, user_id, type, status, timestamp, payload, actor;
} ot_event_row;

/* An upper bound of what ot_event_row_json writes for r. */
size_t ot_event_row_json_bound(const ot_event_row *r);

/* Writes the row's event JSON into out (at least ot_event_row_json_bound(r)
 * bytes) and fills ev as ot_event_parse would over it (pointing into out;
 * seen_us 0). Returns its length, or 0 when seq or version is NULL or not a
 * 64-bit integer (ot_event_parse would refuse the object). */
size_t ot_event_row_json(const ot_event_row *r, char *out, ot_event *ev);

#endif
