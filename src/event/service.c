#include "ot/event/service.h"

#include "ot/core/log.h"

int ot_services_add(ot_services *r, const ot_service *s)
{
    if (r->n >= OT_SERVICES_MAX) {
        ot_logf(OT_LOG_ERROR, "service registry full (%d): cannot register %s", OT_SERVICES_MAX, s->name);
        return OT_ERR;
    }
    r->svc[r->n++] = *s;
    return 0;
}

const ot_service *ot_services_unready(const ot_services *r)
{
    for (int i = 0; i < r->n; i++)
        if (r->svc[i].required && r->svc[i].ready && !r->svc[i].ready(r->svc[i].data))
            return &r->svc[i];
    return NULL;
}

void ot_services_drain(const ot_services *r)
{
    for (int i = 0; i < r->n; i++)
        if (r->svc[i].drain)
            r->svc[i].drain(r->svc[i].data);
}

bool ot_services_drained(const ot_services *r)
{
    for (int i = 0; i < r->n; i++)
        if (r->svc[i].drained && !r->svc[i].drained(r->svc[i].data))
            return false;
    return true;
}

void ot_services_sample(const ot_services *r)
{
    for (int i = 0; i < r->n; i++)
        if (r->svc[i].sample)
            r->svc[i].sample(r->svc[i].data);
}
