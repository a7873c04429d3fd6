/* http/router: segment matching, ":param" capture, 404 against 405 with the
 * Allow list, HEAD on GET routes, and the router's trailing-slash rule (a
 * path matches only its exact pattern: "/orders/" is not "/orders"). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "ot/http/router.h"

static void h_list(ot_req *r) { (void)r; }
static void h_create(ot_req *r) { (void)r; }
static void h_get(ot_req *r) { (void)r; }
static void h_patch(ot_req *r) { (void)r; }
static void h_root(ot_req *r) { (void)r; }
static void h_events(ot_req *r) { (void)r; }

static ot_router rt;
static int i_list, i_create, i_get, i_patch, i_root, i_events;

static void setup(void)
{
    ot_router_init(&rt);
    i_root = ot_router_add(&rt, "GET", "/", "root", h_root, NULL);
    i_list = ot_router_add(&rt, "GET", "/orders", "orders_list", h_list, NULL);
    i_create = ot_router_add(&rt, "POST", "/orders", "orders_create", h_create, NULL);
    i_get = ot_router_add(&rt, "GET", "/orders/:id", "orders_get", h_get, NULL);
    i_patch = ot_router_add(&rt, "PATCH", "/orders/:id", "orders_patch", h_patch, NULL);
    i_events = ot_router_add(&rt, "GET", "/orders/:id/events/:n", "orders_events", h_events, NULL);
}

static int match(const char *method, const char *path, ot_str *params, int *np, char *allow, size_t cap)
{
    return ot_router_match(&rt, ot_str_c(method), ot_str_c(path), params, np, allow, cap);
}

TestSuite(router, .init = setup);

Test(router, add_returns_indices_in_order)
{
    cr_expect_eq(i_root, 0);
    cr_expect_eq(i_list, 1);
    cr_expect_eq(i_events, 5);
    cr_expect_eq(rt.routes[i_get].handler, h_get);
    cr_expect_str_eq(rt.routes[i_patch].name, "orders_patch");
}

Test(router, exact_static_paths)
{
    ot_str p[OT_MAX_PARAMS];
    int np = -1;
    char allow[64];
    cr_expect_eq(match("GET", "/", p, &np, allow, sizeof allow), i_root);
    cr_expect_eq(np, 0);
    cr_expect_eq(match("GET", "/orders", p, &np, allow, sizeof allow), i_list);
    cr_expect_eq(match("POST", "/orders", p, &np, allow, sizeof allow), i_create);
    cr_expect_eq(match("GET", "/order", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND, "prefix of a segment");
    cr_expect_eq(match("GET", "/ordersx", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(match("GET", "/Orders", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND, "case-sensitive");
    cr_expect_eq(match("GET", "orders", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND, "no leading slash");
    cr_expect_eq(match("GET", "", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
}

Test(router, params_are_captured_raw)
{
    ot_str p[OT_MAX_PARAMS];
    int np = -1;
    char allow[64];
    cr_assert_eq(match("GET", "/orders/abc%20def", p, &np, allow, sizeof allow), i_get);
    cr_assert_eq(np, 1);
    cr_expect(ot_str_eq_lit(p[0], "abc%20def"), "still percent-encoded");
    cr_assert_eq(match("GET", "/orders/o1/events/7", p, &np, allow, sizeof allow), i_events);
    cr_assert_eq(np, 2);
    cr_expect(ot_str_eq_lit(p[0], "o1"));
    cr_expect(ot_str_eq_lit(p[1], "7"));
    cr_expect_eq(match("GET", "/orders/o1/events", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(match("GET", "/orders/o1/events/7/8", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(match("GET", "/orders/o1/evnts/7", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
}

Test(router, trailing_and_empty_segments)
{
    ot_str p[OT_MAX_PARAMS];
    int np;
    char allow[64];
    cr_expect_eq(match("GET", "/orders/", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND,
                 "a trailing slash is an empty :id, which never matches");
    cr_expect_eq(match("GET", "/orders/x/", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(match("GET", "//", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(match("GET", "//orders", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(match("GET", "/orders//events/1", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
}

Test(router, head_matches_get)
{
    ot_str p[OT_MAX_PARAMS];
    int np;
    char allow[64];
    cr_expect_eq(match("HEAD", "/orders", p, &np, allow, sizeof allow), i_list);
    cr_expect_eq(match("HEAD", "/orders/1", p, &np, allow, sizeof allow), i_get);
}

Test(router, wrong_method_is_405_with_allow)
{
    ot_str p[OT_MAX_PARAMS];
    int np;
    char allow[64];
    cr_expect_eq(match("DELETE", "/orders", p, &np, allow, sizeof allow), OT_ROUTE_BAD_METHOD);
    cr_expect_str_eq(allow, "GET, HEAD, POST");
    cr_expect_eq(match("PUT", "/orders/1", p, &np, allow, sizeof allow), OT_ROUTE_BAD_METHOD);
    cr_expect_str_eq(allow, "GET, HEAD, PATCH");
    cr_expect_eq(match("POST", "/", p, &np, allow, sizeof allow), OT_ROUTE_BAD_METHOD);
    cr_expect_str_eq(allow, "GET, HEAD");
    cr_expect_eq(match("get", "/orders", p, &np, allow, sizeof allow), OT_ROUTE_BAD_METHOD, "methods are case-sensitive");
    /* 404 leaves Allow empty. */
    cr_expect_eq(match("DELETE", "/nothing", p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_str_eq(allow, "");
}

Test(router, allow_list_is_cut_not_overrun)
{
    ot_str p[OT_MAX_PARAMS];
    int np;
    char allow[12];
    memset(allow, 'Z', sizeof allow);
    cr_expect_eq(match("DELETE", "/orders", p, &np, allow, 8), OT_ROUTE_BAD_METHOD);
    cr_expect_eq(strlen(allow), 7, "NUL-terminated inside its capacity");
    cr_expect_eq(allow[8], 'Z', "nothing written past the capacity");
    cr_expect_eq(match("DELETE", "/orders", p, &np, NULL, 0), OT_ROUTE_BAD_METHOD, "no Allow buffer at all");
}

Test(router, param_limit)
{
    ot_router r2;
    ot_router_init(&r2);
    int ok = ot_router_add(&r2, "GET", "/:a/:b/:c/:d", "four", h_get, NULL);
    ot_router_add(&r2, "GET", "/:a/:b/:c/:d/:e", "five", h_get, NULL);
    ot_str p[OT_MAX_PARAMS];
    int np;
    cr_expect_eq(ot_router_match(&r2, OT_STR("GET"), OT_STR("/1/2/3/4"), p, &np, NULL, 0), ok);
    cr_expect_eq(np, OT_MAX_PARAMS);
    cr_expect_eq(ot_router_match(&r2, OT_STR("GET"), OT_STR("/1/2/3/4/5"), p, &np, NULL, 0), OT_ROUTE_NOT_FOUND,
                 "more than OT_MAX_PARAMS params never match");
}

Test(router, table_is_bounded)
{
    ot_router r2;
    ot_router_init(&r2);
    char pats[OT_MAX_ROUTES][16];
    for (int i = 0; i < OT_MAX_ROUTES; i++) {
        snprintf(pats[i], sizeof pats[i], "/r%d", i);
        cr_assert_eq(ot_router_add(&r2, "GET", pats[i], "r", h_get, NULL), i);
    }
    cr_expect_eq(ot_router_add(&r2, "GET", "/over", "r", h_get, NULL), OT_ERR);
    ot_str p[OT_MAX_PARAMS];
    int np;
    cr_expect_eq(ot_router_match(&r2, OT_STR("GET"), OT_STR("/r63"), p, &np, NULL, 0), OT_MAX_ROUTES - 1);
    cr_expect_eq(ot_router_match(&r2, OT_STR("GET"), OT_STR("/over"), p, &np, NULL, 0), OT_ROUTE_NOT_FOUND);
}

Test(router, first_registered_wins)
{
    ot_router r2;
    ot_router_init(&r2);
    int a = ot_router_add(&r2, "GET", "/x/:id", "param", h_get, NULL);
    ot_router_add(&r2, "GET", "/x/me", "static", h_list, NULL);
    ot_str p[OT_MAX_PARAMS];
    int np;
    cr_expect_eq(ot_router_match(&r2, OT_STR("GET"), OT_STR("/x/me"), p, &np, NULL, 0), a);
}

/* Routes are skipped on their first segment before the full match: a prefix,
 * a longer segment or a parameter in the first place must all still behave. */
Test(router, first_segment_prefilter_keeps_every_match)
{
    ot_router r2;
    ot_router_init(&r2);
    int any = ot_router_add(&r2, "GET", "/:tenant/orders", "tenant", h_get, NULL);
    int web = ot_router_add(&r2, "GET", "/web/:file", "web", h_list, NULL);
    int root = ot_router_add(&r2, "GET", "/", "root", h_root, NULL);
    ot_str p[OT_MAX_PARAMS];
    int np;
    char allow[64];
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("/acme/orders"), p, &np, allow, sizeof allow), any);
    cr_expect(ot_str_eq_lit(p[0], "acme"));
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("/web/a.js"), p, &np, allow, sizeof allow), web);
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("/web/orders"), p, &np, allow, sizeof allow), any,
                 "the first registered match wins, also across first segments");
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("/"), p, &np, allow, sizeof allow), root);
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("/we/a.js"), p, &np, allow, sizeof allow),
                 OT_ROUTE_NOT_FOUND);
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("/webx/a.js"), p, &np, allow, sizeof allow),
                 OT_ROUTE_NOT_FOUND);
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c(""), p, &np, allow, sizeof allow), OT_ROUTE_NOT_FOUND);
    cr_expect_eq(ot_router_match(&r2, ot_str_c("GET"), ot_str_c("web/a.js"), p, &np, allow, sizeof allow),
                 OT_ROUTE_NOT_FOUND);
    cr_expect_eq(ot_router_match(&r2, ot_str_c("POST"), ot_str_c("/web/a.js"), p, &np, allow, sizeof allow),
                 OT_ROUTE_BAD_METHOD);
}
