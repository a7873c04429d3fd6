/* The invariant check of the fuzz targets: a violation aborts, which
 * libFuzzer reports as a crash and saves the input of. */
#ifndef OT_FUZZ_CHECK_H
#define OT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
