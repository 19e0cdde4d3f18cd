/* authn: Authorization header parsing, login checks, the token endpoint. */
#include "auth/authn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "auth/token.h"
#include "db/db.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"

#define KEY_CACHE 32
#define BEARER_LIFETIME 300
#define MAX_SCOPES 16
/* The OAuth2 form containerd posts to the token realm: credentials, a few
 * scopes, service and client id fit in a fraction of this. */
#define TOKEN_FORM_MAX 16384
/* Failed access-key logins from one address: this many are free, then each
 * further one waits 1, 2, 4, ... up to LOGIN_BACKOFF_MAX seconds before
 * credentials are even checked. */
#define LOGIN_FREE_FAILURES 10
#define LOGIN_BACKOFF_MAX 300

/* Successful access-key logins and access-key states, each kept for
 * policy_cache_ms (1 s by default): a deleted or deactivated key stops
 * working within that time on every node. Logins are keyed by SHA-256 of
 * "id:secret". */
struct authn_cache {
    struct {
        unsigned char hash[32];
        int64_t at;
        struct principal p;
        char key_id[24];
    } keys[KEY_CACHE];
    unsigned next;
    struct {
        char key_id[24];
        bool active;
        int64_t at;
    } live[KEY_CACHE];
    unsigned next_live;
};

static const struct db_stmt st_fail_get = {
    "authn_fail_get",
    "SELECT ceil(extract(epoch FROM blocked_until - now()))::int FROM login_failures"
    " WHERE key_id = $1 AND address = $2 AND blocked_until > now()", 2};
static const struct db_stmt st_fail_add = {
    "authn_fail_add",
    "INSERT INTO login_failures(key_id, address, failures) VALUES ($1, $2, 1)"
    " ON CONFLICT (key_id, address) DO UPDATE SET"
    " failures = CASE WHEN login_failures.last_at < now() - interval '1 hour' THEN 1"
    "            ELSE login_failures.failures + 1 END,"
    " last_at = now(),"
    " blocked_until = CASE WHEN login_failures.last_at >= now() - interval '1 hour'"
    "   AND login_failures.failures + 1 > $3::int THEN now() + make_interval(secs =>"
    "   least($4::int, power(2, least(login_failures.failures - $3::int, 20))::int)) END", 4};
static const struct db_stmt st_fail_clear = {
    "authn_fail_clear", "DELETE FROM login_failures WHERE key_id = $1 AND address = $2", 2};

struct authn_cache *authn_cache_new(void)
{
    return xcalloc(1, sizeof(struct authn_cache));
}

void authn_cache_free(struct authn_cache *c)
{
    if (c)
        OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

const char *authn_public_url(struct ctx *c, struct req *r)
{
    if (c->cfg->public_url[0])
        return c->cfg->public_url;
    /* The client's Host header is taken only when nothing is configured
     * (development): it would otherwise let a request choose where clients
     * send their credentials (the token realm) and what proxyEndpoint says. */
    const char *host = c->cfg->registry_host[0] ? c->cfg->registry_host : req_header(r, "Host");
    const char *https = req_env(r, "HTTPS");
    bool tls = https && (strcasecmp(https, "on") == 0 || strcmp(https, "1") == 0);
    if (!host || !*host || strpbrk(host, "\"\\ \r\n/"))
        host = "localhost";
    return arena_printf(r->a, "%s://%s", tls ? "https" : "http", host);
}

void authn_challenge(struct ctx *c, struct req *r, const char *scope)
{
    if (strcmp(c->cfg->auth_scheme, "basic") == 0) {
        resp_header(r, "WWW-Authenticate", "Basic realm=\"pier\"");
        return;
    }
    if (scope)
        resp_header(r, "WWW-Authenticate", "Bearer realm=\"%s/token\",service=\"pier\",scope=\"%s\"",
                    authn_public_url(c, r), scope);
    else
        resp_header(r, "WWW-Authenticate", "Bearer realm=\"%s/token\",service=\"pier\"",
                    authn_public_url(c, r));
}

/* The principal a login password or a download token names: its "sub"
 * (ARN), "pid", "kid" and "exp" claims. False when they are malformed. */
static bool claims_identity(json_t *claims, enum auth_via via, struct identity *id)
{
    const char *arn = json_string_value(json_object_get(claims, "sub"));
    json_t *pid = json_object_get(claims, "pid");
    if (!arn || !*arn || !json_is_integer(pid))
        return false;
    id->authenticated = true;
    id->via = via;
    id->expires = (long long)json_integer_value(json_object_get(claims, "exp"));
    const char *kid = json_string_value(json_object_get(claims, "kid"));
    snprintf(id->key_id, sizeof id->key_id, "%s", kid ? kid : "");
    id->p.id = json_integer_value(pid);
    snprintf(id->p.arn, sizeof id->p.arn, "%s", arn);
    const char *slash = strrchr(arn, '/');
    snprintf(id->p.name, sizeof id->p.name, "%s", slash ? slash + 1 : arn);
    return true;
}

static pier_err from_login_token(struct ctx *c, const char *token, struct identity *id,
                                 struct perr *e)
{
    json_t *claims;
    pier_err rc = token_verify(c->tk, TOKEN_LOGIN, token, &claims, e);
    if (rc) {
        char why[PERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return perr_set(e, PIER_E_UNAUTHORIZED, "login password rejected: %s", why);
    }
    bool ok = claims_identity(claims, VIA_LOGIN_TOKEN, id);
    json_decref(claims);
    if (!ok)
        return perr_set(e, PIER_E_UNAUTHORIZED, "login password rejected: malformed claims");
    return PIER_OK;
}

pier_err authn_basic(struct ctx *c, struct authn_cache *ac, const char *user, const char *pass,
                     struct identity *id, struct perr *e)
{
    if (strcmp(user, "AWS") == 0)
        return from_login_token(c, pass, id, e);
    /* An access key id and its secret. */
    unsigned char h[32];
    char *both = arena_printf(c->a, "%s:%s", user, pass);
    EVP_Digest(both, strlen(both), h, NULL, EVP_sha256(), NULL);
    OPENSSL_cleanse(both, strlen(both));
    for (int i = 0; i < KEY_CACHE; i++) {
        if (ac->keys[i].at && now_ms() - ac->keys[i].at < c->cfg->policy_cache_ms &&
            CRYPTO_memcmp(ac->keys[i].hash, h, 32) == 0) {
            id->authenticated = true;
            id->via = VIA_ACCESS_KEY;
            id->p = ac->keys[i].p;
            snprintf(id->key_id, sizeof id->key_id, "%s", ac->keys[i].key_id);
            return PIER_OK;
        }
    }
    /* Repeated failures from this address for this key id wait before their
     * next try is even looked at. Ids that exist and ids that do not are
     * treated alike (which would tell them apart); a malformed id costs
     * nothing to refuse and is not counted. */
    bool well_formed = strlen(user) == KEY_ID_LEN && strncmp(user, "PIER", 4) == 0;
    PGresult *blocked = well_formed ? db_exec(c->db, c->a, &st_fail_get, e, user, c->remote_addr)
                                    : NULL;
    if (well_formed && !blocked)
        return e->code;
    if (blocked && PQntuples(blocked) > 0) {
        int wait = (int)db_int(blocked, 0, 0);
        log_warn("login with access key %.20s from %s refused: too many failures, %d s to wait",
                 user, c->remote_addr, wait);
        perr_set(e, PIER_E_TOOMANYREQUESTS, "too many failed logins for this access key from your "
                 "address; try again in %d seconds", wait > 0 ? wait : 1);
        perr_detail(e, "%d", wait > 0 ? wait : 1);
        return e->code;
    }
    struct principal p;
    pier_err rc = key_verify(c, user, pass, &p, e);
    if (rc) {
        if (rc != PIER_E_UNAUTHORIZED)
            return rc; /* the database, not the caller: never a false 401 */
        log_warn("login with access key %.20s from %s refused: %s", user, c->remote_addr, e->msg);
        struct perr ignore;
        if (well_formed)
            db_exec(c->db, c->a, &st_fail_add, &ignore, user, c->remote_addr, LOGIN_FREE_FAILURES,
                    LOGIN_BACKOFF_MAX);
        return perr_set(e, PIER_E_UNAUTHORIZED, "invalid username/password");
    }
    struct perr ignore;
    if (well_formed)
        db_exec(c->db, c->a, &st_fail_clear, &ignore, user, c->remote_addr);
    unsigned slot = ac->next++ % KEY_CACHE;
    memcpy(ac->keys[slot].hash, h, 32);
    ac->keys[slot].at = now_ms();
    ac->keys[slot].p = p;
    snprintf(ac->keys[slot].key_id, sizeof ac->keys[slot].key_id, "%s", user);
    id->authenticated = true;
    id->via = VIA_ACCESS_KEY;
    id->p = p;
    snprintf(id->key_id, sizeof id->key_id, "%s", user);
    return PIER_OK;
}

pier_err authn_key_live(struct ctx *c, struct authn_cache *ac, const char *key_id, struct perr *e)
{
    if (!key_id || !key_id[0])
        return PIER_OK;
    bool active = false, found = false;
    for (int i = 0; i < KEY_CACHE && !found; i++)
        if (ac->live[i].at && now_ms() - ac->live[i].at < c->cfg->policy_cache_ms &&
            strcmp(ac->live[i].key_id, key_id) == 0) {
            active = ac->live[i].active;
            found = true;
        }
    if (!found) {
        pier_err rc = key_active(c, key_id, &active, e);
        if (rc)
            return rc;
        unsigned slot = ac->next_live++ % KEY_CACHE;
        snprintf(ac->live[slot].key_id, sizeof ac->live[slot].key_id, "%s", key_id);
        ac->live[slot].active = active;
        ac->live[slot].at = now_ms();
    }
    if (!active)
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "the access key %s this login was made with was deleted or deactivated",
                        key_id);
    return PIER_OK;
}

static pier_err from_bearer(struct ctx *c, const char *token, struct identity *id, struct perr *e)
{
    json_t *claims;
    pier_err rc = token_verify(c->tk, TOKEN_BEARER, token, &claims, e);
    if (rc) {
        char why[PERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return perr_set(e, PIER_E_UNAUTHORIZED, "bearer token rejected: %s", why);
    }
    const char *arn = json_string_value(json_object_get(claims, "sub"));
    json_t *pid = json_object_get(claims, "pid");
    json_t *access = json_object_get(claims, "access");
    id->via = VIA_BEARER;
    id->expires = (long long)json_integer_value(json_object_get(claims, "exp"));
    id->authenticated = arn && *arn && json_is_integer(pid);
    if (id->authenticated) {
        id->p.id = json_integer_value(pid);
        snprintf(id->p.arn, sizeof id->p.arn, "%s", arn);
        const char *slash = strrchr(arn, '/');
        snprintf(id->p.name, sizeof id->p.name, "%s", slash ? slash + 1 : arn);
    }
    id->scope = json_is_array(access) ? json_incref(access) : json_array();
    id->catalog = json_is_true(json_object_get(claims, "catalog"));
    const char *kid = json_string_value(json_object_get(claims, "kid"));
    snprintf(id->key_id, sizeof id->key_id, "%s", kid ? kid : "");
    json_decref(claims);
    return PIER_OK;
}

char *authn_download_token(struct ctx *c, const char *name, const char *digest, long lifetime)
{
    const struct identity *who = c->who;
    if (!who || !who->authenticated)
        return NULL;
    json_t *claims = json_pack("{s:s, s:I, s:s, s:s}", "sub", who->p.arn, "pid",
                               (json_int_t)who->p.id, "n", name, "d", digest);
    if (!claims)
        return NULL;
    if (who->key_id[0])
        json_object_set_new(claims, "kid", json_string(who->key_id));
    /* Never longer than the credential it was asked with. */
    long long left = who->expires - (long long)time(NULL);
    if (who->expires > 0 && left < lifetime)
        lifetime = left > 1 ? (long)left : 1;
    char *tok = token_sign(c->a, c->tk, TOKEN_DOWNLOAD, claims, lifetime);
    json_decref(claims);
    return tok;
}

pier_err authn_download(struct ctx *c, struct authn_cache *ac, const char *token, const char *name,
                        const char *digest, struct identity *id, struct perr *e)
{
    memset(id, 0, sizeof *id);
    json_t *claims;
    if (token_verify(c->tk, TOKEN_DOWNLOAD, token, &claims, e) != PIER_OK) {
        char why[PERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return perr_set(e, PIER_E_DENIED, "download URL refused: %s", why);
    }
    const char *n = json_string_value(json_object_get(claims, "n"));
    const char *d = json_string_value(json_object_get(claims, "d"));
    bool ok = n && d && claims_identity(claims, VIA_DOWNLOAD_URL, id);
    bool same = ok && strcmp(n, name) == 0 && strcmp(d, digest) == 0;
    json_decref(claims);
    if (!ok)
        return perr_set(e, PIER_E_DENIED, "download URL refused: malformed claims");
    if (!same)
        return perr_set(e, PIER_E_DENIED,
                        "download URL refused: it was issued for another layer or repository");
    /* It dies with the access key it was asked with, as a login password does. */
    pier_err rc = authn_key_live(c, ac, id->key_id, e);
    if (rc == PIER_E_UNAUTHORIZED) {
        char why[PERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return perr_set(e, PIER_E_DENIED, "download URL refused: %s", why);
    }
    return rc;
}

bool authn_decode_basic(struct arena *a, const char *b64, char **user, char **pass)
{
    size_t n = strlen(b64);
    if (n == 0 || n > 12000 || n % 4 != 0)
        return false;
    unsigned char *out = arena_alloc(a, n);
    int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return false;
    if (n >= 1 && b64[n - 1] == '=')
        len--;
    if (n >= 2 && b64[n - 2] == '=')
        len--;
    out[len] = '\0';
    if (memchr(out, '\0', (size_t)len))
        return false;
    char *colon = strchr((char *)out, ':');
    if (!colon)
        return false;
    *colon = '\0';
    *user = (char *)out;
    *pass = colon + 1;
    return true;
}

pier_err authn_identify(struct ctx *c, struct authn_cache *ac, struct req *r, struct identity *id,
                        struct perr *e)
{
    memset(id, 0, sizeof *id);
    const char *h = req_header(r, "Authorization");
    if (!h || !*h)
        return PIER_OK;
    pier_err rc;
    if (strncasecmp(h, "Basic ", 6) == 0) {
        char *user, *pass;
        if (!authn_decode_basic(r->a, h + 6, &user, &pass))
            return perr_set(e, PIER_E_UNAUTHORIZED, "malformed Basic credentials");
        rc = authn_basic(c, ac, user, pass, id, e);
    } else if (strncasecmp(h, "Bearer ", 7) == 0) {
        rc = from_bearer(c, h + 7, id, e);
    } else {
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "unsupported Authorization scheme (use Basic or Bearer)");
    }
    /* A token or login password dies with the access key it came from. */
    if (rc == PIER_OK && id->via != VIA_ACCESS_KEY)
        rc = authn_key_live(c, ac, id->key_id, e);
    return rc;
}

/* "repository:<name>:<actions>" or "registry:catalog:*" into claims. */
static pier_err add_scope(const char *scope, json_t *access, bool *catalog, struct perr *e)
{
    if (strcmp(scope, "registry:catalog:*") == 0) {
        *catalog = true;
        return PIER_OK;
    }
    if (strncmp(scope, "repository:", 11) != 0)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "scope '%.80s' is not repository:<name>:<actions> or registry:catalog:*",
                        scope);
    const char *name = scope + 11;
    const char *colon = strrchr(name, ':');
    if (!colon || colon == name)
        return perr_set(e, PIER_E_BAD_REQUEST, "scope '%.80s' has no actions", scope);
    char repo[NAME_MAX_LEN + 1];
    size_t n = (size_t)(colon - name);
    if (n > NAME_MAX_LEN)
        return perr_set(e, PIER_E_NAME_INVALID, "scope names a repository longer than %d", NAME_MAX_LEN);
    memcpy(repo, name, n);
    repo[n] = '\0';
    pier_err rc = grammar_name(repo, e);
    if (rc)
        return rc;
    json_t *acts = json_array();
    const char *p = colon + 1;
    while (*p) {
        size_t l = strcspn(p, ",");
        char a[16];
        if (l == 0 || l >= sizeof a) {
            json_decref(acts);
            return perr_set(e, PIER_E_BAD_REQUEST, "scope '%.80s' has a bad action", scope);
        }
        memcpy(a, p, l);
        a[l] = '\0';
        if (strcmp(a, "pull") && strcmp(a, "push") && strcmp(a, "delete") && strcmp(a, "*")) {
            json_decref(acts);
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "scope action '%s' is not pull, push, delete or *", a);
        }
        json_array_append_new(acts, json_string(a));
        p += l;
        if (*p == ',')
            p++;
    }
    json_array_append_new(access, json_pack("{s:s, s:o}", "n", repo, "a", acts));
    return PIER_OK;
}

pier_err authn_scopes(const char *query, json_t *access, bool *catalog, struct perr *e)
{
    /* scope may be repeated: ?scope=a&scope=b (query_get finds each). */
    const char *q = query;
    int nscopes = 0;
    while (q && *q) {
        size_t seg = strcspn(q, "&");
        if (seg > 6 && strncmp(q, "scope=", 6) == 0) {
            char raw[1024], val[1024];
            if (seg - 6 >= sizeof raw || ++nscopes > MAX_SCOPES)
                return perr_set(e, PIER_E_BAD_REQUEST, "too many or too long scopes");
            memcpy(raw, q + 6, seg - 6);
            raw[seg - 6] = '\0';
            if (!percent_decode(raw, strlen(raw), val, true))
                return perr_set(e, PIER_E_BAD_REQUEST, "malformed scope");
            /* A scope value may itself hold several, separated by spaces. */
            char *save = NULL;
            for (char *s = strtok_r(val, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
                pier_err rc = add_scope(s, access, catalog, e);
                if (rc)
                    return rc;
            }
        }
        q += seg;
        if (*q == '&')
            q++;
    }
    return PIER_OK;
}

/* A refused login: the token endpoint's own Basic challenge. */
static pier_err refuse_login(struct req *r, struct perr *e)
{
    resp_header(r, "WWW-Authenticate", "Basic realm=\"pier\"");
    return perr_set(e, PIER_E_UNAUTHORIZED, "invalid username/password");
}

/* POST /token with a form (RFC 6749 4.3, the OAuth2 side of docker's token
 * flow): its username/password and scope take the place of Basic credentials
 * and the query. containerd posts it whenever it holds credentials (ctr
 * --user, the CRI plugin's registry auth); only the password grant is taken,
 * and the 400 for another makes containerd fall back to GET with Basic. */
static pier_err token_form(struct req *r, const char **params, char **user, char **pass,
                           struct perr *e)
{
    char *form;
    size_t n;
    pier_err rc = req_read_body(r, TOKEN_FORM_MAX, &form, &n, e);
    if (rc)
        return rc;
    char grant[32];
    if (query_get(form, "grant_type", grant, sizeof grant) != 1 || strcmp(grant, "password") != 0)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "POST /token takes grant_type=password; use GET with Basic credentials");
    *user = arena_alloc(r->a, n + 1);
    *pass = arena_alloc(r->a, n + 1);
    if (query_get(form, "username", *user, n + 1) != 1 ||
        query_get(form, "password", *pass, n + 1) != 1)
        return perr_set(e, PIER_E_BAD_REQUEST, "POST /token needs username and password");
    *params = form;
    return PIER_OK;
}

pier_err authn_token_endpoint(struct ctx *c, struct authn_cache *ac, struct req *r,
                              struct perr *e)
{
    struct identity id;
    memset(&id, 0, sizeof id);
    const char *params = r->query; /* where the scopes are: the query, or the posted form */
    const char *h = req_header(r, "Authorization");
    char *user = NULL, *pass = NULL;
    const char *type = req_header(r, "Content-Type");
    if (strcmp(r->method, "POST") == 0 && type &&
        strncasecmp(type, "application/x-www-form-urlencoded", 33) == 0) {
        pier_err rc = token_form(r, &params, &user, &pass, e);
        if (rc)
            return rc;
        h = NULL;
    } else {
        req_refuse_body(r);
    }
    if (user || (h && *h)) {
        pier_err rc;
        if (!user &&
            !(strncasecmp(h, "Basic ", 6) == 0 && authn_decode_basic(r->a, h + 6, &user, &pass)))
            rc = perr_set(e, PIER_E_UNAUTHORIZED, "the token endpoint takes Basic credentials");
        else
            rc = authn_basic(c, ac, user, pass, &id, e);
        if (rc == PIER_OK && id.via != VIA_ACCESS_KEY)
            rc = authn_key_live(c, ac, id.key_id, e);
        if (rc == PIER_E_UNAUTHORIZED) {
            log_warn("token request from %s refused: %s", r->remote_addr, e->msg);
            return refuse_login(r, e);
        }
        if (rc)
            return rc;
    }
    if (id.authenticated) {
        struct identity *saved = (struct identity *)c->who;
        c->who = &id;
        pier_err rc = authz_principal_check(c, e);
        c->who = saved;
        if (rc == PIER_E_UNAVAILABLE || rc == PIER_E_INTERNAL)
            return rc; /* the database, not the caller: never a false 401 */
        if (rc)
            return refuse_login(r, e);
    }
    json_t *access = json_array();
    bool catalog = false;
    pier_err rc = authn_scopes(params, access, &catalog, e);
    if (rc) {
        json_decref(access);
        return rc;
    }
    json_t *claims = json_pack("{s:o, s:b}", "access", access, "catalog", catalog);
    long lifetime = BEARER_LIFETIME;
    if (id.authenticated) {
        json_object_set_new(claims, "sub", json_string(id.p.arn));
        json_object_set_new(claims, "pid", json_integer(id.p.id));
        if (id.key_id[0])
            json_object_set_new(claims, "kid", json_string(id.key_id));
        /* Never longer than the login password it was asked with. */
        long long left = id.expires - (long long)time(NULL);
        if (id.expires > 0 && left < lifetime)
            lifetime = left > 1 ? (long)left : 1;
    }
    if (id.authenticated) /* for the audit trail of this sign-in */
        c->who = arena_memdup(r->a, &id, sizeof id);
    char *tok = token_sign(r->a, c->tk, TOKEN_BEARER, claims, lifetime);
    json_decref(claims);
    if (!tok)
        return perr_set(e, PIER_E_INTERNAL, "cannot issue tokens: no server key");
    char issued[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(issued, sizeof issued, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *body = json_pack("{s:s, s:s, s:i, s:s}", "token", tok, "access_token", tok,
                             "expires_in", (int)lifetime, "issued_at", issued);
    resp_header(r, "Cache-Control", "no-store");
    resp_json(r, 200, "application/json", body);
    json_decref(body);
    return PIER_OK;
}

/* ---- housekeeping of login_failures ---- */

static const struct db_stmt st_fail_expire = {
    "authn_fail_expire",
    "DELETE FROM login_failures WHERE last_at < now() - interval '1 day'"
    " AND (blocked_until IS NULL OR blocked_until < now())", 0};

pier_err authn_failures_expire(struct ctx *c, long long *removed, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_fail_expire, e);
    if (!res)
        return e->code;
    *removed = atoll(PQcmdTuples(res));
    return PIER_OK;
}
