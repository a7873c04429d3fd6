#include "ot/api/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/crypto.h>

#include "ot/api/helpers.h"
#include "ot/app/bearer.h"
#include "ot/app/principals.h"
#include "ot/codec/json.h"
#include "ot/codec/user_fields.h"
#include "ot/core/metrics.h"
#include "ot/app/gateway.h"
#include "ot/http/ws_handshake.h"
#include "ot/codec/pwhash.h"
#include "ot/core/ratelimit.h"

const ot_pg_stmt ot_auth_stmts[] = {
    { "user_insert",
      "INSERT INTO users (name, email, role, password_hash) VALUES ($1, $2, 'CUSTOMER', $3) "
      "RETURNING id, name, email, role, ot_iso(created_at)",
      3, false },
    { "user_by_email",
      "SELECT id, name, email, role, password_hash, token_epoch, active FROM users WHERE lower(email) = lower($1)", 1,
      true },
    /* Rehash on login (stronger scrypt cost): only if the hash is still the one
     * verified, so a concurrent password change wins. See sql/005. */
    { "user_rehash", "SELECT ot_user_rehash($1, $2, $3)", 3, false },
};
const size_t ot_auth_nstmts = OT_ARRAY_LEN(ot_auth_stmts);

/* One worker per process: the revocation cache and the login throttles are
 * process state, set once by the app wiring (ot_auth_setup). */
static struct {
    ot_ratelimit *rl_auth;     /* /auth/... per client address (NULL: off) */
    ot_inflight *kdf;          /* password hashes queued or running */
} g_auth;

int ot_auth_setup(const ot_config *cfg, ot_principals *p)
{
    ot_auth_teardown();
    if (ot_bearer_setup(cfg, p) < 0)
        return OT_ERR;
    if (cfg->auth_rate_ip > 0 &&
        !(g_auth.rl_auth = ot_ratelimit_new(cfg->auth_rate_ip, cfg->auth_rate_ip_burst, OT_AUTH_RL_KEYS)))
        return OT_ERR;
    g_auth.kdf = ot_inflight_new(cfg->kdf_max_queue, cfg->kdf_max_per_ip);
    return g_auth.kdf ? 0 : OT_ERR;
}

void ot_auth_teardown(void)
{
    ot_ratelimit_free(g_auth.rl_auth);
    ot_inflight_free(g_auth.kdf);
    ot_bearer_teardown();
    memset(&g_auth, 0, sizeof(g_auth));
}

/* One client for the login limits: its IPv4 address, or the /64 of an IPv6
 * one (a single host is usually handed a whole /64). */
static size_t client_key(const ot_req *r, const uint8_t **key)
{
    *key = r->remote_key;
    return r->remote_key_len == 16 ? 8 : r->remote_key_len;
}

/* Login and register cost a password hash (~100 ms of a pool thread, 32 MiB):
 * throttle per address before anything else, so a flood is refused at the
 * cost of a table lookup. */
static bool auth_throttle(ot_req *r)
{
    const uint8_t *key;
    size_t klen = client_key(r, &key);
    uint32_t retry;
    if (g_auth.rl_auth && klen &&
        ot_ratelimit_take(g_auth.rl_auth, key, klen, ot_loop_now_ms(r->srv->loop), &retry) < 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", retry);
        ot_resp_header(r, "Retry-After", ra);
        ot_metrics_inc(OT_C_AUTH_THROTTLED, 1);
        ot_respond_error(r, 429, "rate_limited", "too many login or register attempts from this address");
        return false;
    }
    return true;
}

/* A request parked until its token's user is loaded, then run again from the
 * top of its handler (which finds the user cached this time). */
typedef struct {
    ot_req *r;
    ot_principals_wait wait;
    ot_handler *again;
} auth_wait;

/* The request whose handler is being re-run: it must not wait a second time. */
static ot_req *g_rerun;

static void wait_abort(ot_req *r)
{
    auth_wait *a = r->ctx;
    ot_principals_cancel(&a->wait);
    free(a);
}

static void wait_done(void *data, int status)
{
    auth_wait *a = data;
    ot_req *r = a->r;
    ot_handler *again = a->again;
    r->on_abort = NULL;
    r->ctx = NULL;
    free(a);
    if (status != OT_PG_OK) {
        ot_resp_header(r, "Retry-After", "1");
        ot_respond_error(r, 503, "database_unavailable", "cannot check the token's user now, retry shortly");
        return;
    }
    g_rerun = r;
    again(r);
    g_rerun = NULL;
}

/* Parks r until the user `id` is loaded, then calls again(r). False if it
 * answered instead (out of memory, or already re-run once). */
static bool wait_for_user(ot_req *r, const uint8_t id[16], ot_handler *again)
{
    if (g_rerun == r) {
        ot_resp_header(r, "Retry-After", "1");
        ot_respond_error(r, 503, "busy", "cannot check the token's user now, retry shortly");
        return false;
    }
    auth_wait *a = calloc(1, sizeof(*a));
    if (!a) {
        ot_respond_error(r, 500, "internal", "out of memory");
        return false;
    }
    a->r = r;
    a->again = again;
    r->ctx = a;
    r->on_abort = wait_abort;
    ot_principals_load(ot_bearer_principals(), id, &a->wait, wait_done, a);
    return true;
}

static void token_refused(ot_req *r, int rc)
{
    ot_resp_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    ot_respond_error(r, 401, rc == OT_JWT_EEXPIRED ? "token_expired" : "invalid_token", "%s", ot_jwt_strerror(rc));
}

bool ot_auth_require(ot_req *r, ot_role need)
{
    ot_str h = r->head.authorization;
    if (h.len < 7 || !ot_str_ieq(ot_str_make(h.base, 7), "Bearer ")) {
        ot_resp_header(r, "WWW-Authenticate", "Bearer");
        ot_respond_error(r, 401, "unauthorized", "missing bearer token");
        return false;
    }
    ot_str tok = ot_str_make(h.base + 7, h.len - 7);
    uint8_t id[16];
    int rc = ot_bearer_check(r->srv->cfg, tok, &r->auth, id);
    if (rc == OT_JWT_EUNVERIFIED) {
        /* First sight of this user on this worker: one query, then again. */
        wait_for_user(r, id, r->srv->router.routes[r->route].handler);
        return false;
    }
    if (rc != OT_JWT_OK) {
        token_refused(r, rc);
        return false;
    }
    r->authed = true;
    if (need == OT_ROLE_ADMIN && r->auth.role != OT_ROLE_ADMIN) {
        ot_respond_error(r, 403, "forbidden", "this action needs the ADMIN role");
        return false;
    }
    uint32_t retry;
    if (ot_api_of(r)->rl_user &&
        ot_ratelimit_take(ot_api_of(r)->rl_user, r->auth.sub, strlen(r->auth.sub), ot_loop_now_ms(r->srv->loop), &retry) < 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", retry);
        ot_resp_header(r, "Retry-After", ra);
        ot_metrics_inc(OT_C_RATE_LIMITED, 1);
        ot_respond_error(r, 429, "rate_limited", "too many requests for this user");
        return false;
    }
    return true;
}

void ot_h_ws_auth(ot_req *r)
{
    /* The WebSocket handler checks the token itself, synchronously: make
     * sure the user is cached first. Any other refusal is its to answer. */
    char tok[OT_JWT_MAX_LEN];
    size_t toklen = 0;
    ot_jwt_claims cl;
    uint8_t id[16];
    if (ot_bearer_principals() && g_rerun != r && ot_ws_token(&r->head, tok, sizeof(tok), &toklen) == 0 &&
        ot_bearer_check(r->srv->cfg, ot_str_make(tok, toklen), &cl, id) == OT_JWT_EUNVERIFIED) {
        wait_for_user(r, id, ot_h_ws_auth);
        return;
    }
    ot_h_ws(r);
}

/* ---- shared async plumbing for the two handlers ---- */

typedef struct {
    ot_api_ctx base;       /* request and query (api/helpers.h) */
    bool aborted;
    bool in_work;          /* a pool thread holds this context */
    char name[201], email[255], password[1025];
    size_t pwlen;
    char hash[OT_PWHASH_MAX];
    char old_hash[OT_PWHASH_MAX]; /* login: the verified hash, when rehashed */
    bool rehashed;
    int work_rc;
    /* login: what the database said */
    bool found;
    char uid[64], uname[201], role[16];
    int64_t epoch;
    bool active;
    bool kdf_held;         /* holds a slot of g_auth.kdf under key[] */
    uint8_t key[16];
    size_t keylen;
} auth_ctx;

static void ctx_release(void *ctx)
{
    auth_ctx *c = ctx;
    if (c->kdf_held && g_auth.kdf)
        ot_inflight_release(g_auth.kdf, c->key, c->keylen);
    /* The password must not linger in freed memory. */
    OPENSSL_cleanse(c->password, sizeof(c->password));
    free(c);
}

static void on_abort(ot_req *r)
{
    auth_ctx *c = r->ctx;
    c->aborted = true;
    if (c->base.q) {
        ot_pg_cancel(c->base.q);
        c->base.q = NULL;
    }
    if (!c->in_work)
        ctx_release(c);
}

static auth_ctx *ctx_new(ot_req *r)
{
    auth_ctx *c = ot_api_ctx_new(r, sizeof(auth_ctx), on_abort);
    if (c)
        c->base.release = ctx_release;
    return c;
}

/* Response paths clear the abort hook first: the request is finished after. */
static void finish(auth_ctx *c) { ot_api_finish(c); }

/* A pool thread gave c back: false if the request went away meanwhile (c is
 * released then). */
static bool kdf_back(auth_ctx *c)
{
    c->in_work = false;
    if (!c->aborted)
        return true;
    ctx_release(c);
    return false;
}

static bool db_ok(ot_req *r, int status, const PGresult *res) { return !ot_api_db_error(r, status, res); }

/* Queues the password hash for c, within the queue's bounds: one address
 * gets at most kdf_max_per_ip of the kdf_max_queue places, so others still
 * get theirs in time. On refusal it answers (429/503) and returns false. */
static bool kdf_submit(auth_ctx *c, ot_work_fn *work, ot_work_done_fn *done)
{
    ot_req *r = c->base.r;
    const uint8_t *key;
    c->keylen = client_key(r, &key);
    memcpy(c->key, key, c->keylen);
    int rc = g_auth.kdf ? ot_inflight_acquire(g_auth.kdf, c->key, c->keylen) : 0;
    if (rc == 0) {
        c->kdf_held = g_auth.kdf != NULL;
        c->in_work = true;
        if (ot_loop_queue_work(r->srv->loop, work, done, c) == 0)
            return true;
        c->in_work = false;
        rc = OT_INFLIGHT_EFULL;
    }
    ot_metrics_inc(OT_C_AUTH_THROTTLED, 1);
    finish(c);
    ot_resp_header(r, "Retry-After", "1");
    if (rc == OT_INFLIGHT_EKEY)
        ot_respond_error(r, 429, "too_many_logins", "too many password checks in progress for this address");
    else
        ot_respond_error(r, 503, "busy", "too many password operations in progress");
    return false;
}

static int get_str_field(ot_req *r, const ot_json *d, const char *key, char *out, size_t cap, size_t minlen,
                         size_t *outlen)
{
    int t = ot_json_obj_get(d, 0, key);
    if (t < 0 || !ot_json_is_str(d, t)) {
        ot_respond_error(r, 400, "invalid_field", "%s: required string", key);
        return OT_ERR;
    }
    size_t n = 0;
    if (ot_json_get_str_buf(d, t, out, cap, &n) < 0 || n < minlen || n >= cap) {
        ot_respond_error(r, 400, "invalid_field", "%s: length must be %zu..%zu", key, minlen, cap - 1);
        return OT_ERR;
    }
    out[n] = 0;
    if (outlen)
        *outlen = n;
    return 0;
}

static bool parse_body(ot_req *r, ot_json *d, ot_json_tok *toks, int ntoks)
{
    if (!ot_req_json_content(r))
        return false;
    if (ot_json_parse(d, r->body.base, r->body.len, toks, ntoks) < 0 || !ot_json_is_obj(d, 0)) {
        ot_respond_error(r, 400, "invalid_json", "body must be a JSON object");
        return false;
    }
    return true;
}

static void user_json(ot_buf *b, const char *id, const char *name, const char *email, const char *role)
{
    ot_jw w;
    ot_jw_init(&w, b);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "id");
    ot_jw_cstr(&w, id);
    ot_jw_key(&w, "name");
    ot_jw_cstr(&w, name);
    ot_jw_key(&w, "email");
    ot_jw_cstr(&w, email);
    ot_jw_key(&w, "role");
    ot_jw_cstr(&w, role);
    ot_jw_obj_close(&w);
}

/* ---- POST /auth/register ---- */

static void reg_inserted(void *data, int status, PGresult *res)
{
    auth_ctx *c = data;
    ot_req *r = c->base.r;
    c->base.q = NULL;
    if (status == OT_PG_EQUERY) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (st && !strcmp(st, "23505")) {
            finish(c);
            ot_respond_error(r, 409, "email_taken", "a user with this email already exists");
            return;
        }
    }
    if (status != OT_PG_OK) {
        finish(c);
        db_ok(r, status, res);
        return;
    }
    ot_buf b = OT_BUF_INIT;
    user_json(&b, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    finish(c);
    ot_respond_json(r, 201, ot_buf_str(&b));
    ot_buf_free(&b);
}

static void reg_hash_work(void *data)
{
    auth_ctx *c = data;
    c->work_rc = ot_pwhash_hash(c->password, c->pwlen, c->hash);
}

static void reg_hash_done(ot_loop *loop, void *data)
{
    auth_ctx *c = data;
    if (!kdf_back(c))
        return;
    ot_req *r = c->base.r;
    if (c->work_rc < 0) {
        finish(c);
        ot_respond_error(r, 500, "internal", "password hashing failed");
        return;
    }
    const char *vals[3] = { c->name, c->email, c->hash };
    ot_api_exec(c, "user_insert", 3, vals, NULL, reg_inserted);
}

/* Field names are echoed back cut at a code point, so the error body stays
 * valid UTF-8 (and JSON) whatever a client sent. */
static int utf8_prefix(ot_str s, int max) { return (int)ot_utf8_valid_prefix((const unsigned char *)s.base, s.len, (size_t)max); }

static bool field_fails(ot_req *r, const char *field, const char *why)
{
    if (!why)
        return false;
    ot_respond_error(r, 400, "invalid_field", "%s: %s", field, why);
    return true;
}

void ot_h_register(ot_req *r)
{
    if (!auth_throttle(r) || !ot_req_need_db(r))
        return;
    ot_json_tok toks[32];
    ot_json d;
    if (!parse_body(r, &d, toks, 32))
        return;
    /* Refused rather than ignored: a "role" someone hoped would stick, or a
     * typo, must be visible (duplicates are refused by the parser). */
    for (int t = 1; t < d.ntoks; t = ot_json_skip(&d, t + 1)) {
        if (!ot_json_str_eq(&d, t, "name") && !ot_json_str_eq(&d, t, "email") && !ot_json_str_eq(&d, t, "password")) {
            ot_str k = ot_json_raw(&d, t);
            ot_respond_error(r, 400, "invalid_field", "unknown field: %.*s (allowed: name, email, password)",
                             utf8_prefix(k, 64), k.base);
            return;
        }
    }
    auth_ctx *c = ctx_new(r);
    if (!c)
        return;
    size_t nlen = 0, elen = 0;
    if (get_str_field(r, &d, "name", c->name, sizeof(c->name), 1, &nlen) < 0 ||
        get_str_field(r, &d, "email", c->email, sizeof(c->email), 3, &elen) < 0 ||
        get_str_field(r, &d, "password", c->password, sizeof(c->password), 8, &c->pwlen) < 0 ||
        field_fails(r, "name", ot_user_check_name(ot_str_make(c->name, nlen))) ||
        field_fails(r, "email", ot_user_check_email(ot_str_make(c->email, elen))) ||
        field_fails(r, "password", ot_user_check_password(ot_str_make(c->password, c->pwlen)))) {
        finish(c);
        return;
    }
    const char *weak = ot_password_check(c->password, c->pwlen, c->email, r->srv->cfg->password_min_length);
    if (weak) {
        finish(c);
        ot_respond_error(r, 400, "weak_password", "password: %s", weak);
        return;
    }
    /* scrypt takes tens of milliseconds: never on the loop thread. */
    kdf_submit(c, reg_hash_work, reg_hash_done);
}

/* ---- POST /auth/login ---- */

static void login_verify_work(void *data)
{
    auth_ctx *c = data;
    if (c->found) {
        c->work_rc = ot_pwhash_verify(c->password, c->pwlen, c->hash);
        if (c->work_rc == 0 && ot_pwhash_needs_rehash(c->hash)) {
            memcpy(c->old_hash, c->hash, sizeof c->old_hash);
            c->rehashed = ot_pwhash_hash(c->password, c->pwlen, c->hash) == 0;
        }
        return;
    }
    /* Unknown email: spend the same KDF time anyway, so response times do not
     * reveal which emails exist. */
    char scratch[OT_PWHASH_MAX];
    ot_pwhash_hash(c->password, c->pwlen, scratch);
    c->work_rc = OT_ERR;
}

/* Opens the answer object with its "token" and "expiresAt" members. */
static void token_open(ot_jw *w, ot_buf *b, ot_str tok, int64_t exp)
{
    ot_jw_init(w, b);
    ot_jw_obj_open(w);
    ot_jw_key(w, "token");
    ot_jw_str(w, tok);
    ot_jw_key(w, "expiresAt");
    ot_jw_int(w, exp);
}

/* iat now, exp --jwt-ttl-s later, signed with the current secret. */
static int sign_fresh(ot_req *r, ot_jwt_claims *cl, ot_buf *tok)
{
    cl->iat = (int64_t)time(NULL);
    cl->exp = cl->iat + r->srv->cfg->jwt_ttl_s;
    return ot_jwt_sign(ot_str_c(r->srv->cfg->jwt_secret), cl, tok);
}

static void login_verify_done(ot_loop *loop, void *data)
{
    auth_ctx *c = data;
    if (!kdf_back(c))
        return;
    ot_req *r = c->base.r;
    if (c->work_rc < 0) {
        finish(c);
        ot_respond_error(r, 401, "invalid_credentials", "wrong email or password");
        return;
    }
    if (!c->active) {
        /* Said only to whoever knows the password: no oracle for others. */
        finish(c);
        ot_respond_error(r, 403, "account_disabled", "this account is disabled");
        return;
    }
    if (c->rehashed) {
        /* Best effort, answered or not: the next login simply tries again. The
         * rehash does not bump the token epoch (sql/003 skips it), so the token
         * issued below stays valid. */
        const char *vals[3] = { c->uid, c->old_hash, c->hash };
        ot_pg_exec(ot_api_of(r)->pg, "user_rehash", 3, vals, NULL, NULL, NULL);
    }
    /* The epoch read with the hash: a change committed since makes this
     * token stale at once, which is what that change asked for. */
    ot_jwt_claims cl = { .role = !strcmp(c->role, "ADMIN") ? OT_ROLE_ADMIN : OT_ROLE_CUSTOMER, .ep = c->epoch };
    snprintf(cl.sub, sizeof(cl.sub), "%s", c->uid);
    ot_buf tok = OT_BUF_INIT, b = OT_BUF_INIT;
    if (sign_fresh(r, &cl, &tok) < 0) {
        finish(c);
        ot_buf_free(&tok);
        ot_respond_error(r, 500, "internal", "could not sign the token");
        return;
    }
    ot_jw w;
    token_open(&w, &b, ot_buf_str(&tok), cl.exp);
    ot_jw_key(&w, "user");
    ot_buf u = OT_BUF_INIT;
    user_json(&u, c->uid, c->uname, c->email, c->role);
    ot_jw_raw(&w, ot_buf_str(&u));
    ot_jw_obj_close(&w);
    finish(c);
    /* RFC 6749 §5.1: a response carrying a token must not be cached. */
    ot_resp_header(r, "Cache-Control", "no-store");
    ot_respond_json(r, 200, ot_buf_str(&b));
    ot_buf_free(&tok);
    ot_buf_free(&b);
    ot_buf_free(&u);
}

static void login_found(void *data, int status, PGresult *res)
{
    auth_ctx *c = data;
    ot_req *r = c->base.r;
    c->base.q = NULL;
    if (status != OT_PG_OK) {
        finish(c);
        db_ok(r, status, res);
        return;
    }
    if (PQntuples(res) == 1) {
        c->found = true;
        snprintf(c->uid, sizeof(c->uid), "%s", PQgetvalue(res, 0, 0));
        snprintf(c->uname, sizeof(c->uname), "%s", PQgetvalue(res, 0, 1));
        snprintf(c->email, sizeof(c->email), "%s", PQgetvalue(res, 0, 2));
        snprintf(c->role, sizeof(c->role), "%s", PQgetvalue(res, 0, 3));
        snprintf(c->hash, sizeof(c->hash), "%s", PQgetvalue(res, 0, 4));
        c->epoch = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        c->active = PQgetvalue(res, 0, 6)[0] == 't';
    }
    kdf_submit(c, login_verify_work, login_verify_done);
}

void ot_h_login(ot_req *r)
{
    if (!auth_throttle(r) || !ot_req_need_db(r))
        return;
    ot_json_tok toks[16];
    ot_json d;
    if (!parse_body(r, &d, toks, 16))
        return;
    auth_ctx *c = ctx_new(r);
    if (!c)
        return;
    if (get_str_field(r, &d, "email", c->email, sizeof(c->email), 1, NULL) < 0 ||
        get_str_field(r, &d, "password", c->password, sizeof(c->password), 1, &c->pwlen) < 0) {
        finish(c);
        return;
    }
    const char *vals[1] = { c->email };
    ot_api_exec(c, "user_by_email", 1, vals, NULL, login_found);
}

/* POST /auth/refresh: a live token (not expired, not revoked: the same check
 * as every route) buys a new one for the same user, role and epoch, so a
 * page renews its session in band before exp without asking for the
 * password again. A revocation (epoch bump) ends the chain. */
void ot_h_refresh(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER))
        return;
    ot_jwt_claims cl = r->auth;
    ot_buf tok = OT_BUF_INIT, b = OT_BUF_INIT;
    if (sign_fresh(r, &cl, &tok) < 0) {
        ot_buf_free(&tok);
        ot_respond_error(r, 500, "internal", "could not sign the token");
        return;
    }
    ot_jw w;
    token_open(&w, &b, ot_buf_str(&tok), cl.exp);
    ot_jw_obj_close(&w);
    ot_resp_header(r, "Cache-Control", "no-store");
    ot_respond_json(r, 200, ot_buf_str(&b));
    ot_buf_free(&tok);
    ot_buf_free(&b);
}
