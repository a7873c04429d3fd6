/* The events indices' lifecycle: rollover of the write alias P-events and
 * retention by age, driven from the loop because the test distribution (and
 * any cluster without ILM) has nothing to do it. Where the cluster has ILM, a
 * policy on the template does the same and these flags stay 0.
 *
 * Every --es-lifecycle-check-ms the worker running it (worker 0, beside the
 * indexer) asks POST P-events/_rollover with the configured conditions
 * (max_age, max_docs, max_primary_shard_size; Elasticsearch decides), then,
 * with --es-events-retention-seconds, lists P-events-* and deletes each index
 * created before the retention window, by its exact name, except the newest
 * (the write index: rollover always creates a higher number). Reads go through
 * the alias, which keeps every remaining index, so history only loses what
 * the retention dropped on purpose; PostgreSQL's order_events keeps it all.
 * The orders index never rolls over: it holds one document per order. */
#ifndef OT_APP_SEARCH_LIFECYCLE_H
#define OT_APP_SEARCH_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>

#include "ot/core/config.h"
#include "ot/event/loop.h"

typedef struct ot_search_lifecycle ot_search_lifecycle;

/* Whether cfg asks for any rollover condition or a retention. */
bool ot_search_lifecycle_wanted(const ot_config *cfg);
/* NULL on failure (logged). */
ot_search_lifecycle *ot_search_lifecycle_new(ot_loop *loop, const ot_config *cfg);
void ot_search_lifecycle_free(ot_search_lifecycle *l);

/* Pure: the indices of a `_cat/indices?format=json&h=index,creation.date`
 * answer that are due for deletion: created before now_ms - keep_ms and not
 * the newest name. Calls cb for each; returns the number of indices listed,
 * or -1 if the answer is not such a list. */
typedef void ot_search_expired_cb(void *data, const char *index, size_t len);
int ot_search_lifecycle_expired(const char *json, size_t len, int64_t now_ms, int64_t keep_ms,
                                ot_search_expired_cb *cb, void *data);

#endif
