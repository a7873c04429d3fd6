#include "ot/core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

bool ot_str_ieq(ot_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.base, lit, n) == 0;
}

void ot_buf_init(ot_buf *b) { *b = (ot_buf)OT_BUF_INIT; }

void ot_buf_free(ot_buf *b)
{
    free(b->data);
    ot_buf_init(b);
}

int ot_buf_reserve(ot_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (b->off > 0 && b->cap - (b->len - b->off) >= n) {
        ot_buf_compact(b);
        return 0;
    }
    size_t want = b->len + n, cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return OT_ERR;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ot_buf_append(ot_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (ot_buf_reserve(b, n) < 0)
        return OT_ERR;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ot_buf_append_str(ot_buf *b, const char *s) { return ot_buf_append(b, s, strlen(s)); }

int ot_buf_printf(ot_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || ot_buf_reserve(b, (size_t)n + 1) < 0)
        return OT_ERR;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void ot_buf_consume(ot_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void ot_buf_compact(ot_buf *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

void ot_buf_reset(ot_buf *b) { b->len = b->off = 0; }
