/* The WebSocket gateway: GET /ws/orders. It decides who may open a socket
 * (handshake, bearer token, per-user and per-IP caps, drain), takes the
 * socket over from HTTP and hands it to the transport (http/ws.h) with the
 * hub's ops: client messages (hub_msg.h), resume (replay.h), the index and
 * fanout (hub.h). */
#ifndef OT_GATEWAY_H
#define OT_GATEWAY_H

#include "ot/app/hub.h"
#include "ot/http/http.h"

/* GET /ws/orders; the route's data is the hub. Checks the handshake
 * (§4.2.1) and the token, then takes the socket over from HTTP and answers
 * 101 itself. Query: access_token (when no Authorization header), since=SEQ
 * (resume, see replay.h). */
void ot_h_ws(ot_req *r);

#endif
