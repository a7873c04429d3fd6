/* Instructions per JWT verification and per pub/sub seal, for
 * docs/BENCHMARKS.md: run it twice under callgrind with two counts and
 * subtract, so start-up cancels out:
 *   valgrind --tool=callgrind build/bench/crypto_cost 10 jwt
 *   valgrind --tool=callgrind build/bench/crypto_cost 1010 jwt   (then "seal")
 * (total(1010) - total(10)) / 1000 = instructions per operation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/event_json.h"
#include "ot/codec/jwt.h"

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "jwt") != 0 && strcmp(argv[2], "seal") != 0)) {
        fprintf(stderr, "usage: crypto_cost COUNT jwt|seal\n");
        return 2;
    }
    int n = atoi(argv[1]);
    bool jwt = strcmp(argv[2], "jwt") == 0;
    ot_str secret = ot_str_c("bench-secret-0123456789abcdef-0123456789abcdef");
    ot_jwt_claims c = { .role = OT_ROLE_CUSTOMER, .iat = 1000, .exp = 4000000000LL };
    strcpy(c.sub, "123e4567-e89b-12d3-a456-426614174000");
    ot_buf t = OT_BUF_INIT;
    uint8_t key[OT_EVENT_MAC_KEY_LEN];
    if (ot_jwt_sign(secret, &c, &t) < 0 || ot_event_mac_key(secret, key) < 0)
        return 1;
    /* The shape of ot_event_json's output, ~420 bytes. */
    const char *ev = "{\"seq\" : 1, \"version\" : 1, \"eventId\" : \"123e4567-e89b-12d3-a456-426614174000\", "
                     "\"orderId\" : \"123e4567-e89b-12d3-a456-426614174001\", \"userId\" : "
                     "\"123e4567-e89b-12d3-a456-426614174002\", \"type\" : \"order.created\", \"status\" : "
                     "\"CREATED\", \"timestamp\" : \"2026-12-02T12:00:00.000Z\", \"payload\" : {\"items\": "
                     "[{\"qty\": 2, \"productId\": \"espresso\"}, {\"qty\": 1, \"productId\": \"croissant\"}]}, "
                     "\"actor\" : \"123e4567-e89b-12d3-a456-426614174002\"}";
    char buf[1024];
    int ok = 0;
    for (int i = 0; i < n; i++) {
        ot_jwt_claims out;
        if (jwt)
            ok += ot_jwt_verify(secret, ot_str_make(t.data, t.len), 2000, &out) == OT_JWT_OK;
        else
            ok += ot_event_seal(key, ot_str_c("ot:admin"), ot_str_c(ev), buf, sizeof buf) > 0;
    }
    ot_buf_free(&t);
    printf("%d of %d\n", ok, n);
    return ok == n ? 0 : 1;
}
