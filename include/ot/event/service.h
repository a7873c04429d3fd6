/* What a worker asks of every dependency it runs (PostgreSQL pool, event
 * reader, Redis, WebSocket hub; Kafka and Elasticsearch next), so /readyz,
 * the SIGTERM drain and /metrics iterate one registry instead of naming each.
 * Every callback is optional. */
#ifndef OT_SERVICE_H
#define OT_SERVICE_H

#include "ot/core/common.h"

typedef struct {
    const char *name; /* "database", "redis": the key in /readyz's body */
    void *data;
    /* Whether requests may count on it. `required`: a false ready makes
     * /readyz answer 503 with `code`/`message`; otherwise it is only
     * reported. */
    bool (*ready)(void *data);
    bool required;
    const char *code, *message;
    void (*drain)(void *data);   /* SIGTERM: stop taking new work */
    bool (*drained)(void *data); /* nothing left that keeps the worker alive */
    void (*sample)(void *data);  /* push gauges/counters into ot_metrics */
} ot_service;

#define OT_SERVICES_MAX 16

typedef struct {
    ot_service svc[OT_SERVICES_MAX];
    int n;
} ot_services;

/* Copies *s. OT_ERR when the registry is full (a programming error: say so). */
int ot_services_add(ot_services *r, const ot_service *s);
/* The first required service that is not ready, or NULL. */
const ot_service *ot_services_unready(const ot_services *r);
void ot_services_drain(const ot_services *r);
bool ot_services_drained(const ot_services *r);
void ot_services_sample(const ot_services *r);

#endif
