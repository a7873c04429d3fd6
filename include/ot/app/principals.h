/* Principals: what this worker knows of each user a token names, so a token
 * is honoured only while its user exists, is active and still has the role
 * and token epoch the token was issued with (sql/003_token_revocation.sql).
 *
 * A bounded cache, user id -> (token_epoch, role, active | no such user),
 * filled on demand: the first request naming an unknown user costs one query
 * (concurrent requests for it share that query), later ones none. Entries
 * stay valid until PostgreSQL says otherwise: every change that invalidates
 * tokens NOTIFYs `ot_users` with the user id, heard here on a dedicated
 * LISTEN connection; the entry is dropped and `changed` runs (the worker
 * closes that user's sockets with 4401). While that connection is down,
 * notifications may be missed: entries are then trusted for at most
 * OT_PRINCIPALS_BLIND_TTL_MS after their load, and when it comes back every
 * entry is invalidated and the cached users are re-read in one query, so the
 * sockets of users changed meanwhile are closed too.
 *
 * Full cache: the least recently used settled entry is evicted; entries with
 * a load in flight are not, and a load that finds no room is refused
 * (OT_PG_EFULL: the caller answers 503). */
#ifndef OT_PRINCIPALS_H
#define OT_PRINCIPALS_H

#include "ot/adapters/pg.h"
#include "ot/codec/jwt.h"
#include "ot/core/common.h"

#define OT_PRINCIPALS_CHANNEL "ot_users"
#define OT_PRINCIPALS_BLIND_TTL_MS 1000

typedef struct ot_principals ot_principals;
typedef struct ot_principals_entry ot_principals_entry;

/* A request waiting for a load; lives in the caller's own memory. */
typedef struct ot_principals_wait ot_principals_wait;
typedef void ot_principals_loaded_fn(void *data, int status); /* OT_PG_OK or an OT_PG_E* */
struct ot_principals_wait {
    ot_principals_wait *prev, *next;
    ot_principals *p;
    ot_principals_entry *e; /* the load waited for; NULL when parked or done */
    bool parked;            /* answered, its callback about to run (now, or after the batch) */
    int status;             /* what the callback will be told */
    ot_principals_loaded_fn *cb;
    void *data;
};

/* A user's tokens stopped being valid (or may have): 36-byte lower-case id. */
typedef void ot_principals_changed_fn(void *data, const char *user_id);

extern const ot_pg_stmt ot_principals_stmts[];
extern const size_t ot_principals_nstmts;

/* listen_cfg: conninfo and timings for the LISTEN connection. capacity >= 1. */
ot_principals *ot_principals_new(ot_loop *loop, ot_pg *pg, const ot_pg_config *listen_cfg, size_t capacity,
                                 ot_principals_changed_fn *changed, void *data);
void ot_principals_free(ot_principals *p);

enum { OT_PRINCIPAL_OK = 0, OT_PRINCIPAL_REVOKED = 1, OT_PRINCIPAL_UNKNOWN = 2 };
/* Without a query: OK when the cached state of `id` matches (epoch, role) and
 * the user is active; REVOKED when it does not; UNKNOWN when nothing valid is
 * cached (call ot_principals_load, then check again). */
int ot_principals_check(ot_principals *p, const uint8_t id[16], int64_t epoch, ot_role role);
/* Starts (or joins) the load of `id`; w->cb(w->data, status) runs later from
 * the loop, never from inside this call (OT_PG_EFULL when the cache has no
 * room or the query could not be queued). Returns 0. */
int ot_principals_load(ot_principals *p, const uint8_t id[16], ot_principals_wait *w, ot_principals_loaded_fn *cb,
                       void *data);
/* Starts a load nobody waits for (a synchronous check missed: the next one hits). */
void ot_principals_prefetch(ot_principals *p, const uint8_t id[16]);
/* Stops waiting (the requester died); the load itself goes on. Safe if not waiting. */
void ot_principals_cancel(ot_principals_wait *w);

typedef struct {
    size_t entries, capacity;
    uint64_t loads, notifications, evictions;
    bool listening;
} ot_principals_stats;
void ot_principals_get_stats(const ot_principals *p, ot_principals_stats *st);

#endif
