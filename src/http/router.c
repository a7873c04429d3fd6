#include "ot/http/router.h"

#include <stdio.h>

void ot_router_init(ot_router *rt) { rt->n = 0; }

int ot_router_add(ot_router *rt, const char *method, const char *pattern, const char *name, ot_handler *h,
                  void *data)
{
    if (rt->n >= OT_MAX_ROUTES)
        return OT_ERR;
    const char *seg = pattern[0] == '/' ? pattern + 1 : pattern, *e = seg;
    while (*e && *e != '/')
        e++;
    rt->routes[rt->n] = (ot_route){ method, pattern, name, h, 0, data, (unsigned)(e - seg), *seg == ':' };
    return rt->n++;
}

/* Matches one pattern; params receive the ":name" segments. */
static bool match_path(const char *pat, ot_str path, ot_str *params, int *np)
{
    const char *p = path.base, *end = path.base + path.len;
    int n = 0;
    while (*pat) {
        if (p >= end || *p != '/' || *pat != '/')
            return false;
        pat++;
        p++;
        const char *seg = p;
        while (p < end && *p != '/')
            p++;
        ot_str s = ot_str_make(seg, (size_t)(p - seg));
        if (*pat == ':') {
            while (*pat && *pat != '/')
                pat++;
            if (s.len == 0 || n >= OT_MAX_PARAMS)
                return false;
            params[n++] = s;
        } else {
            const char *ps = pat;
            while (*pat && *pat != '/')
                pat++;
            if ((size_t)(pat - ps) != s.len || memcmp(ps, s.base, s.len) != 0)
                return false;
        }
    }
    *np = n;
    return p == end;
}

int ot_router_match(const ot_router *rt, ot_str method, ot_str path, ot_str *params, int *nparams, char *allow,
                    size_t allowcap)
{
    bool path_hit = false;
    size_t al = 0;
    if (allowcap)
        allow[0] = 0;
    /* The path's first segment (path starts with '/', or nothing matches). */
    const char *s0 = path.len && path.base[0] == '/' ? path.base + 1 : NULL, *e0 = s0;
    while (s0 && e0 < path.base + path.len && *e0 != '/')
        e0++;
    for (int i = 0; i < rt->n; i++) {
        const ot_route *r = &rt->routes[i];
        if (!s0)
            break;
        if (r->seg0_param ? e0 == s0
                          : (size_t)(e0 - s0) != r->seg0_len || memcmp(r->pattern + 1, s0, r->seg0_len) != 0)
            continue;
        ot_str tmp[OT_MAX_PARAMS];
        int np = 0;
        if (!match_path(r->pattern, path, tmp, &np))
            continue;
        bool m = ot_str_eq_lit(method, r->method) || (ot_str_eq_lit(method, "HEAD") && !strcmp(r->method, "GET"));
        if (m) {
            memcpy(params, tmp, sizeof(ot_str) * (size_t)np);
            *nparams = np;
            return i;
        }
        path_hit = true;
        if (al < allowcap) {
            int w = snprintf(allow + al, allowcap - al, "%s%s%s", al ? ", " : "", r->method,
                             !strcmp(r->method, "GET") ? ", HEAD" : "");
            if (w > 0)
                al += (size_t)w;
        }
    }
    return path_hit ? OT_ROUTE_BAD_METHOD : OT_ROUTE_NOT_FOUND;
}
