/* Integer formatting without printf, for the paths that run once per request
 * (response heads, access log lines): a handful of instructions per digit
 * instead of vsnprintf's few hundred per call. */
#ifndef OT_FMT_H
#define OT_FMT_H

#include "ot/core/common.h"

#define OT_FMT_U64_MAX 20 /* digits of UINT64_MAX */

/* Writes the decimal digits of v to out (room for OT_FMT_U64_MAX, no NUL);
 * returns how many. */
static inline size_t ot_fmt_u64(char *out, uint64_t v)
{
    char tmp[OT_FMT_U64_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#endif
