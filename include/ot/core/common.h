/* Small shared vocabulary: length-carrying strings and the error convention. */
#ifndef OT_COMMON_H
#define OT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

/* Bytes with their length; never assumed NUL-terminated (nginx's ngx_str_t). */
typedef struct {
    const char *base;
    size_t len;
} ot_str;

#define OT_STR(lit) ((ot_str){ (lit), sizeof(lit) - 1 })
#define OT_STR_NULL ((ot_str){ NULL, 0 })

static inline ot_str ot_str_make(const char *p, size_t n) { return (ot_str){ p, n }; }
static inline ot_str ot_str_c(const char *s) { return (ot_str){ s, s ? strlen(s) : 0 }; }
static inline bool ot_str_eq(ot_str a, ot_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}
static inline bool ot_str_eq_lit(ot_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.base, lit, n) == 0;
}
/* ASCII case-insensitive compare: header names and tokens (RFC 9110 §5.1). */
bool ot_str_ieq(ot_str a, const char *lit);

/* Error convention: 0 = success, negative = failure. Modules define their own
 * negative codes where the caller must tell failures apart. */
#define OT_OK 0
#define OT_ERR (-1)
#define OT_EAGAIN (-2)

#define OT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define OT_UNUSED(x) ((void)(x))

#endif
