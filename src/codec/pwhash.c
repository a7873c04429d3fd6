/* scrypt password hashing. See include/ot/pwhash.h. */
#include "ot/codec/pwhash.h"

#include <stdatomic.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ot/codec/base64.h"
#include "ot/codec/hmac.h"

#define SALT_LEN 16
#define KEY_LEN 32
#define SCRYPT_R 8 /* RFC 7914 §2 recommended block size */
/* Caps on stored parameters; p multiplies CPU time at constant memory. */
#define MAX_LOG2N 20
#define MAX_R 32
#define MAX_P 4
#define MIN_SALT 8
#define MAX_SALT 64

/* Written by configuration/tests, read by worker threads: atomic so that is
 * not a data race. */
static _Atomic int g_log2n = OT_PWHASH_LOG2N_DEFAULT;
static _Atomic int g_p = OT_PWHASH_P_DEFAULT;

void ot_pwhash_set_cost(int log2n)
{
    if (log2n < 1)
        log2n = 1;
    if (log2n > OT_PWHASH_LOG2N_MAX)
        log2n = OT_PWHASH_LOG2N_MAX;
    atomic_store_explicit(&g_log2n, log2n, memory_order_relaxed);
}

void ot_pwhash_set_parallelism(int p)
{
    if (p < 1)
        p = 1;
    if (p > MAX_P)
        p = MAX_P;
    atomic_store_explicit(&g_p, p, memory_order_relaxed);
}

/* OpenSSL's own accounting (crypto/evp/pbe_scrypt.c): B is 128*r*p bytes, V is
 * 128*r*(N+2). Checked here first so a hostile string fails fast, and passed
 * as maxmem because OpenSSL's default (32 MiB) is below our default cost. */
static bool cost_ok(unsigned log2n, unsigned r, unsigned p, uint64_t *mem)
{
    if (log2n < 1 || log2n > MAX_LOG2N || r < 1 || r > MAX_R || p < 1 || p > MAX_P)
        return false;
    *mem = 128ull * r * p + 128ull * r * ((1ull << log2n) + 2);
    return *mem <= OT_PWHASH_MAX_MEM;
}

static int derive(const char *pw, size_t n, const uint8_t *salt, size_t saltlen, unsigned log2n, unsigned r,
                  unsigned p, uint8_t key[KEY_LEN])
{
    uint64_t mem;
    if (!cost_ok(log2n, r, p, &mem))
        return OT_ERR;
    /* Slack over the exact need: OpenSSL compares with its own rounding. */
    if (EVP_PBE_scrypt(n ? pw : "", n, salt, saltlen, 1ull << log2n, r, p, mem + 4096, key, KEY_LEN) != 1)
        return OT_ERR;
    return 0;
}

int ot_pwhash_hash(const char *pw, size_t n, char out[OT_PWHASH_MAX])
{
    unsigned log2n = (unsigned)atomic_load_explicit(&g_log2n, memory_order_relaxed);
    unsigned par = (unsigned)atomic_load_explicit(&g_p, memory_order_relaxed);
    uint8_t salt[SALT_LEN], key[KEY_LEN];
    char s64[OT_B64_ENC_LEN(SALT_LEN) + 1], k64[OT_B64_ENC_LEN(KEY_LEN) + 1];
    if (RAND_bytes(salt, sizeof salt) != 1 || derive(pw, n, salt, sizeof salt, log2n, SCRYPT_R, par, key) < 0)
        return OT_ERR;
    s64[ot_b64_encode(salt, sizeof salt, s64, false)] = '\0';
    k64[ot_b64_encode(key, sizeof key, k64, false)] = '\0';
    OPENSSL_cleanse(key, sizeof key);
    int w = snprintf(out, OT_PWHASH_MAX, "scrypt$%u$%u$%u$%s$%s", log2n, SCRYPT_R, par, s64, k64);
    return w > 0 && w < OT_PWHASH_MAX ? 0 : OT_ERR;
}

/* Decimal field of 1..3 digits without a leading zero, then '$'. */
static bool field_uint(const char **pp, const char *end, unsigned *v)
{
    const char *p = *pp;
    unsigned x = 0;
    int nd = 0;
    while (p < end && *p >= '0' && *p <= '9' && nd < 4) {
        x = x * 10 + (unsigned)(*p++ - '0');
        nd++;
    }
    if (nd == 0 || nd > 3 || (**pp == '0') || p >= end || *p != '$')
        return false;
    *v = x;
    *pp = p + 1;
    return true;
}

/* The three cost fields; *rest points at the salt. */
static bool parse_params(const char *stored, const char **rest, const char **end, unsigned *log2n, unsigned *r,
                         unsigned *par)
{
    if (!stored)
        return false;
    size_t len = strnlen(stored, OT_PWHASH_MAX);
    if (len == OT_PWHASH_MAX || len < 7 || memcmp(stored, "scrypt$", 7) != 0)
        return false;
    const char *p = stored + 7;
    *end = stored + len;
    if (!field_uint(&p, *end, log2n) || !field_uint(&p, *end, r) || !field_uint(&p, *end, par))
        return false;
    *rest = p;
    return true;
}

bool ot_pwhash_needs_rehash(const char *stored)
{
    const char *p, *end;
    unsigned log2n, r, par;
    if (!parse_params(stored, &p, &end, &log2n, &r, &par) || log2n > MAX_LOG2N || r > MAX_R || par > MAX_P)
        return false;
    /* scrypt's work is N*r*p; only ever rehash upward, so lowering the
     * setting (tests, a mistake) never weakens stored hashes. */
    uint64_t have = (1ull << log2n) * r * par;
    uint64_t want = (1ull << atomic_load_explicit(&g_log2n, memory_order_relaxed)) * SCRYPT_R *
                    (unsigned)atomic_load_explicit(&g_p, memory_order_relaxed);
    return have < want;
}

int ot_pwhash_verify(const char *pw, size_t n, const char *stored)
{
    const char *p, *end;
    unsigned log2n, r, par;
    if (!parse_params(stored, &p, &end, &log2n, &r, &par))
        return OT_ERR;
    const char *d = memchr(p, '$', (size_t)(end - p));
    if (!d)
        return OT_ERR;
    uint8_t salt[MAX_SALT], want[KEY_LEN + 2], key[KEY_LEN];
    size_t saltlen, keylen;
    if (ot_b64_decode(p, (size_t)(d - p), salt, sizeof salt, &saltlen, false) < 0 || saltlen < MIN_SALT ||
        ot_b64_decode(d + 1, (size_t)(end - d - 1), want, sizeof want, &keylen, false) < 0 || keylen != KEY_LEN)
        return OT_ERR;
    if (derive(pw, n, salt, saltlen, log2n, r, par, key) < 0)
        return OT_ERR;
    bool same = ot_ct_equal(key, want, KEY_LEN);
    OPENSSL_cleanse(key, sizeof key);
    return same ? 0 : OT_ERR;
}

/* ---- password policy ---- */

/* Passwords that top every leaked-password frequency list, lower-case. A
 * password whose lower-case form is one of these is refused. */
static const char *const common_pw[] = {
    "00000000", "0123456789", "1111111111", "11111111", "1234567890", "12345678", "123456789", "1234567890",
    "123123123", "123321123", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx", "1qazxsw2", "987654321", "88888888",
    "abc12345", "abcd1234", "abcdefgh", "access14", "admin123", "administrator", "alexander", "asdf1234",
    "asdfasdf", "asdfghjk", "asdfghjkl", "baseball", "basketball", "batman123", "charlie1", "chocolate",
    "computer", "corvette", "dragon123", "esperanza", "football", "football1", "freedom1", "gfhjkm123",
    "iloveyou", "iloveyou1", "iloveyou2", "jennifer", "jordan23", "letmein1", "letmein123", "liverpool",
    "michelle", "midnight", "mercedes", "monkey123", "mustang1", "naruto123", "passw0rd", "password",
    "password!", "password1", "password12", "password123", "password1234", "pokemon1", "princess",
    "princess1", "q1w2e3r4", "q1w2e3r4t5", "qazwsxedc", "qwer1234", "qwerty12", "qwerty123", "qwerty1234",
    "qwertyui", "qwertyuiop", "samantha", "shadow12", "starwars", "sunshine", "sunshine1", "superman",
    "superman1", "tinkerbell", "trustno1", "welcome1", "welcome123", "whatever", "zaq12wsx", "zxcvbnm1",
    "zxcvbnm123", "zxcvbnmm", "changeme", "changeme123", "letmeinnow", "secret123", "default1",
    "p@ssw0rd", "p@ssword", "pa55word", "pa$$word", "master123", "test1234", "testtest", "qweasdzxc",
    "11223344", "12341234", "12344321", "12121212", "147258369", "159753456", "654321654", "666666666",
    "77777777", "99999999", "123456789a", "a1234567", "a12345678", "aa123456", "1234qwer", "ordertrack",
};

static bool ieq_n(const char *a, size_t n, const char *b)
{
    if (strlen(b) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

bool ot_password_is_common(const char *pw, size_t n)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(common_pw); i++)
        if (ieq_n(pw, n, common_pw[i]))
            return true;
    /* One repeated character ("aaaaaaaaaa") is as guessable as the list. */
    size_t k = 1;
    while (k < n && pw[k] == pw[0])
        k++;
    return n > 0 && k == n;
}

const char *ot_password_check(const char *pw, size_t n, const char *email, size_t min_len)
{
    if (min_len < OT_PASSWORD_MIN_FLOOR)
        min_len = OT_PASSWORD_MIN_FLOOR;
    if (n < min_len)
        return "is too short";
    if (n > OT_PASSWORD_MAX_LEN)
        return "is longer than 1024 bytes";
    if (memchr(pw, '\0', n))
        return "contains a NUL byte";
    if (email && ieq_n(pw, n, email))
        return "must not be the email address";
    if (ot_password_is_common(pw, n))
        return "is too common (found in lists of leaked passwords)";
    return NULL;
}
