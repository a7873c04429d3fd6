/* The dashboards' files from --web-dir: GET / (index.html), GET /admin
 * (admin.html), GET /web/<file> and /web/<dir>/<file>.
 *
 * Every answer carries a strict Content-Security-Policy (the pages have no
 * inline script or style) and X-Content-Type-Options: nosniff. Files are
 * validated by ETag (If-None-Match -> 304); files under vendor/ carry their
 * version in their name (scripts/web-vendor.sh) and are cached for a year
 * as immutable. Text types are gzipped when the client accepts it. Names are
 * plain segments ([A-Za-z0-9._-], no leading dot, decoded once) and the
 * resolved path must stay under the web root: no "..", no symlink out. */
#ifndef OT_API_STATIC_H
#define OT_API_STATIC_H

#include "ot/http/http.h"

/* The largest file served; bigger ones answer 404 (and are not read). */
#define OT_STATIC_MAX_FILE (4u << 20)

void ot_h_static(ot_req *r);
void ot_h_static_admin(ot_req *r);
/* Sends the file at path (any location: the caller vouches for it) with the
 * same validators and headers; 404 when it is missing or not a regular file. */
void ot_static_send(ot_req *r, const char *path, const char *ctype);

#endif
