#include "ot/codec/iso8601.h"

#include <stdio.h>

#define US_PER_S 1000000LL
#define S_PER_DAY 86400LL

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil: eras of 400 years, March-based years so the leap day is
 * last). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* n decimal digits at p (bounds checked by the caller). */
static int digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return OT_ERR;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static int month_days(int y, int m)
{
    static const int md[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

int ot_iso8601_parse(ot_str s, int64_t *us)
{
    const char *p = s.base;
    size_t n = s.len, i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
    if (n < 10 || digits(p, 4, &y) < 0 || p[4] != '-' || digits(p + 5, 2, &mo) < 0 || p[7] != '-' ||
        digits(p + 8, 2, &d) < 0)
        return OT_ERR;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
        return OT_ERR;
    i = 10;
    int64_t off_s = 0;
    if (i < n) {
        if ((p[i] != 'T' && p[i] != 't') || n < i + 6 || digits(p + i + 1, 2, &h) < 0 || p[i + 3] != ':' ||
            digits(p + i + 4, 2, &mi) < 0)
            return OT_ERR;
        i += 6;
        if (i < n && p[i] == ':') {
            if (n < i + 3 || digits(p + i + 1, 2, &sec) < 0)
                return OT_ERR;
            i += 3;
            if (i < n && p[i] == '.') {
                size_t k = 0;
                i++;
                while (i + k < n && p[i + k] >= '0' && p[i + k] <= '9' && k < 6) {
                    frac = frac * 10 + (p[i + k] - '0');
                    k++;
                }
                if (k == 0)
                    return OT_ERR;
                for (size_t z = k; z < 6; z++)
                    frac *= 10;
                i += k;
            }
        }
        if (h > 23 || mi > 59 || sec > 59 || i >= n)
            return OT_ERR;
        if (p[i] == 'Z' || p[i] == 'z') {
            i++;
        } else if (p[i] == '+' || p[i] == '-') {
            int oh, om;
            if (n < i + 6 || digits(p + i + 1, 2, &oh) < 0 || p[i + 3] != ':' || digits(p + i + 4, 2, &om) < 0 ||
                oh > 23 || om > 59)
                return OT_ERR;
            off_s = (oh * 3600 + om * 60) * (p[i] == '-' ? -1 : 1);
            i += 6;
        } else {
            return OT_ERR;
        }
    }
    if (i != n)
        return OT_ERR;
    int64_t secs = days_from_civil(y, mo, d) * S_PER_DAY + h * 3600 + mi * 60 + sec - off_s;
    *us = secs * US_PER_S + frac;
    return 0;
}

size_t ot_iso8601_format(int64_t us, char *out)
{
    /* Floor division, so an instant before 1970 still truncates downwards. */
    int64_t secs = us >= 0 ? us / US_PER_S : -((-us + US_PER_S - 1) / US_PER_S);
    int64_t rem_us = us - secs * US_PER_S;
    int64_t days = secs >= 0 ? secs / S_PER_DAY : -((-secs + S_PER_DAY - 1) / S_PER_DAY);
    int64_t sod = secs - days * S_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999)
        return 0;
    int len = snprintf(out, 25, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, m, d, (int)(sod / 3600),
                       (int)(sod / 60 % 60), (int)(sod % 60), (int)(rem_us / 1000));
    return len == 24 ? 24 : 0;
}
