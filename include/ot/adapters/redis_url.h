/* REDIS_URL parsing (src/adapters/redis_url.c): pure, below the links and
 * the client that use it. */
#ifndef OT_REDIS_URL_H
#define OT_REDIS_URL_H

#include "ot/core/common.h"

#define OT_REDIS_HOST_MAX 256
#define OT_REDIS_AUTH_MAX 256

/* A parsed URL. Pure; exposed for tests. */
typedef struct {
    char host[OT_REDIS_HOST_MAX]; /* hostname/IP, or the socket path when is_unix */
    int port;
    int db; /* -1: no SELECT */
    bool is_unix;
    char user[OT_REDIS_AUTH_MAX];     /* empty: AUTH <password> (or no AUTH) */
    char password[OT_REDIS_AUTH_MAX]; /* empty: no AUTH */
} ot_redis_addr;

/* 0 or OT_ERR (malformed, port outside 1..65535, db outside 0..65535, over-long parts). */
int ot_redis_parse_url(const char *url, ot_redis_addr *out);

#endif
