/* Byte-stream I/O over a non-blocking socket, plain TCP or TLS (OpenSSL),
 * behind one interface so HTTP and WebSockets never know which it is. */
#ifndef OT_IO_H
#define OT_IO_H

#include <sys/uio.h>

#include "ot/core/common.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct {
    int fd;
    SSL *ssl;             /* NULL for plain TCP */
    bool handshake_done;
    /* TLS may need the socket writable to make progress on a read (and vice
     * versa); the owner watches what these say after an OT_EAGAIN. */
    bool want_read, want_write;
} ot_io;

/* Results: > 0 bytes; 0 = orderly EOF (read only); OT_EAGAIN; OT_ERR. */
void ot_io_init(ot_io *io, int fd, SSL_CTX *tls);   /* tls NULL = plain */
ssize_t ot_io_read(ot_io *io, void *buf, size_t len);
ssize_t ot_io_writev(ot_io *io, const struct iovec *iov, int iovcnt);
/* Drives the TLS handshake: 0 done, OT_EAGAIN, OT_ERR. Plain: always 0. */
int ot_io_handshake(ot_io *io);
/* Frees TLS state and closes the fd. */
void ot_io_close(ot_io *io);
/* Sends close_notify best-effort (never blocks). */
void ot_io_shutdown(ot_io *io);

#define OT_TLS12_CIPHERS                                                                                \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"         \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define OT_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* Loads a server context from PEM files; NULL (with a log line) on failure.
 * A context is reference-counted by OpenSSL: connections made from it keep it
 * alive, so a reload may free the old one while its connections go on. */
SSL_CTX *ot_tls_server_ctx(const char *cert_file, const char *key_file);
void ot_tls_ctx_free(SSL_CTX *ctx);

#endif
