#include "ot/event/io.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <unistd.h>

void ot_io_init(ot_io *io, int fd, SSL_CTX *tls)
{
    io->fd = fd;
    io->ssl = NULL;
    io->handshake_done = tls == NULL;
    io->want_read = io->want_write = false;
    if (tls) {
        io->ssl = SSL_new(tls);
        if (io->ssl) {
            SSL_set_fd(io->ssl, fd);
            SSL_set_accept_state(io->ssl);
        }
    }
}

static int tls_result(ot_io *io, int rc)
{
    int e = SSL_get_error(io->ssl, rc);
    io->want_read = e == SSL_ERROR_WANT_READ;
    io->want_write = e == SSL_ERROR_WANT_WRITE;
    if (io->want_read || io->want_write)
        return OT_EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    ERR_clear_error();
    return OT_ERR;
}

int ot_io_handshake(ot_io *io)
{
    if (io->handshake_done)
        return 0;
    if (!io->ssl)
        return OT_ERR;
    int rc = SSL_do_handshake(io->ssl);
    if (rc == 1) {
        io->handshake_done = true;
        io->want_read = io->want_write = false;
        return 0;
    }
    int r = tls_result(io, rc);
    return r == 0 ? OT_ERR : r;
}

ssize_t ot_io_read(ot_io *io, void *buf, size_t len)
{
    if (!io->ssl) {
        for (;;) {
            ssize_t n = read(io->fd, buf, len);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? OT_EAGAIN : OT_ERR;
        }
    }
    if (!io->handshake_done) {
        int h = ot_io_handshake(io);
        if (h < 0)
            return h;
    }
    size_t got = 0;
    int rc = SSL_read_ex(io->ssl, buf, len, &got);
    if (rc == 1) {
        io->want_read = io->want_write = false;
        return (ssize_t)got;
    }
    return tls_result(io, rc);
}

ssize_t ot_io_writev(ot_io *io, const struct iovec *iov, int iovcnt)
{
    if (!io->ssl) {
        for (;;) {
            ssize_t n = writev(io->fd, iov, iovcnt);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? OT_EAGAIN : OT_ERR;
        }
    }
    if (!io->handshake_done) {
        int h = ot_io_handshake(io);
        if (h < 0)
            return h;
    }
    /* TLS has no writev: write the pieces in turn; a partial result is fine
     * because SSL_MODE_ENABLE_PARTIAL_WRITE is set on the context. */
    ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        size_t done = 0;
        int rc = SSL_write_ex(io->ssl, iov[i].iov_base, iov[i].iov_len, &done);
        if (rc != 1) {
            int r = tls_result(io, rc);
            if (total > 0 && r == OT_EAGAIN)
                return total;
            return r == 0 ? OT_ERR : r;
        }
        total += (ssize_t)done;
        if (done < iov[i].iov_len)
            break;
    }
    io->want_read = io->want_write = false;
    return total;
}

void ot_io_shutdown(ot_io *io)
{
    if (io->ssl && io->handshake_done)
        SSL_shutdown(io->ssl);
    else if (!io->ssl && io->fd >= 0)
        shutdown(io->fd, SHUT_WR);
}

void ot_io_close(ot_io *io)
{
    if (io->ssl) {
        SSL_free(io->ssl);
        io->ssl = NULL;
    }
    if (io->fd >= 0) {
        close(io->fd);
        io->fd = -1;
    }
}

SSL_CTX *ot_tls_server_ctx(const char *cert_file, const char *key_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    /* TLS 1.2 and 1.3 only; 1.3 is chosen whenever the client has it. In 1.2
     * only ECDHE key exchange (forward secrecy) with AEAD ciphers: no RSA key
     * transport, no CBC, no SHA-1 MACs (Mozilla "intermediate", RFC 9325 §4.2).
     * TLS 1.3's suites are all forward-secret AEAD. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_set_cipher_list(ctx, OT_TLS12_CIPHERS) != 1 || SSL_CTX_set_ciphersuites(ctx, OT_TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
        fprintf(stderr, "ordertrack: TLS cipher configuration refused by OpenSSL\n");
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Partial writes + moving buffer: our write buffer may be compacted or
     * grown between a WANT_WRITE and the retry. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        unsigned long e = ERR_get_error();
        char msg[256];
        ERR_error_string_n(e, msg, sizeof(msg));
        fprintf(stderr, "ordertrack: TLS setup failed: %s\n", msg);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void ot_tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }
