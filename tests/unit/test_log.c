#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "ot/core/log.h"

/* ---- stderr capture ---- */

static int saved_stderr = -1, cap_rd = -1;

static void capture_start(void)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    saved_stderr = dup(2);
    cr_assert_eq(dup2(p[1], 2), 2);
    close(p[1]);
    cap_rd = p[0];
    ot_log_set_worker(3); /* re-checks what fd 2 is now */
}

/* Restores stderr and returns everything written meanwhile (NUL-terminated). */
static char *capture_end(size_t *len)
{
    dup2(saved_stderr, 2);
    close(saved_stderr);
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap + 1);
    ssize_t r;
    while ((r = read(cap_rd, s + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap)
            s = realloc(s, (cap *= 2) + 1);
    }
    close(cap_rd);
    s[n] = '\0';
    *len = n;
    return s;
}

/* ---- JSON checks ---- */

/* Decodes a JSON string body (RFC 8259 §7). \u00XX decodes to the byte XX,
 * which is how the logger spells invalid UTF-8. Returns decoded length. */
static size_t json_unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'u': {
            char hex[5] = { s[i + 1], s[i + 2], s[i + 3], s[i + 4], 0 };
            long v = strtol(hex, NULL, 16);
            cr_assert_lt(v, 0x100, "logger only emits \\u00XX");
            out[o++] = (char)v;
            i += 4;
            break;
        }
        default: out[o++] = c; break;
        }
    }
    return o;
}

typedef struct {
    const char *line;
    size_t len;
    jsmntok_t tok[64];
    int ntok;
} jline;

/* Parses one line as a flat JSON object; fails the test otherwise. */
static void parse_line(jline *j, const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        cr_assert_geq((unsigned char)line[i], 0x20, "raw control byte in: %.*s", (int)len, line);
    jsmn_parser p;
    jsmn_init(&p);
    j->line = line;
    j->len = len;
    j->ntok = jsmn_parse(&p, line, len, j->tok, 64);
    cr_assert_gt(j->ntok, 0, "not JSON (%d): %.*s", j->ntok, (int)len, line);
    cr_assert_eq(j->tok[0].type, JSMN_OBJECT);
    cr_assert_eq((size_t)j->tok[0].end, len, "trailing bytes: %.*s", (int)len, line);
}

/* Decoded value of `key` into out (NUL-terminated); returns its length, or -1. */
static long field(const jline *j, const char *key, char *out)
{
    for (int i = 1; i + 1 < j->ntok; i += 2) {
        const jsmntok_t *k = &j->tok[i], *v = &j->tok[i + 1];
        if ((size_t)(k->end - k->start) == strlen(key) &&
            memcmp(j->line + k->start, key, strlen(key)) == 0) {
            size_t n = v->type == JSMN_STRING
                           ? json_unescape(j->line + v->start, (size_t)(v->end - v->start), out)
                           : (size_t)(v->end - v->start);
            if (v->type != JSMN_STRING)
                memcpy(out, j->line + v->start, n);
            out[n] = '\0';
            return (long)n;
        }
    }
    return -1;
}

/* Splits captured output into lines, each checked as JSON; returns the count. */
static int each_line(char *s, size_t n, jline *first)
{
    int count = 0;
    char *p = s, *end = s + n;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        cr_assert_not_null(eol, "unterminated line");
        cr_assert_leq((size_t)(eol - p) + 1, (size_t)OT_LOG_LINE_MAX);
        jline j;
        parse_line(&j, p, (size_t)(eol - p));
        if (count == 0 && first)
            *first = j;
        count++;
        p = eol + 1;
    }
    return count;
}

static char val[1 << 16];

/* ---- tests ---- */

Test(log, logf_line_is_json_with_header_fields_and_escaped_msg)
{
    capture_start();
    ot_logf(OT_LOG_WARN, "say \"%s\"\\ %d\n\t%c%c end", "hi", 42, 1, 0x7f);
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    static const char want[] = "say \"hi\"\\ 42\n\t\x01\x7f end";
    cr_assert_eq(field(&j, "msg", val), (long)sizeof want - 1);
    cr_assert_str_eq(val, want);
    cr_assert_gt(field(&j, "ts", val), 0);
    int y, mo, d, h, mi, se, ms;
    char z;
    cr_assert_eq(sscanf(val, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &se, &ms, &z), 8);
    cr_assert_eq(z, 'Z');
    cr_assert_eq(strlen(val), 24);
    field(&j, "level", val);
    cr_assert_str_eq(val, "warn");
    field(&j, "worker", val);
    cr_assert_str_eq(val, "3");
    field(&j, "pid", val);
    cr_assert_eq(atol(val), (long)getpid());
    free(s);
}

Test(log, access_line_escapes_untrusted_method_and_path)
{
    capture_start();
    static const char path[] = "/orders/\"x\"\\\r\n\x1b[31m\xff\xc3\xa9\xed\xa0\x80?q=1";
    ot_log_access(OT_STR("GE\"T"), ot_str_make(path, sizeof path - 1), 404, 123, 4567,
                  OT_STR("10.0.0.1:5555"));
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    cr_assert_eq(field(&j, "path", val), (long)sizeof path - 1);
    cr_assert_eq(memcmp(val, path, sizeof path - 1), 0, "path must round-trip");
    /* valid UTF-8 passes raw; the lone 0xff and the surrogate encoding are escaped */
    cr_assert_not_null(strstr(s, "\xc3\xa9"));
    cr_assert_not_null(strstr(s, "\\u00ff"));
    cr_assert_not_null(strstr(s, "\\u00ed\\u00a0\\u0080"));
    field(&j, "method", val);
    cr_assert_str_eq(val, "GE\"T");
    field(&j, "type", val);
    cr_assert_str_eq(val, "access");
    field(&j, "status", val);
    cr_assert_str_eq(val, "404");
    field(&j, "bytes", val);
    cr_assert_str_eq(val, "123");
    field(&j, "duration_us", val);
    cr_assert_str_eq(val, "4567");
    field(&j, "remote", val);
    cr_assert_str_eq(val, "10.0.0.1:5555");
    cr_assert_eq(field(&j, "request_id", val), 16);
    cr_assert_eq(field(&j, "truncated", val), -1);
    free(s);
}

Test(log, access_rid_uses_the_given_request_id)
{
    capture_start();
    ot_log_access_rid(OT_STR("GET"), OT_STR("/"), 200, 0, 1, OT_STR("::1"), OT_STR("abc\"1"));
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    field(&j, "request_id", val);
    cr_assert_str_eq(val, "abc\"1");
    free(s);
}

Test(log, lines_below_the_level_are_not_written)
{
    ot_log_set_level(OT_LOG_WARN);
    capture_start();
    ot_logf(OT_LOG_INFO, "hidden");
    ot_logf(OT_LOG_DEBUG, "hidden");
    ot_log_access(OT_STR("GET"), OT_STR("/"), 200, 0, 0, OT_STR("x"));
    ot_logf(OT_LOG_ERROR, "shown");
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    field(&j, "msg", val);
    cr_assert_str_eq(val, "shown");
    field(&j, "level", val);
    cr_assert_str_eq(val, "error");
    free(s);
}

Test(log, parse_level_accepts_names_case_insensitively)
{
    ot_log_level l = OT_LOG_ERROR;
    cr_assert_eq(ot_log_parse_level("DEBUG", &l), 0);
    cr_assert_eq(l, OT_LOG_DEBUG);
    cr_assert_eq(ot_log_parse_level("Warning", &l), 0);
    cr_assert_eq(l, OT_LOG_WARN);
    cr_assert_eq(ot_log_parse_level("info", &l), 0);
    cr_assert_eq(l, OT_LOG_INFO);
    cr_assert_eq(ot_log_parse_level("verbose", &l), OT_ERR);
    cr_assert_eq(l, OT_LOG_INFO);
    cr_assert_eq(ot_log_parse_level(NULL, &l), OT_ERR);
}

Test(log, long_msg_is_truncated_to_one_valid_line)
{
    static char big[10000];
    memset(big, 'a', sizeof big - 1);
    capture_start();
    ot_logf(OT_LOG_INFO, "%s", big);
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    cr_assert_leq(n, OT_LOG_LINE_MAX);
    cr_assert_gt(n, OT_LOG_LINE_MAX - 64, "truncation should use the room it has");
    field(&j, "truncated", val);
    cr_assert_str_eq(val, "true");
    long m = field(&j, "msg", val);
    cr_assert_gt(m, 3000);
    cr_assert_eq(strspn(val, "a"), (size_t)m);
    free(s);
}

Test(log, long_path_of_escapes_is_cut_on_a_whole_escape)
{
    /* Each byte escapes to 2 or 6 output bytes: the cut must not split one. */
    for (int k = 0; k < 6; k++) {
        static char path[8000];
        for (size_t i = 0; i < sizeof path; i++)
            path[i] = (i + (size_t)k) % 3 == 0 ? '"' : (i + (size_t)k) % 3 == 1 ? '\x01' : 'p';
        capture_start();
        ot_log_access(OT_STR("POST"), ot_str_make(path, sizeof path), 200, 1, 1, OT_STR("r"));
        size_t n;
        char *s = capture_end(&n);
        jline j;
        cr_assert_eq(each_line(s, n, &j), 1);
        field(&j, "truncated", val);
        cr_assert_str_eq(val, "true");
        long m = field(&j, "path", val);
        cr_assert_gt(m, 100);
        cr_assert_eq(memcmp(val, path, (size_t)m), 0, "truncated path is a prefix");
        free(s);
    }
}

Test(log, oversized_method_is_capped_and_line_stays_valid)
{
    static char method[5000];
    memset(method, 'M', sizeof method);
    capture_start();
    ot_log_access(ot_str_make(method, sizeof method), OT_STR("/p"), 400, 0, 0, OT_STR("r"));
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    field(&j, "path", val);
    cr_assert_str_eq(val, "/p", "path still logged after a capped field");
    field(&j, "truncated", val);
    cr_assert_str_eq(val, "true");
    cr_assert_lt(field(&j, "method", val), 100);
    free(s);
}

Test(log, full_nonblocking_pipe_drops_line_and_counts_it)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    static char fill[4096];
    while (write(p[1], fill, sizeof fill) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
    int saved = dup(2);
    dup2(p[1], 2);
    ot_log_set_worker(0);
    uint64_t before = ot_log_dropped();
    errno = 1234;
    ot_logf(OT_LOG_ERROR, "cannot be written");
    cr_assert_eq(errno, 1234, "logging must not clobber errno");
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(ot_log_dropped(), before + 1);
    close(p[0]);
    close(p[1]);
}

Test(log, lines_from_several_processes_never_interleave)
{
    enum { PROCS = 4, LINES = 100 };
    capture_start();
    static char body[3500];
    for (int c = 0; c < PROCS; c++) {
        if (fork() == 0) {
            memset(body, 'a' + c, sizeof body - 1);
            ot_log_set_worker(c);
            for (int i = 0; i < LINES; i++)
                ot_logf(OT_LOG_INFO, "%d %s", i, body);
            _exit(0);
        }
    }
    /* Parent keeps only the read end busy; children block on a full pipe. */
    dup2(saved_stderr, 2);
    close(saved_stderr);
    size_t cap = (size_t)PROCS * LINES * 4096, n = 0;
    char *s = malloc(cap + 1);
    ssize_t r;
    while ((r = read(cap_rd, s + n, cap - n)) > 0)
        n += (size_t)r;
    close(cap_rd);
    while (wait(NULL) > 0)
        ;
    cr_assert_eq(each_line(s, n, NULL), PROCS * LINES);
    free(s);
}

Test(log, request_ids_are_unique_within_and_across_processes)
{
    char a[OT_LOG_REQUEST_ID_MAX], b[OT_LOG_REQUEST_ID_MAX], c[OT_LOG_REQUEST_ID_MAX];
    cr_assert_eq(ot_log_request_id(a), 16);
    cr_assert_eq(ot_log_request_id(b), 16);
    cr_assert_str_neq(a, b);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    if (fork() == 0) {
        ot_log_request_id(c);
        _exit(write(p[1], c, sizeof c) == (ssize_t)sizeof c ? 0 : 1);
    }
    cr_assert_eq(read(p[0], c, sizeof c), (ssize_t)sizeof c);
    wait(NULL);
    cr_assert_str_neq(c, a);
    cr_assert_str_neq(c, b);
    cr_assert_neq(memcmp(c, a, 8), 0, "a forked worker draws its own prefix");
}

/* ---- batching (issue 12: one write per loop round) ---- */

static int wakes;
static void count_wake(void *data) { (*(int *)data)++; }

/* Counts the write(2)s that reached fd 2 by reading the pipe after each step. */
static size_t pending_bytes(void)
{
    int n = 0;
    cr_assert_eq(ioctl(cap_rd, FIONREAD, &n), 0);
    return (size_t)n;
}

Test(log, batched_access_lines_wait_for_flush_and_wake_once_per_round)
{
    capture_start();
    wakes = 0;
    ot_log_set_batching(count_wake, &wakes);
    for (int i = 0; i < 10; i++)
        ot_log_access(OT_STR("GET"), OT_STR("/healthz"), 200, (uint64_t)i, 7, OT_STR("127.0.0.1"));
    cr_assert_eq(wakes, 1, "the wake hook runs when the batch goes from empty to non-empty");
    cr_assert_eq(pending_bytes(), 0, "nothing is written before the flush");
    ot_log_flush();
    cr_assert_gt(pending_bytes(), 0);
    ot_log_access(OT_STR("GET"), OT_STR("/x"), 404, 1, 1, OT_STR("127.0.0.1"));
    cr_assert_eq(wakes, 2, "a new round wakes again");
    ot_log_set_batching(NULL, NULL); /* flushes */
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 11);
    free(s);
}

Test(log, logf_flushes_the_batch_first_so_order_is_kept)
{
    capture_start();
    wakes = 0;
    ot_log_set_batching(count_wake, &wakes);
    ot_log_access(OT_STR("GET"), OT_STR("/first"), 200, 1, 1, OT_STR("127.0.0.1"));
    ot_logf(OT_LOG_WARN, "second");
    cr_assert_gt(pending_bytes(), 0, "a warning is written at once");
    ot_log_set_batching(NULL, NULL);
    size_t n;
    char *s = capture_end(&n);
    char *a = strstr(s, "/first"), *b = strstr(s, "second");
    cr_assert(a && b && a < b, "the access line logged first comes first");
    free(s);
}

/* A pipe is shared by the master and every worker: each write must be at most
 * PIPE_BUF bytes of whole lines, whatever the batch holds. */
Test(log, flush_writes_whole_lines_of_at_most_pipe_buf)
{
    capture_start();
    /* Room for the whole output: this test reads only at the end. */
    cr_assert_geq(fcntl(2, F_SETPIPE_SZ, 1 << 20), 1 << 18);
    ot_log_set_batching(count_wake, &wakes);
    static char path[1500];
    memset(path, 'p', sizeof path);
    path[0] = '/';
    for (int i = 0; i < 100; i++) /* ~150 KB: more than the batch, flushed when full */
        ot_log_access(OT_STR("GET"), ot_str_make(path, sizeof path), 200, 1, 1, OT_STR("127.0.0.1"));
    ot_log_set_batching(NULL, NULL);
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 100, "every line arrives whole and valid");
    free(s);
}

Test(log, flush_chunks_end_on_line_boundaries)
{
    /* strace-free check: a socketpair in SOCK_SEQPACKET mode keeps write
     * boundaries, so each recv is one write of the logger. */
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int saved = dup(2);
    dup2(sv[0], 2);
    ot_log_set_worker(1);
    ot_log_set_batching(count_wake, &wakes);
    static char path[700];
    memset(path, 'q', sizeof path);
    for (int i = 0; i < 40; i++)
        ot_log_access(OT_STR("GET"), ot_str_make(path, sizeof path), 200, 1, 1, OT_STR("127.0.0.1"));
    ot_log_set_batching(NULL, NULL);
    dup2(saved, 2);
    close(saved);
    ot_log_set_worker(0);
    int writes = 0, lines = 0;
    static char rec[8192];
    ssize_t r;
    while ((r = recv(sv[1], rec, sizeof rec, MSG_DONTWAIT)) > 0) {
        writes++;
        cr_assert_leq(r, OT_LOG_LINE_MAX, "one write is at most PIPE_BUF");
        cr_assert_eq(rec[r - 1], '\n', "a write ends on a line end");
        for (ssize_t i = 0; i < r; i++)
            lines += rec[i] == '\n';
    }
    cr_assert_eq(lines, 40);
    cr_assert_lt(writes, 40, "lines are gathered into fewer writes");
    close(sv[0]);
    close(sv[1]);
}

Test(log, batch_dropped_under_backpressure_is_counted_per_line)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    static char fill[4096];
    while (write(p[1], fill, sizeof fill) > 0)
        ;
    int saved = dup(2);
    dup2(p[1], 2);
    ot_log_set_worker(0);
    ot_log_set_batching(count_wake, &wakes);
    uint64_t before = ot_log_dropped();
    for (int i = 0; i < 5; i++)
        ot_log_access(OT_STR("GET"), OT_STR("/y"), 200, 1, 1, OT_STR("127.0.0.1"));
    ot_log_set_batching(NULL, NULL);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(ot_log_dropped(), before + 5);
    close(p[0]);
    close(p[1]);
}

Test(log, numbers_and_timestamp_are_formatted_like_printf)
{
    struct timespec before;
    clock_gettime(CLOCK_REALTIME, &before);
    capture_start();
    ot_log_access(OT_STR("GET"), OT_STR("/n"), 599, UINT64_MAX, 0, OT_STR("::1"));
    size_t n;
    char *s = capture_end(&n);
    jline j;
    cr_assert_eq(each_line(s, n, &j), 1);
    field(&j, "bytes", val);
    cr_assert_str_eq(val, "18446744073709551615");
    field(&j, "duration_us", val);
    cr_assert_str_eq(val, "0");
    field(&j, "status", val);
    cr_assert_str_eq(val, "599");
    field(&j, "ts", val);
    struct tm tm;
    gmtime_r(&before.tv_sec, &tm);
    char want[32];
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M", &tm);
    cr_assert_eq(strncmp(val, want, strlen(want)), 0, "%s vs %s", val, want);
    free(s);
}

Test(log, a_forked_child_logs_its_own_pid)
{
    capture_start();
    ot_logf(OT_LOG_WARN, "parent"); /* caches the parent's pid in the line head */
    pid_t child = fork();
    if (child == 0) {
        ot_logf(OT_LOG_WARN, "child");
        _exit(0);
    }
    int st;
    waitpid(child, &st, 0);
    size_t n;
    char *s = capture_end(&n);
    char want[64];
    snprintf(want, sizeof want, "\"pid\":%ld,\"msg\":\"child\"", (long)child);
    cr_assert_not_null(strstr(s, want), "%s", s);
    free(s);
}
