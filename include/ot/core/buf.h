/* A growable byte buffer that carries its length and its hard limit.
 * The owner of an ot_buf owns its memory; ot_buf_free releases it. */
#ifndef OT_BUF_H
#define OT_BUF_H

#include "ot/core/common.h"

typedef struct {
    char *data;
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
    size_t off;   /* bytes already consumed from the front (read cursor) */
} ot_buf;

#define OT_BUF_INIT { NULL, 0, 0, 0 }

void ot_buf_init(ot_buf *b);
void ot_buf_free(ot_buf *b);
/* Make room for at least `n` more bytes; 0 or OT_ERR on allocation failure. */
int ot_buf_reserve(ot_buf *b, size_t n);
int ot_buf_append(ot_buf *b, const void *p, size_t n);
int ot_buf_append_str(ot_buf *b, const char *s);
int ot_buf_printf(ot_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Unconsumed bytes. */
static inline const char *ot_buf_rptr(const ot_buf *b) { return b->data + b->off; }
static inline size_t ot_buf_rlen(const ot_buf *b) { return b->len - b->off; }
/* Mark `n` bytes from the front as consumed; compacts lazily. */
void ot_buf_consume(ot_buf *b, size_t n);
/* Move unconsumed bytes to the front so the free tail is contiguous. */
void ot_buf_compact(ot_buf *b);
void ot_buf_reset(ot_buf *b);
static inline ot_str ot_buf_str(const ot_buf *b) { return ot_str_make(ot_buf_rptr(b), ot_buf_rlen(b)); }

#endif
