/* Operational endpoints: health, readiness, metrics, the OpenAPI document. */
#ifndef OT_SYSTEM_H
#define OT_SYSTEM_H

#include "ot/http/http.h"

void ot_h_healthz(ot_req *r);
void ot_h_readyz(ot_req *r);
void ot_h_metrics(ot_req *r);
void ot_h_openapi(ot_req *r);
/* Serves a file from the web dir (dashboards); path parameter is the file name. */

#endif
