/* JSON-lines logger: one bounded stack buffer, one write(2) per line (policy
 * in include/ot/log.h). */
#include "ot/core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ot/core/fmt.h"
#include "ot/core/metrics.h"
#include "ot/core/utf8.h"

/* Room kept after the last string field for `","truncated":true}\n`. */
#define TAIL_RESERVE 24
/* Caps on the untrusted fields that come before the (truncatable) last one,
 * so they can never crowd it out: worst case 6 output bytes per input byte. */
#define METHOD_MAX_IN 32
#define REMOTE_MAX_IN 64
#define RID_MAX_IN 64

static ot_log_level log_level = OT_LOG_INFO;
static int log_worker = -1;
/* ,"worker":N,"pid":P of every line, formatted once per process (reset after
 * fork by the atfork handler, so a child never logs its parent's pid). */
static char who[48];
static size_t who_len;
static bool rid_ready;
static void atfork_prepare(void) { ot_log_flush(); }
static void atfork_child(void)
{
    who_len = 0;
    rid_ready = false;
}
/* Flush before fork so the child cannot write the parent's lines again; the
 * child re-formats its pid and draws a new request-id prefix. */
static void hook_fork(void)
{
    static bool hooked;
    if (!hooked) {
        pthread_atfork(atfork_prepare, NULL, atfork_child);
        hooked = true;
    }
}

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
    who_len = 0; /* worker and pid re-formatted on the next line */
}

uint64_t ot_log_dropped(void) { return log_drops; }

/* ---- line writer ---------------------------------------------------------- */

/* Out of room ("full") stops all further output; "cut" only records that
 * something was shortened. Every append is all-or-nothing, and `in_str`
 * remembers an opened string so closing can always finish it: the line stays
 * valid JSON whatever was cut. Nothing here calls printf: the access log runs
 * once per request, and field writers cost a fraction of vsnprintf. */
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

#define PUT_LIT(w, lit) put_raw((w), (lit), sizeof(lit) - 1)

static void put_u64(line *w, uint64_t v)
{
    char d[OT_FMT_U64_MAX];
    put_raw(w, d, ot_fmt_u64(d, v));
}

static void put_i64(line *w, int64_t v)
{
    if (v < 0) {
        PUT_LIT(w, "-");
        put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else
        put_u64(w, (uint64_t)v);
}

/* Appends up to max_in bytes of src JSON-escaped (RFC 8259 §7), without the
 * surrounding quotes. Stops at a whole escape/sequence when out of room. */
static void put_escaped(line *w, const char *src, size_t n, size_t max_in)
{
    const unsigned char *s = (const unsigned char *)src;
    if (n > max_in) {
        n = max_in;
        w->cut = true;
    }
    for (size_t i = 0; i < n && !w->full;) {
        /* Runs of plain ASCII (nearly every path and address) go in one copy. */
        size_t run = ot_json_esc_plain_run(s, i, n, OT_JSON_ESC_LOG);
        if (run > i) {
            size_t want = run - i, room = w->cap - w->len;
            size_t take = want <= room ? want : room;
            memcpy(w->buf + w->len, s + i, take);
            w->len += take;
            i += take;
            if (take < want)
                w->full = w->cut = true;
            continue;
        }
        /* The shared escaper (core/utf8.h, inline) in its log form. */
        char esc[6];
        size_t adv, len = ot_json_esc_one(s + i, n - i, OT_JSON_ESC_LOG, esc, &adv);
        const char *out = esc;
        if (len == 0) /* valid UTF-8, copied whole */
            out = (const char *)s + i, len = adv;
        put_raw(w, out, len);
        i += adv;
    }
}

/* `key_open` is the literal `,"key":"`. */
static void put_str_field(line *w, const char *key_open, size_t key_len, ot_str v, size_t max_in)
{
    put_raw(w, key_open, key_len);
    if (w->full)
        return;
    w->in_str = true;
    put_escaped(w, v.base, v.base ? v.len : 0, max_in);
    if (!w->full) {
        put_raw(w, "\"", 1);
        w->in_str = false;
    }
}
#define PUT_STR_FIELD(w, key, v, max) put_str_field((w), ",\"" key "\":\"", sizeof(",\"" key "\":\"") - 1, (v), (max))

/* The line's head changes once per millisecond at most: the date and time
 * part is formatted once per second, the worker/pid part once per process. */
static struct {
    time_t sec;
    char date[21]; /* {"ts":"YYYY-MM-DDTHH:MM:SS. without the leading {"ts":" */
} ts_cache = { .sec = (time_t)-1 };

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

static void refresh_who(void)
{
    hook_fork();
    line w = { .cap = sizeof who };
    PUT_LIT(&w, ",\"worker\":");
    put_i64(&w, log_worker);
    PUT_LIT(&w, ",\"pid\":");
    put_i64(&w, (int64_t)getpid());
    memcpy(who, w.buf, w.len);
    who_len = w.len;
}

static void line_open(line *w, ot_log_level l)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != ts_cache.sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char *d = ts_cache.date;
        int y = tm.tm_year + 1900;
        two(d, y / 100), two(d + 2, y % 100), d[4] = '-';
        two(d + 5, tm.tm_mon + 1), d[7] = '-';
        two(d + 8, tm.tm_mday), d[10] = 'T';
        two(d + 11, tm.tm_hour), d[13] = ':';
        two(d + 14, tm.tm_min), d[16] = ':';
        two(d + 17, tm.tm_sec), d[19] = '.';
        ts_cache.sec = ts.tv_sec;
    }
    if (who_len == 0)
        refresh_who();
    w->len = 0;
    w->cap = OT_LOG_LINE_MAX - TAIL_RESERVE;
    w->full = w->cut = w->in_str = false;
    PUT_LIT(w, "{\"ts\":\"");
    put_raw(w, ts_cache.date, 20);
    long ms = ts.tv_nsec / 1000000;
    char m[6] = { (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"', ',' };
    put_raw(w, m, sizeof m);
    static const char *const level_json[] = { "\"level\":\"debug\"", "\"level\":\"info\"",
                                              "\"level\":\"warn\"", "\"level\":\"error\"" };
    put_raw(w, level_json[l], strlen(level_json[l]));
    put_raw(w, who, who_len);
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

static void count_drops(uint64_t lines)
{
    log_drops += lines;
    ot_metrics_inc(OT_C_LOG_DROPPED, lines);
}

/* One write of whole lines; returns false when (part of) it was dropped. */
static bool write_whole(const char *p, size_t n)
{
    if (fd_is_socket < 0)
        detect_fd();
    while (n > 0) {
        ssize_t r = fd_is_socket ? send(STDERR_FILENO, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                                 : write(STDERR_FILENO, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false; /* EAGAIN (full pipe/socket), EPIPE, ...: drop, never wait */
        /* Only files/ttys/stream sockets write partially; finish the chunk so
         * the next line starts on its own line. */
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *e = p + n;
    while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        c++;
        p++;
    }
    return c;
}

/* ---- batching ------------------------------------------------------------- */

/* Access lines of one loop round are gathered here and written together by
 * ot_log_flush, so a burst of requests costs a few write(2)s instead of one
 * each. Writes stay whole lines of at most OT_LOG_LINE_MAX bytes (PIPE_BUF):
 * on a pipe or socket shared by the master and every worker, that is what keeps
 * lines from different processes from interleaving. */
static char batch[OT_LOG_BATCH_MAX];
static size_t batch_len;
static ot_log_wake_fn *batch_wake;
static void *batch_wake_data;

void ot_log_set_batching(ot_log_wake_fn *wake, void *data)
{
    ot_log_flush();
    batch_wake = wake;
    batch_wake_data = data;
}

void ot_log_flush(void)
{
    size_t off = 0;
    while (off < batch_len) {
        size_t n = batch_len - off;
        if (n > OT_LOG_LINE_MAX) {
            /* The last line end within one PIPE_BUF; every line is at most
             * OT_LOG_LINE_MAX long, so there always is one. */
            const char *nl = memrchr(batch + off, '\n', OT_LOG_LINE_MAX);
            n = nl ? (size_t)(nl - (batch + off)) + 1 : OT_LOG_LINE_MAX;
        }
        if (!write_whole(batch + off, n)) {
            /* Back-pressure: the rest of the round is dropped, and counted. */
            count_drops(count_lines(batch + off, batch_len - off));
            break;
        }
        off += n;
    }
    batch_len = 0;
}

static void emit(const line *w)
{
    if (!batch_wake) {
        if (!write_whole(w->buf, w->len))
            count_drops(1);
        return;
    }
    if (w->len > sizeof batch - batch_len)
        ot_log_flush(); /* a full batch is written now, never grown */
    bool was_empty = batch_len == 0;
    memcpy(batch + batch_len, w->buf, w->len);
    batch_len += w->len;
    if (was_empty)
        batch_wake(batch_wake_data);
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
    PUT_STR_FIELD(&w, "msg", ot_str_make(msg, mlen), SIZE_MAX);
    if (n >= 0 && (size_t)n >= sizeof msg)
        w.cut = true;
    line_close(&w);
    /* Not batched: a warning or error is written at once, after the access
     * lines logged before it, so the order of the log stays the order of events. */
    ot_log_flush();
    if (!write_whole(w.buf, w.len))
        count_drops(1);
    errno = saved_errno;
}

/* Per process: a random prefix (re-drawn after fork: the atfork handler
 * clears it) plus a counter, so ids never repeat across workers. No getpid()
 * per call: it is a real system call, and this runs once per request. */
static uint32_t rid_prefix, rid_counter;

size_t ot_log_request_id(char *out)
{
    if (!rid_ready) {
        rid_counter = 0;
        if (getrandom(&rid_prefix, sizeof rid_prefix, GRND_NONBLOCK) != (ssize_t)sizeof rid_prefix) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            rid_prefix = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec;
        }
        rid_ready = true;
        hook_fork();
    }
    uint64_t v = (uint64_t)rid_prefix << 32 | rid_counter++;
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = ot_hex_lower[v & 15];
    out[16] = '\0';
    return 16;
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
    PUT_LIT(&w, ",\"type\":\"access\",\"status\":");
    put_i64(&w, status);
    PUT_LIT(&w, ",\"bytes\":");
    put_u64(&w, bytes);
    PUT_LIT(&w, ",\"duration_us\":");
    put_u64(&w, duration_us);
    /* These are capped well below the line size, so only path (last) can run
     * out of room. */
    PUT_STR_FIELD(&w, "request_id", request_id, RID_MAX_IN);
    PUT_STR_FIELD(&w, "remote", remote, REMOTE_MAX_IN);
    PUT_STR_FIELD(&w, "method", method, METHOD_MAX_IN);
    PUT_STR_FIELD(&w, "path", path, SIZE_MAX);
    line_close(&w);
    emit(&w);
    errno = saved_errno;
}

void ot_log_access(ot_str method, ot_str path, int status, uint64_t bytes, uint64_t duration_us,
                   ot_str remote)
{
    ot_log_access_rid(method, path, status, bytes, duration_us, remote, OT_STR_NULL);
}
