/* JSON-lines logger: one bounded stack buffer, one write(2) per line (policy
 * in include/ot/log.h). */
#include "ot/core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ot/core/metrics.h"

/* Room kept after the last string field for `","truncated":true}\n`. */
#define TAIL_RESERVE 24
/* Caps on the untrusted fields that come before the (truncatable) last one,
 * so they can never crowd it out: worst case 6 output bytes per input byte. */
#define METHOD_MAX_IN 32
#define REMOTE_MAX_IN 64
#define RID_MAX_IN 64

static ot_log_level log_level = OT_LOG_INFO;
static int log_worker = -1;
static int fd_is_socket = -1; /* -1 = not checked yet */
static uint64_t log_drops;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void ot_log_set_level(ot_log_level l)
{
    if ((unsigned)l <= OT_LOG_ERROR)
        log_level = l;
}

ot_log_level ot_log_get_level(void) { return log_level; }

int ot_log_parse_level(const char *s, ot_log_level *out)
{
    if (!s)
        return OT_ERR;
    for (int i = 0; i <= OT_LOG_ERROR; i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (ot_log_level)i;
            return OT_OK;
        }
    if (strcasecmp(s, "warning") == 0) {
        *out = OT_LOG_WARN;
        return OT_OK;
    }
    return OT_ERR;
}

static void detect_fd(void)
{
    struct stat st;
    fd_is_socket = fstat(STDERR_FILENO, &st) == 0 && S_ISSOCK(st.st_mode);
}

void ot_log_set_worker(int idx)
{
    log_worker = idx;
    detect_fd();
}

uint64_t ot_log_dropped(void) { return log_drops; }

/* ---- line writer ---------------------------------------------------------- */

/* Out of room ("full") stops all further output; "cut" only records that
 * something was shortened. Every append is all-or-nothing, and `in_str`
 * remembers an opened string so closing can always finish it: the line stays
 * valid JSON whatever was cut. */
typedef struct {
    char buf[OT_LOG_LINE_MAX];
    size_t len;
    size_t cap; /* OT_LOG_LINE_MAX - TAIL_RESERVE until the line is closed */
    bool full, cut, in_str;
} line;

static void put_raw(line *w, const char *s, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = w->cut = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_fmt(line *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(line *w, const char *fmt, ...)
{
    if (w->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len)
        w->full = w->cut = true; /* len not advanced: the partial text is dropped */
    else
        w->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 §4: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if the byte starts none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range allowed for the 2nd byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

/* Appends up to max_in bytes of src JSON-escaped (RFC 8259 §7), without the
 * surrounding quotes. Stops at a whole escape/sequence when out of room. */
static void put_escaped(line *w, const char *src, size_t n, size_t max_in)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    if (n > max_in) {
        n = max_in;
        w->cut = true;
    }
    for (size_t i = 0; i < n && !w->full;) {
        char esc[6];
        const char *out = esc;
        size_t len, adv = 1;
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, len = 2;
        } else if (c == '\n') {
            esc[0] = '\\', esc[1] = 'n', len = 2;
        } else if (c == '\r') {
            esc[0] = '\\', esc[1] = 'r', len = 2;
        } else if (c == '\t') {
            esc[0] = '\\', esc[1] = 't', len = 2;
        } else if (c >= 0x20 && c < 0x7F) {
            out = (const char *)s + i, len = 1;
        } else if (c >= 0x80 && (adv = utf8_seq(s + i, n - i)) > 0) {
            out = (const char *)s + i, len = adv;
        } else {
            /* Other controls, DEL (terminal safety) and invalid UTF-8. */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], len = 6, adv = 1;
        }
        put_raw(w, out, len);
        i += adv;
    }
}

static void put_str_field(line *w, const char *key, ot_str v, size_t max_in)
{
    put_fmt(w, ",\"%s\":\"", key);
    if (w->full)
        return;
    w->in_str = true;
    put_escaped(w, v.base, v.base ? v.len : 0, max_in);
    if (!w->full) {
        put_raw(w, "\"", 1);
        w->in_str = false;
    }
}

static void line_open(line *w, ot_log_level l)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    w->len = 0;
    w->cap = OT_LOG_LINE_MAX - TAIL_RESERVE;
    w->full = w->cut = w->in_str = false;
    put_fmt(w,
            "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"worker\":%d,"
            "\"pid\":%ld",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[l], log_worker, (long)getpid());
}

/* Finishes the line inside the reserved tail, so this always fits. */
static void line_close(line *w)
{
    bool cut = w->cut;
    w->cap = OT_LOG_LINE_MAX;
    w->full = false;
    if (w->in_str)
        put_raw(w, "\"", 1);
    if (cut)
        put_raw(w, ",\"truncated\":true", 17);
    put_raw(w, "}\n", 2);
}

static void emit(const line *w)
{
    if (fd_is_socket < 0)
        detect_fd();
    const char *p = w->buf;
    size_t n = w->len;
    while (n > 0) {
        ssize_t r = fd_is_socket ? send(STDERR_FILENO, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                                 : write(STDERR_FILENO, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* EAGAIN (full pipe/socket), EPIPE, ...: drop, never wait */
        /* Only files/ttys/stream sockets write partially; finish the line so
         * the next one starts on its own line. */
        p += r;
        n -= (size_t)r;
    }
    if (n > 0) {
        log_drops++;
        ot_metrics_inc(OT_C_LOG_DROPPED, 1);
    }
}

void ot_logf(ot_log_level l, const char *fmt, ...)
{
    if ((unsigned)l > OT_LOG_ERROR || l < log_level)
        return;
    int saved_errno = errno; /* callers log and then still look at errno */
    line w;
    char msg[OT_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mlen = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;

    line_open(&w, l);
    put_str_field(&w, "msg", ot_str_make(msg, mlen), SIZE_MAX);
    if (n >= 0 && (size_t)n >= sizeof msg)
        w.cut = true;
    line_close(&w);
    emit(&w);
    errno = saved_errno;
}

size_t ot_log_request_id(char *out)
{
    /* Per process: a random prefix (re-drawn after fork, noticed by the pid
     * changing) plus a counter, so ids never repeat across workers. */
    static pid_t owner;
    static uint32_t prefix, counter;
    pid_t pid = getpid();
    if (pid != owner) {
        owner = pid;
        counter = 0;
        if (getrandom(&prefix, sizeof prefix, GRND_NONBLOCK) != (ssize_t)sizeof prefix) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            prefix = (uint32_t)pid * 2654435761u ^ (uint32_t)ts.tv_nsec;
        }
    }
    int n = snprintf(out, OT_LOG_REQUEST_ID_MAX, "%08" PRIx32 "%08" PRIx32, prefix, counter++);
    return n < 0 ? 0 : (size_t)n;
}

void ot_log_access_rid(ot_str method, ot_str path, int status, uint64_t bytes,
                       uint64_t duration_us, ot_str remote, ot_str request_id)
{
    if (OT_LOG_INFO < log_level)
        return;
    int saved_errno = errno;
    char rid[OT_LOG_REQUEST_ID_MAX];
    if (!request_id.base || request_id.len == 0)
        request_id = ot_str_make(rid, ot_log_request_id(rid));

    line w;
    line_open(&w, OT_LOG_INFO);
    put_fmt(&w,
            ",\"type\":\"access\",\"status\":%d,\"bytes\":%" PRIu64 ",\"duration_us\":%" PRIu64,
            status, bytes, duration_us);
    /* These are capped well below the line size, so only path (last) can run
     * out of room. */
    put_str_field(&w, "request_id", request_id, RID_MAX_IN);
    put_str_field(&w, "remote", remote, REMOTE_MAX_IN);
    put_str_field(&w, "method", method, METHOD_MAX_IN);
    put_str_field(&w, "path", path, SIZE_MAX);
    line_close(&w);
    emit(&w);
    errno = saved_errno;
}

void ot_log_access(ot_str method, ot_str path, int status, uint64_t bytes, uint64_t duration_us,
                   ot_str remote)
{
    ot_log_access_rid(method, path, status, bytes, duration_us, remote, OT_STR_NULL);
}
