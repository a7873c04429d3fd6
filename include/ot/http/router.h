/* Method + path-pattern routing with ":param" segments. Patterns are matched
 * segment by segment against the raw path; there is no regex and no allocation. */
#ifndef OT_ROUTER_H
#define OT_ROUTER_H

#include "ot/core/common.h"

#define OT_MAX_PARAMS 4
#define OT_MAX_ROUTES 64

typedef struct ot_req ot_req;
typedef void ot_handler(ot_req *r);

typedef struct {
    const char *method;
    const char *pattern;
    const char *name;    /* metrics label */
    ot_handler *handler;
    unsigned flags;      /* OT_ROUTE_* */
    void *data;          /* the handler's (r->data), so it needs no path to the worker */
    /* The pattern's first segment, compared before the full match: most
     * routes differ there, so a request tries one or two patterns, not all. */
    unsigned seg0_len;
    bool seg0_param;
} ot_route;

/* Operational endpoints (health, metrics) bypass the per-IP rate limit so a
 * throttled client cannot blind monitoring. */
#define OT_ROUTE_UNLIMITED 1u

typedef struct {
    ot_route routes[OT_MAX_ROUTES];
    int n;
} ot_router;

enum { OT_ROUTE_NOT_FOUND = -1, OT_ROUTE_BAD_METHOD = -2 };

void ot_router_init(ot_router *rt);
/* data: what the handler finds in r->data. */
int ot_router_add(ot_router *rt, const char *method, const char *pattern, const char *name, ot_handler *h,
                  void *data);
/* Returns the route index and fills params (raw, still percent-encoded), or
 * OT_ROUTE_NOT_FOUND, or OT_ROUTE_BAD_METHOD with `allow` listing the methods
 * that would match ("GET, HEAD, PATCH"). HEAD matches GET routes. */
int ot_router_match(const ot_router *rt, ot_str method, ot_str path, ot_str *params, int *nparams, char *allow,
                    size_t allowcap);

#endif
