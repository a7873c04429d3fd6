/* The two documents the search indexer (app/indexer.c) writes per event,
 * built from the event JSON (ot_event_json) and what the indexer read from
 * PostgreSQL for it, and the _bulk answer. Pure: no I/O; fuzzed by
 * tests/fuzz/fuzz_search_doc.c.
 *
 *  - order document (index <p>-orders): GET /orders/:id's JSON at this
 *    version (id, userId, status, items, createdAt, updatedAt, version) plus
 *    orderId, createdUs, createdHour (UTC), createdDow (ISO, Monday 1), seq;
 *  - event document (index <p>-events): the event JSON plus tsUs and, when
 *    the event ends a stint (version > 1), prevStatus, prevUs, stintSeconds:
 *    what analytics' time in status aggregates. */
#ifndef OT_CODEC_SEARCH_DOC_H
#define OT_CODEC_SEARCH_DOC_H

#include "ot/codec/json.h"
#include "ot/core/buf.h"
#include "ot/core/common.h"

typedef struct {
    int64_t seq, version;
    char order[37];       /* the order id (lower case) */
    char created[40];     /* the order's createdAt (ot_iso), "" unknown */
    int64_t created_us;   /* ... in microseconds, -1 unknown */
    char updated[40];     /* the row's updatedAt when it is at this version, "" else (the event's time) */
    int64_t at_us;        /* the event's timestamp (ms precision), 0 unreadable */
    char prev_status[16]; /* the status this event ends, "" for the first */
    int64_t prev_us, end_us; /* when that stint began and ended, exact microseconds */
} ot_search_doc_meta;

/* Appends the order document; OT_ERR (out may hold a partial document: cut
 * it) when json is not an event object. */
int ot_search_doc_order(ot_buf *out, const ot_search_doc_meta *m, ot_str json);
/* Appends the event document: the object with its members added (JSON
 * whitespace around it allowed). A text that is not braced goes as it is,
 * one that only looks braced stays invalid (Elasticsearch refuses either:
 * the indexer parks it with the reason). */
int ot_search_doc_event(ot_buf *out, const ot_search_doc_meta *m, ot_str json);

/* _bulk request lines: the action line and the document line, each ending
 * in '\n'. The event document goes as a create with _id the event id (a
 * repeat is a 409: harmless); the order document as an index with the
 * event's version and version_type external, so an older state can never
 * overwrite a newer one. OT_ERR (nothing appended) when the document cannot
 * be built (ot_search_doc_order: not an event object) or on allocation
 * failure. */
int ot_search_bulk_event(ot_buf *out, const char *index, const char *event_id, const ot_search_doc_meta *m,
                         ot_str json);
int ot_search_bulk_order(ot_buf *out, const char *index, const ot_search_doc_meta *m, ot_str json);
/* Why ot_search_bulk_order refused: the reason a parked row records. */
#define OT_SEARCH_NOT_AN_EVENT "the event is not a JSON object with payload.items"

/* ---- the _bulk answer ----
 * {"items":[{"<action>":{"status":N,"error":{"type":..,"reason":..}}},...]}
 * (all the indexer asks for with filter_path), one item per action sent, in
 * order. Read by the indexer and by `ordertrack search` alike, so both judge
 * an item the same way. */

/* What an item means for the document it answers. */
typedef enum {
    OT_SEARCH_DONE,    /* 2xx: written */
    OT_SEARCH_NEWER,   /* 409: a newer external version, or the event, is there already */
    OT_SEARCH_RETRY,   /* 429 or 5xx (overloaded, a shard not ready), or no readable status */
    OT_SEARCH_REFUSED, /* anything else: refused for good, sending it again changes nothing */
} ot_search_verdict;

typedef struct {
    ot_json d;
    ot_json_tok stack[256], *heap;
    int items, n, i, t;
} ot_search_bulk;

/* Reads an answer (points into body until ot_search_bulk_free). The number
 * of items, or OT_ERR (not such an answer; nothing to free then). */
int ot_search_bulk_parse(ot_search_bulk *a, ot_str body);
/* The next item: its verdict, its status (0 unreadable) and "type: reason"
 * of its error ("" without one) into why[0..cap) (cap >= 1, NUL-terminated).
 * 1, or 0 past the last item. */
int ot_search_bulk_next(ot_search_bulk *a, ot_search_verdict *v, int64_t *status, char *why, size_t cap);
void ot_search_bulk_free(ot_search_bulk *a);

#endif
