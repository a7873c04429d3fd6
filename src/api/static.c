#include "ot/api/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ot/core/config.h"

/* 'self' only: the pages load their modules, styles and the chart library
 * from this origin and talk to this origin's API and WebSocket (CSP 3 lets
 * 'self' match ws:/wss: of the same host). Scripts may set element.style
 * (CSSOM), which style-src does not govern; style attributes in markup and
 * inline <script>/<style> are refused. */
#define CSP                                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "       \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* Below this, the gzip header and the CPU cost more than they save. */
#define GZIP_MIN 512

static void security_headers(ot_req *r)
{
    ot_resp_header(r, "Content-Security-Policy", CSP);
    ot_resp_header(r, "X-Content-Type-Options", "nosniff");
    ot_resp_header(r, "Referrer-Policy", "no-referrer");
}

static void not_found(ot_req *r)
{
    security_headers(r);
    ot_respond_error(r, 404, "not_found", "no such file");
}

static ot_str header(const ot_req *r, const char *name)
{
    for (size_t i = 0; i < r->head.num_headers; i++)
        if (ot_str_ieq(r->head.headers[i].name, name))
            return r->head.headers[i].value;
    return OT_STR_NULL;
}

static ot_str trim(ot_str s)
{
    while (s.len && (s.base[0] == ' ' || s.base[0] == '\t'))
        s.base++, s.len--;
    while (s.len && (s.base[s.len - 1] == ' ' || s.base[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Calls fn on each comma-separated member of a header list value; stops at
 * the first member fn accepts. */
static bool list_any(ot_str v, bool (*fn)(ot_str m, const void *arg), const void *arg)
{
    while (v.len) {
        const char *comma = memchr(v.base, ',', v.len);
        size_t n = comma ? (size_t)(comma - v.base) : v.len;
        if (fn(trim(ot_str_make(v.base, n)), arg))
            return true;
        v.base += comma ? n + 1 : n;
        v.len -= comma ? n + 1 : n;
    }
    return false;
}

/* RFC 9110 §12.5.3: "gzip" or "*", unless its weight is q=0. */
static bool is_gzip(ot_str m, const void *arg)
{
    const char *semi = memchr(m.base, ';', m.len);
    ot_str coding = trim(ot_str_make(m.base, semi ? (size_t)(semi - m.base) : m.len));
    if (!ot_str_ieq(coding, "gzip") && !ot_str_eq_lit(coding, "*"))
        return false;
    if (!semi)
        return true;
    ot_str params = trim(ot_str_make(semi + 1, (size_t)(m.base + m.len - semi - 1)));
    if (params.len < 3 || (params.base[0] != 'q' && params.base[0] != 'Q') || params.base[1] != '=')
        return true;
    for (size_t i = 2; i < params.len; i++)
        if (params.base[i] >= '1' && params.base[i] <= '9')
            return true;
    return false; /* q=0, q=0.0, q=0.000 */
}

/* RFC 9110 §13.1.2: If-None-Match uses the weak comparison. */
static bool etag_matches(ot_str m, const void *arg)
{
    ot_str tag = ot_str_c(arg);
    if (ot_str_eq_lit(m, "*"))
        return true;
    if (m.len > 2 && m.base[0] == 'W' && m.base[1] == '/')
        m.base += 2, m.len -= 2;
    return ot_str_eq(m, tag);
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        { ".html", "text/html; charset=utf-8" },  { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },         { ".svg", "image/svg+xml" },
        { ".png", "image/png" },                  { ".ico", "image/x-icon" },
        { ".txt", "text/plain; charset=utf-8" },  { ".webmanifest", "application/manifest+json" },
        { ".yaml", "application/yaml" },
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < OT_ARRAY_LEN(types); i++)
        if (!strcasecmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static bool compressible(const char *ctype)
{
    return !strncmp(ctype, "text/", 5) || !strncmp(ctype, "application/json", 16) ||
           !strncmp(ctype, "application/yaml", 16) || !strncmp(ctype, "image/svg", 9) ||
           !strncmp(ctype, "application/manifest", 20);
}

/* One gzip member (windowBits 16+15) of in into out; OT_ERR on failure. */
static int gzip(ot_str in, ot_buf *out)
{
    z_stream z = { 0 };
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return OT_ERR;
    uLong cap = deflateBound(&z, (uLong)in.len);
    if (ot_buf_reserve(out, cap) < 0) {
        deflateEnd(&z);
        return OT_ERR;
    }
    z.next_in = (Bytef *)in.base;
    z.avail_in = (uInt)in.len;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    if (rc == Z_STREAM_END)
        out->len += z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? OT_OK : OT_ERR;
}

static void send_fd(ot_req *r, int fd, const char *ctype, bool immutable)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)OT_STATIC_MAX_FILE) {
        close(fd);
        not_found(r);
        return;
    }
    bool gz = compressible(ctype) && st.st_size >= GZIP_MIN && list_any(header(r, "Accept-Encoding"), is_gzip, NULL);
    /* Size and modification time: a changed file gets a new tag without
     * reading it; each encoding is its own representation (§8.8.3). */
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%llx-%llx%09ld%s\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, gz ? "-gz" : "");
    security_headers(r);
    ot_resp_header(r, "ETag", etag);
    ot_resp_header(r, "Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
    if (compressible(ctype))
        ot_resp_header(r, "Vary", "Accept-Encoding");
    ot_str inm = header(r, "If-None-Match");
    if (inm.len && list_any(inm, etag_matches, etag)) {
        close(fd);
        r->head_only = true; /* §15.4.5: a 304 has no content */
        ot_respond(r, 304, NULL, OT_STR_NULL);
        return;
    }
    ot_buf raw = OT_BUF_INIT, z = OT_BUF_INIT;
    size_t want = (size_t)st.st_size;
    bool ok = ot_buf_reserve(&raw, want ? want : 1) == 0;
    while (ok && raw.len < want) {
        ssize_t n = read(fd, raw.data + raw.len, want - raw.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* truncated under us: send what is there */
        raw.len += (size_t)n;
    }
    close(fd);
    if (!ok) {
        ot_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    if (gz && gzip(ot_buf_str(&raw), &z) == OT_OK) {
        ot_resp_header(r, "Content-Encoding", "gzip");
        ot_respond(r, 200, ctype, ot_buf_str(&z));
    } else {
        ot_respond(r, 200, ctype, ot_buf_str(&raw));
    }
    ot_buf_free(&raw);
    ot_buf_free(&z);
}

void ot_static_send(ot_req *r, const char *path, const char *ctype)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        not_found(r);
        return;
    }
    send_fd(r, fd, ctype, false);
}

/* A decoded path segment that names a plain file or folder: no "..", no
 * hidden file, no separator or control byte smuggled in by %-encoding. */
static bool segment(ot_str raw, char *out, size_t cap)
{
    size_t n;
    if (ot_url_decode_path(raw, out, cap - 1, &n) < 0 || n == 0 || out[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = out[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '-' || ch == '_'))
            return false;
    }
    out[n] = 0;
    return true;
}

/* rel (checked segments) under the web root, resolved: a symlink that
 * leads out of the root is refused like a missing file. */
static void send_rel(ot_req *r, const char *rel, const char *name, bool immutable)
{
    char root[PATH_MAX], want[PATH_MAX + 256], real[PATH_MAX];
    if (!realpath(r->srv->cfg->web_dir, root)) {
        not_found(r);
        return;
    }
    snprintf(want, sizeof(want), "%s/%s", root, rel);
    size_t rl = strlen(root);
    if (!realpath(want, real) || strncmp(real, root, rl) != 0 || real[rl] != '/') {
        not_found(r);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        not_found(r);
        return;
    }
    send_fd(r, fd, content_type(name), immutable);
}

void ot_h_static(ot_req *r)
{
    char dir[128], file[128], rel[260];
    if (r->nparams == 0) {
        send_rel(r, "index.html", "index.html", false);
        return;
    }
    if (!segment(r->params[r->nparams - 1], file, sizeof(file)) ||
        (r->nparams == 2 && !segment(r->params[0], dir, sizeof(dir)))) {
        not_found(r);
        return;
    }
    if (r->nparams == 2)
        snprintf(rel, sizeof(rel), "%s/%s", dir, file);
    else
        snprintf(rel, sizeof(rel), "%s", file);
    /* vendor/ names carry the library's version (scripts/web-vendor.sh). */
    send_rel(r, rel, file, r->nparams == 2 && !strcmp(dir, "vendor"));
}

void ot_h_static_admin(ot_req *r)
{
    send_rel(r, "admin.html", "admin.html", false);
}
