#include "ot/api/system.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ot/api/helpers.h"
#include "ot/api/static.h"
#include "ot/core/metrics.h"
#include "ot/adapters/pg.h"

void ot_h_healthz(ot_req *r)
{
    /* Answering at all proves the worker's loop turns. */
    ot_respond_json(r, 200, OT_STR("{\"status\":\"ok\"}"));
}

/* Over the worker's registered services: 503 (Retry-After) naming the first
 * required one that is not ready; otherwise each one's state. */
void ot_h_readyz(ot_req *r)
{
    const ot_services *sv = ot_api_of(r)->services;
    const ot_service *bad = ot_services_unready(sv);
    if (bad) {
        ot_resp_header(r, "Retry-After", "1");
        ot_respond_error(r, 503, bad->code ? bad->code : "unavailable", "%s", bad->message ? bad->message : bad->name);
        return;
    }
    ot_buf b = OT_BUF_INIT;
    bool ok = ot_buf_append_str(&b, "{\"status\":\"ok\"") == 0;
    for (int i = 0; ok && i < sv->n; i++) {
        const ot_service *s = &sv->svc[i];
        if (!s->ready && (s->drain || s->sample))
            continue; /* drain- or sample-only: no readiness to report */
        const char *st = !s->ready ? "not configured" : s->ready(s->data) ? "up" : "down";
        ok = ot_buf_printf(&b, ",\"%s\":\"%s\"", s->name, st) == 0;
    }
    ok = ok && ot_buf_append(&b, "}", 1) == 0;
    if (ok)
        ot_respond_json(r, 200, ot_buf_str(&b));
    else
        ot_respond_error(r, 500, "internal", "out of memory");
    ot_buf_free(&b);
}

void ot_h_metrics(ot_req *r)
{
    ot_services_sample(ot_api_of(r)->services); /* fresh gauges for this scrape */
    ot_buf b = OT_BUF_INIT;
    if (ot_metrics_render(&b) < 0) {
        ot_buf_free(&b);
        ot_respond_error(r, 500, "internal", "metrics rendering failed");
        return;
    }
    ot_respond(r, 200, "text/plain; version=0.0.4", ot_buf_str(&b));
    ot_buf_free(&b);
}

void ot_h_openapi(ot_req *r)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/../docs/openapi.yaml", r->srv->cfg->web_dir);
    if (access(path, R_OK) != 0)
        snprintf(path, sizeof(path), "docs/openapi.yaml");
    ot_static_send(r, path, "application/yaml");
}
