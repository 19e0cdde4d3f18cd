/* console: sessions, CSRF and the console-only read views (overview,
 * repository details); every change goes through the control plane's
 * operations with the same authorization. */
#include "console/console.h"
#include "console/images.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "auth/authn.h"
#include "auth/authz.h"
#include "auth/policy.h"
#include "auth/principals.h"
#include "store/rules.h"
#include "cache/health.h"
#include "cache/upstream.h"
#include "db/db.h"
#include "ecrapi/api.h"
#include "ecrapi/exceptions.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/gc.h"
#include "store/repo.h"
#include "store/audit.h"
#include "store/blobstore.h"

#define SESSION_SECONDS (8 * 3600)
#define BODY_MAX (256 * 1024)
#define COOKIE "pier_session"

static const struct db_stmt st_create = {
    "con_create",
    "INSERT INTO console_sessions(id_hash, principal_id, csrf, expires_at, key_id)"
    " VALUES ($1::bytea, $2::bigint, $3, now() + make_interval(secs => $4::int), nullif($5, ''))",
    5};
/* A session opened with an access key (or with a login password made from
 * one) ends with that key: deleting it deletes the session (foreign key),
 * deactivating it refuses the session. */
static const struct db_stmt st_get = {
    "con_get",
    "SELECT p.id, p.name, p.arn, s.csrf, extract(epoch FROM s.expires_at)::bigint,"
    " coalesce(s.key_id, '')"
    " FROM console_sessions s JOIN principals p ON p.id = s.principal_id"
    " LEFT JOIN access_keys k ON k.id = s.key_id"
    " WHERE s.id_hash = $1::bytea AND s.expires_at > now()"
    " AND (s.key_id IS NULL OR k.active)",
    1};
static const struct db_stmt st_delete = {
    "con_delete", "DELETE FROM console_sessions WHERE id_hash = $1::bytea", 1};
static const struct db_stmt st_expire = {
    "con_expire", "DELETE FROM console_sessions WHERE expires_at < now()", 0};
/* ---- responses ---- */

static void reply(struct req *r, int status, json_t *body)
{
    resp_header(r, "Cache-Control", "no-store");
    resp_json(r, status, "application/json; charset=utf-8", body);
    json_decref(body);
}

/* The one place the console writes an error: type and status come from the
 * control plane's exception table. */
static void fail(struct req *r, enum ecr_exc exc, const char *msg)
{
    if (ecr_exc_console_status(exc) == 503)
        resp_header(r, "Retry-After", "5");
    reply(r, ecr_exc_console_status(exc),
          json_pack("{s:{s:s, s:s}}", "error", "type", ecr_exc_type(exc), "message", msg));
}

void console_reply(struct req *r, int status, json_t *body)
{
    reply(r, status, body);
}

void console_fail(struct req *r, enum ecr_exc exc, const char *msg)
{
    fail(r, exc, msg);
}

/* The session cookie is Secure when this request came over TLS, and also when
 * clients reach the registry through https (public_url) while TLS ends in
 * front of this Apache: the browser then never sends it in clear text. */
static bool cookie_secure(const struct ctx *c, struct req *r)
{
    if (strncasecmp(c->cfg->public_url, "https://", 8) == 0)
        return true;
    const char *https = req_env(r, "HTTPS");
    return https && (strcasecmp(https, "on") == 0 || strcmp(https, "1") == 0);
}

/* ---- sessions ---- */

struct session {
    struct identity id;
    char csrf[64];
    long long expires;
    unsigned char hash[32];
};

static bool cookie_value(struct req *r, char *out, size_t outsz)
{
    const char *h = req_header(r, "Cookie");
    if (!h)
        return false;
    size_t klen = strlen(COOKIE);
    for (const char *p = h; *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, COOKIE, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, ";");
            if (n == 0 || n >= outsz)
                return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p += strcspn(p, ";");
    }
    return false;
}

static void hash_id(const char *id, unsigned char out[32])
{
    EVP_Digest(id, strlen(id), out, NULL, EVP_sha256(), NULL);
}

static bool load_session(struct ctx *c, struct req *r, struct session *s)
{
    memset(s, 0, sizeof *s);
    char id[128];
    if (!cookie_value(r, id, sizeof id))
        return false;
    hash_id(id, s->hash);
    struct perr e;
    struct db_param p[1] = {{.value = (const char *)s->hash, .length = 32, .binary = true}};
    PGresult *res = db_execp(c->db, c->a, &st_get, p, false, &e);
    if (!res || PQntuples(res) == 0)
        return false;
    s->id.authenticated = true;
    s->id.via = VIA_ACCESS_KEY;
    s->id.p.id = db_int(res, 0, 0);
    snprintf(s->id.p.name, sizeof s->id.p.name, "%s", PQgetvalue(res, 0, 1));
    snprintf(s->id.p.arn, sizeof s->id.p.arn, "%s", PQgetvalue(res, 0, 2));
    snprintf(s->csrf, sizeof s->csrf, "%s", PQgetvalue(res, 0, 3));
    s->expires = db_int(res, 0, 4);
    /* What the session does (e.g. mint a login password) never outlives it
     * and dies with its key. */
    s->id.expires = s->expires;
    snprintf(s->id.key_id, sizeof s->id.key_id, "%s", PQgetvalue(res, 0, 5));
    return true;
}

static void random_b64url(char *out, size_t nbytes)
{
    unsigned char raw[48];
    RAND_bytes(raw, (int)nbytes);
    int n = EVP_EncodeBlock((unsigned char *)out, raw, (int)nbytes);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

static void session_json(struct req *r, const struct session *s)
{
    reply(r, 200,
          json_pack("{s:s, s:s, s:s, s:I}", "user", s->id.p.name, "principal", s->id.p.arn,
                    "csrfToken", s->csrf, "expiresAt", (json_int_t)s->expires));
}

/* A console sign-in in the audit trail. The key id typed is kept only when it
 * looks like one ("AWS" or an access key id): anything else might be a
 * secret typed into the wrong field. */
static void audit_signin(struct ctx *c, const char *key, const struct identity *id,
                         enum ecr_exc exc)
{
    bool like_key = key && strlen(key) >= 16 && strlen(key) <= 32;
    for (const char *p = key; like_key && *p; p++)
        like_key = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
    if (key && !like_key && strcmp(key, "AWS") != 0)
        key = "";
    struct audit_event ev = {.action = "console:SignIn",
                             .resource = authz_registry_arn(c),
                             .result = exc == ECR_EXC_NONE ? NULL : ecr_exc_type(exc),
                             .principal = id ? id->p.arn : "unknown",
                             .key_id = id    ? id->key_id
                                       : key ? key
                                             : ""};
    audit_record(c, &ev);
}

static void login(struct ctx *c, struct authn_cache *ac, struct req *r, json_t *in)
{
    /* An access key, or the registry's own user name and password: "AWS" and a
     * login password from GetAuthorizationToken / pierctl login-password. */
    const char *key = json_string_value(json_object_get(in, "accessKeyId"));
    const char *secret = json_string_value(json_object_get(in, "secretAccessKey"));
    if (!key || !secret || strlen(key) > 64 || strlen(secret) > 4096) {
        fail(r, ECR_EXC_INVALID_PARAMETER, "Enter an access key ID and its secret access key.");
        return;
    }
    struct identity id;
    struct perr e;
    memset(&id, 0, sizeof id);
    pier_err rc = authn_basic(c, ac, key, secret, &id, &e);
    if (rc == PIER_OK && id.via == VIA_LOGIN_TOKEN)
        rc = authn_key_live(c, ac, id.key_id, &e);
    if (rc == PIER_E_TOOMANYREQUESTS) {
        audit_signin(c, key, NULL, ECR_EXC_THROTTLING);
        resp_header(r, "Retry-After", "%s", e.detail);
        fail(r, ECR_EXC_THROTTLING, e.msg);
        return;
    }
    if (rc != PIER_OK && rc != PIER_E_UNAUTHORIZED) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, "Sign-in is not possible right now; try again.");
        return;
    }
    if (rc != PIER_OK || (id.via != VIA_ACCESS_KEY && id.via != VIA_LOGIN_TOKEN)) {
        log_warn("console sign-in with key %.20s refused from %s", key, r->remote_addr);
        audit_signin(c, key, NULL, ECR_EXC_UNRECOGNIZED_CLIENT);
        fail(r, ECR_EXC_UNRECOGNIZED_CLIENT,
             "The access key ID or the secret access key is wrong.");
        return;
    }
    /* A session never outlives the password it was opened with. */
    long long now = (long long)time(NULL);
    int lifetime = SESSION_SECONDS;
    if (id.expires > 0 && id.expires - now < lifetime)
        lifetime = (int)(id.expires - now);
    struct session s;
    memset(&s, 0, sizeof s);
    s.id = id;
    char sid[72];
    random_b64url(sid, 32);
    random_b64url(s.csrf, 24);
    hash_id(sid, s.hash);
    struct db_param p[5] = {DB_BYTES(s.hash, 32), DB_ARG(id.p.id), DB_ARG(s.csrf), DB_ARG(lifetime),
                            DB_ARG(id.key_id)};
    if (!db_execp(c->db, c->a, &st_create, p, false, &e)) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, "Sessions cannot be stored right now.");
        return;
    }
    struct perr ignore;
    db_exec(c->db, c->a, &st_expire, &ignore);
    s.expires = now + lifetime;
    resp_header(r, "Set-Cookie",
                COOKIE "=%s; Path=/console; HttpOnly; SameSite=Strict; Max-Age=%d%s", sid, lifetime,
                cookie_secure(c, r) ? "; Secure" : "");
    OPENSSL_cleanse(sid, sizeof sid);
    log_info("console sign-in: %s from %s", id.p.arn, r->remote_addr);
    audit_signin(c, key, &id, ECR_EXC_NONE);
    session_json(r, &s);
}

/* The Origin header, when the browser sends one, names this host; a
 * browser's Sec-Fetch-Site, when sent, says same-origin (or none: typed in). */
static bool same_origin(struct req *r)
{
    const char *origin = req_header(r, "Origin");
    const char *host = req_header(r, "Host");
    if (origin && (!host || !strstr(origin, "://") || strcmp(strstr(origin, "://") + 3, host) != 0))
        return false;
    const char *site = req_header(r, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return false;
    return true;
}

static bool json_request(struct req *r)
{
    const char *ct = req_header(r, "Content-Type");
    return ct && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* Changes need the session's CSRF token in X-CSRF-Token, and a same-origin
 * Origin header when the browser sends one. */
static bool csrf_ok(struct req *r, const struct session *s)
{
    const char *tok = req_header(r, "X-CSRF-Token");
    if (!tok || strlen(tok) != strlen(s->csrf) || CRYPTO_memcmp(tok, s->csrf, strlen(tok)) != 0)
        return false;
    return same_origin(r);
}

/* ---- read views ---- */

/* Listings show only the repositories the caller may describe. When it may
 * not describe every one (ecr:DescribeRepositories on repository/<any>, what
 * ECR's DescribeRepositories without names needs), out[key] says so in the
 * words of the denial, so that an empty list does not read as "there are
 * none". Decided by the caller's policies alone: it tells nothing of which
 * repositories exist. */
static void list_denied(struct ctx *c, json_t *out, const char *key)
{
    struct perr e;
    if (authz_check_arn(c, "ecr:DescribeRepositories", authz_repo_arn(c, "*"), &e) != PIER_OK)
        json_object_set_new(out, key, json_string(e.msg));
}

static void overview(struct ctx *c, struct req *r)
{
    struct perr e;
    if (authz_check_arn(c, "ecr:DescribePullThroughCacheRules", authz_registry_arn(c), &e) !=
        PIER_OK) {
        fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return;
    }
    struct rule_overview *ro;
    struct repo_pulls *top;
    int nrules, ntop;
    long long cached = 0, oldest = 0;
    if (rules_overview(c, &ro, &nrules, &e) != PIER_OK ||
        repo_most_pulled(c, &top, &ntop, &e) != PIER_OK ||
        repo_cache_usage(c, 0, &cached, &oldest, &e) != PIER_OK) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    json_t *rules = json_array();
    for (int i = 0; i < nrules; i++) {
        const struct rule_overview *o = &ro[i];
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
            " s:I, s:I}",
            "prefix", o->prefix, "upstreamUrl", o->upstream_url, "upstreamRegistry",
            o->upstream_registry, "upstreamPrefix", o->upstream_prefix, "refreshSeconds",
            (json_int_t)o->refresh_seconds, "hasCredentials", o->has_credentials, "hits",
            (json_int_t)o->hits, "misses", (json_int_t)o->misses, "stale", (json_int_t)o->stale,
            "upstreamBytes", (json_int_t)o->upstream_bytes, "servedBytes",
            (json_int_t)o->served_bytes, "upstreamErrors", (json_int_t)o->upstream_errors,
            "repositories", (json_int_t)o->repositories, "bytesCached", (json_int_t)o->bytes_cached,
            "createdAt", (json_int_t)o->created_at);
        json_object_set_new(j, "storageErrors", json_integer(o->storage_errors));
        /* The byte budget: 0 when the rule has none. */
        json_object_set_new(j, "maxBytes", json_integer(o->max_bytes));
        json_object_set_new(j, "bytesReclaimed", json_integer(o->budget_reclaimed));
        json_object_set_new(j, "imagesExpired", json_integer(o->budget_expired));
        json_object_set_new(j, "lastExpiredAt", json_integer(o->budget_last_expired_at));
        json_object_set_new(j, "oldestLastPull", json_integer(o->oldest_last_pull));
        json_object_set_new(j, "negativeSeconds", json_integer(o->negative_seconds));
        json_object_set_new(j, "hasCaBundle", json_boolean(o->has_ca_bundle));
        /* The upstream now, as every node sees it. */
        struct upstream_health h;
        if (health_get(c, o->id, &h, &e) == PIER_OK)
            json_object_set_new(j, "health", health_json(&h));
        /* Mirror mode: the registries the rule mirrors, and the default mirror. */
        json_t *mirrors = json_array();
        for (const char *m = o->mirrors; *m;) {
            size_t n = strcspn(m, ",");
            json_array_append_new(mirrors, json_stringn(m, n));
            m += n + (m[n] == ',');
        }
        json_object_set_new(j, "mirrorRegistries", mirrors);
        json_object_set_new(j, "defaultMirror", json_boolean(o->default_mirror));
        if (o->last_storage_error[0]) {
            json_object_set_new(j, "lastStorageError", json_string(o->last_storage_error));
            json_object_set_new(j, "lastStorageErrorAt", json_integer(o->last_storage_error_at));
        }
        if (o->credential_arn[0])
            json_object_set_new(j, "credentialArn", json_string(o->credential_arn));
        if (o->last_error[0]) {
            json_object_set_new(j, "lastError", json_string(o->last_error));
            json_object_set_new(j, "lastErrorAt", json_integer(o->last_error_at));
        }
        json_array_append_new(rules, j);
    }
    json_t *tops = json_array();
    for (int i = 0; i < ntop; i++)
        if (authz_allowed(c, "ecr:DescribeRepositories", top[i].name))
            json_array_append_new(tops,
                                  json_pack("{s:s, s:I, s:s}", "name", top[i].name, "pulls",
                                            (json_int_t)top[i].pulls, "rule", top[i].rule_prefix));
    /* All rules together, a layer several of them hold counted once, and
     * the registry-wide budget (0: none). */
    json_t *budget = json_pack("{s:I, s:I, s:I}", "bytesCached", (json_int_t)cached, "maxBytes",
                               (json_int_t)c->cfg->cache_max_bytes, "oldestLastPull",
                               (json_int_t)oldest);
    json_t *out = json_pack("{s:o, s:o, s:o}", "rules", rules, "topRepositories", tops,
                            "cacheBudget", budget);
    list_denied(c, out, "topRepositoriesDenied");
    reply(r, 200, out);
}

/* The blob root and garbage collection: what is used, what a sweep would
 * free, the last sweeps. Registry-wide, so a registry-level permission. */
static void storage(struct ctx *c, struct req *r)
{
    struct perr e;
    char q[NAME_MAX_LEN + 1] = "";
    if (req_query(r, "q", q, sizeof q) < 0) {
        fail(r, ECR_EXC_INVALID_PARAMETER, "The search text is too long.");
        return;
    }
    if (authz_check_arn(c, "ecr:DescribeRegistry", authz_registry_arn(c), &e) != PIER_OK) {
        fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return;
    }
    struct repo_counts counts;
    long long rblobs, rbytes;
    struct gc_run *runs;
    int n;
    if (repo_counts(c, &counts, &e) != PIER_OK ||
        repo_gc_reclaimable(c, c->cfg->gc_grace, &rblobs, &rbytes, &e) != PIER_OK ||
        gc_history(c, 20, &runs, &n, &e) != PIER_OK) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    json_t *out = json_pack("{s:I, s:I, s:I, s:I, s:I, s:i, s:i}", "blobs",
                            (json_int_t)counts.blobs, "blobBytes", (json_int_t)counts.blob_bytes,
                            "manifests", (json_int_t)counts.manifests, "reclaimableBlobs",
                            (json_int_t)rblobs, "reclaimableBytes", (json_int_t)rbytes, "gcGrace",
                            c->cfg->gc_grace, "gcInterval", c->cfg->gc_interval);
    struct statvfs vfs;
    if (statvfs(c->bs->root, &vfs) == 0) {
        json_object_set_new(out, "diskBytes",
                            json_integer((json_int_t)vfs.f_blocks * (json_int_t)vfs.f_frsize));
        json_object_set_new(out, "diskFreeBytes",
                            json_integer((json_int_t)vfs.f_bavail * (json_int_t)vfs.f_frsize));
    }
    json_t *sweeps = json_array();
    for (int i = 0; i < n; i++) {
        const struct gc_run *g = &runs[i];
        json_t *j = json_pack("{s:I, s:I, s:s, s:b, s:i, s:I, s:I, s:I, s:I, s:I}", "startedAt",
                              (json_int_t)g->started_at, "durationMs", (json_int_t)g->seconds_ms,
                              "node", g->node, "dryRun", g->dry_run, "grace", g->grace, "links",
                              (json_int_t)g->links, "blobs", (json_int_t)g->blobs, "bytes",
                              (json_int_t)g->bytes, "busy", (json_int_t)g->busy, "finished",
                              (json_int_t)g->finished);
        if (g->error)
            json_object_set_new(j, "error", json_string(g->error));
        json_array_append_new(sweeps, j);
    }
    json_object_set_new(out, "sweeps", sweeps);
    if (console_storage_usage(c, q, out, &e) != PIER_OK) {
        json_decref(out);
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    reply(r, 200, out);
}

static void repositories(struct ctx *c, struct req *r)
{
    char q[NAME_MAX_LEN + 1] = "";
    if (req_query(r, "q", q, sizeof q) < 0) {
        fail(r, ECR_EXC_INVALID_PARAMETER, "The search text is too long.");
        return;
    }
    struct perr e;
    struct repo_summary *found;
    int n;
    if (repo_search(c, q, &found, &n, &e) != PIER_OK) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        const struct repo_summary *s = &found[i];
        if (!authz_allowed(c, "ecr:DescribeRepositories", s->name))
            continue;
        json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I}", "name", s->name, "cache", s->cache,
                              "createdAt", (json_int_t)s->created_at, "images",
                              (json_int_t)s->images, "tags", (json_int_t)s->tags, "pulls",
                              (json_int_t)s->pulls);
        if (s->rule_prefix[0])
            json_object_set_new(j, "rule", json_string(s->rule_prefix));
        json_array_append_new(list, j);
    }
    json_t *out = json_pack("{s:o}", "repositories", list);
    list_denied(c, out, "listDenied");
    reply(r, 200, out);
}

/* GET activity?principal=&repository=&action=&since=&limit=&before=: the
 * audit trail, newest first; needs ecr:LookupAuditEvents on the registry.
 * before is the "cursor" of the last event of the previous page. */
static void activity(struct ctx *c, struct req *r)
{
    struct perr e;
    if (authz_check_arn(c, "ecr:LookupAuditEvents", authz_registry_arn(c), &e) != PIER_OK) {
        fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return;
    }
    char principal[AUDIT_FIELD_MAX + 1], repo[NAME_MAX_LEN + 1], action[128], since[64], limit[16],
        before[48];
    struct {
        const char *key;
        char *buf;
        size_t size;
    } params[] = {{"principal", principal, sizeof principal},
                  {"repository", repo, sizeof repo},
                  {"action", action, sizeof action},
                  {"since", since, sizeof since},
                  {"limit", limit, sizeof limit},
                  {"before", before, sizeof before}};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        int have = req_query(r, params[i].key, params[i].buf, params[i].size);
        if (have < 0) {
            fail(r, ECR_EXC_INVALID_PARAMETER,
                 arena_printf(r->a, "The %s parameter is malformed or too long.", params[i].key));
            return;
        }
        if (have == 0)
            params[i].buf[0] = '\0';
    }
    struct audit_filter f = {
        .principal = principal, .repository = repo, .action = action, .limit = 100};
    long long n;
    if (since[0] && !audit_parse_since(since, (long long)time(NULL), &f.since)) {
        fail(r, ECR_EXC_INVALID_PARAMETER,
             "since is unix seconds, an age such as 24h or 7d, or a date YYYY-MM-DD[THH:MM:SSZ].");
        return;
    }
    if (before[0]) {
        char *dot = strchr(before, '.');
        if (dot)
            *dot = '\0';
        if (!dot || !grammar_uint(before, LLONG_MAX, &f.before_ms) || f.before_ms < 1 ||
            !grammar_uint(dot + 1, LLONG_MAX, &f.before_id)) {
            fail(r, ECR_EXC_INVALID_PARAMETER, "before is the cursor of an event (<ms>.<id>).");
            return;
        }
    }
    if (limit[0]) {
        if (!grammar_uint(limit, AUDIT_QUERY_MAX, &n) || n < 1) {
            fail(r, ECR_EXC_INVALID_PARAMETER,
                 arena_printf(r->a, "limit is a number from 1 to %d.", AUDIT_QUERY_MAX));
            return;
        }
        f.limit = (int)n;
    }
    json_t *events;
    if (audit_query(c, &f, &events, &e) != PIER_OK) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    reply(r, 200, json_pack("{s:o}", "events", events));
}

/* Bytes of an image: its config and layers as its manifest declares them. */
static long long image_bytes(json_t *m)
{
    long long size = json_integer_value(json_object_get(json_object_get(m, "config"), "size"));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(m, "layers"), i, d)
        size = size_add(size, json_integer_value(json_object_get(d, "size")));
    return size;
}

/* Platforms and size of a stored manifest; an index counts the images it
 * lists that are stored in this repository (children are fetched on demand
 * in cache repositories, so some may not be there yet). */
static void describe_manifest(struct ctx *c, const char *repo, const char *body, size_t len,
                              json_t *out)
{
    json_t *m = json_loadb(body, len, 0, NULL);
    json_t *plats = json_array();
    long long size = image_bytes(m);
    json_t *children = json_object_get(m, "manifests");
    size_t i;
    json_t *d;
    json_array_foreach(children, i, d)
    {
        json_t *p = json_object_get(d, "platform");
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *arch = json_string_value(json_object_get(p, "architecture"));
        const char *var = json_string_value(json_object_get(p, "variant"));
        if (os && arch)
            json_array_append_new(
                plats, json_sprintf("%s/%s%s%s", os, arch, var ? "/" : "", var ? var : ""));
        const char *digest = json_string_value(json_object_get(d, "digest"));
        struct stored_manifest sm;
        struct perr e;
        if (digest && grammar_digest(digest, NULL, &e) == PIER_OK &&
            repo_manifest_get(c, repo, digest, true, &sm, &e) == PIER_OK) {
            json_t *child = json_loadb(sm.body, (size_t)sm.size, 0, NULL);
            size = size_add(size, image_bytes(child));
            json_decref(child);
        }
    }
    json_object_set_new(out, "platforms", plats);
    json_object_set_new(out, "sizeBytes", json_integer(size ? size : (long long)len));
    json_decref(m);
}

static void repository(struct ctx *c, struct req *r)
{
    char name[NAME_MAX_LEN + 2];
    struct perr e;
    if (req_query(r, "name", name, sizeof name) != 1 || grammar_name(name, &e) != PIER_OK) {
        fail(r, ECR_EXC_INVALID_PARAMETER, "name must be a repository name");
        return;
    }
    if (authz_check(c, "ecr:DescribeImages", name, &e) != PIER_OK) {
        fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return;
    }
    /* A made-up name is not an empty repository (as ECR's DescribeImages). */
    bool exists = false;
    if (repo_exists_named(c, name, &exists, &e) != PIER_OK) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    if (!exists) {
        fail(r, ECR_EXC_REPOSITORY_NOT_FOUND,
             arena_printf(r->a, "The repository with name '%s' does not exist in this registry.",
                          name));
        return;
    }
    struct repo_tag_detail *found;
    int n;
    if (repo_tag_details(c, name, &found, &n, &e) != PIER_OK) {
        fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    json_t *tags = json_array();
    for (int i = 0; i < n; i++) {
        const struct repo_tag_detail *d = &found[i];
        json_t *t = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "tag", d->tag, "digest",
                              d->digest, "mediaType", d->media_type, "manifestBytes",
                              (json_int_t)d->size, "pushedAt", (json_int_t)d->pushed_at,
                              "lastPulledAt", (json_int_t)d->last_pulled_at, "lastUpstreamCheck",
                              (json_int_t)d->checked_at, "stale", d->stale);
        if (d->body)
            describe_manifest(c, name, d->body, d->body_len, t);
        json_array_append_new(tags, t);
    }
    reply(r, 200, json_pack("{s:s, s:o}", "name", name, "tags", tags));
}

/* ---- trying an upstream before a rule is saved ---- */

/* Does an upstream accept Pier with these settings? Nothing is stored: the
 * rule exists only for this request. Input: upstreamRegistryUrl, and
 * optionally username + accessToken, credentialArn, pierCaBundle, and
 * ecrRepositoryPrefix (an existing rule: its credentials and CA bundle are
 * used unless the request gives others; pierRemoveCredentials tries without).
 * Needs what saving would need: ecr:CreatePullThroughCacheRule for a new
 * rule, ecr:UpdatePullThroughCacheRule for an existing one, and
 * secretsmanager:GetSecretValue on a secret it names. */
static void test_upstream(struct ctx *c, struct req *r, json_t *in)
{
    struct perr e;
    const char *prefix = json_string_value(json_object_get(in, "ecrRepositoryPrefix"));
    const char *url = json_string_value(json_object_get(in, "upstreamRegistryUrl"));
    const char *user = json_string_value(json_object_get(in, "username"));
    const char *token = json_string_value(json_object_get(in, "accessToken"));
    const char *arn = json_string_value(json_object_get(in, "credentialArn"));
    const char *ca = json_string_value(json_object_get(in, "pierCaBundle"));
    bool no_creds = json_is_true(json_object_get(in, "pierRemoveCredentials"));
    const char *action = prefix ? "ecr:UpdatePullThroughCacheRule"
                                : "ecr:CreatePullThroughCacheRule";
    if (authz_check_arn(c, action, authz_registry_arn(c), &e) != PIER_OK) {
        fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return;
    }
    struct cache_rule rule;
    if (prefix) {
        if (rules_get(c, prefix, &rule, &e) != PIER_OK) {
            fail(r,
                 e.code == PIER_E_NAME_UNKNOWN ? ECR_EXC_PTC_RULE_NOT_FOUND
                                               : ECR_EXC_CONSOLE_UNAVAILABLE,
                 e.msg);
            return;
        }
        /* The id finds the stored credentials; upstream_check() writes no
         * token, and only ValidatePullThroughCacheRule notes the health. */
    } else {
        rule_defaults(&rule);
    }
    if (url) {
        char norm[RULE_URL_MAX];
        if (strlen(url) >= RULE_URL_MAX || rule_normalize_url(url, norm, &e) != PIER_OK) {
            fail(r, ECR_EXC_INVALID_PARAMETER,
                 strlen(url) >= RULE_URL_MAX ? "upstreamRegistryUrl is too long" : e.msg);
            return;
        }
        snprintf(rule.upstream_url, sizeof rule.upstream_url, "%s", norm);
    } else if (!prefix) {
        fail(r, ECR_EXC_INVALID_PARAMETER, "upstreamRegistryUrl is required");
        return;
    }
    if ((user != NULL) != (token != NULL) ||
        (user && (strlen(user) > 1000 || strlen(token) > 8000))) {
        fail(r, ECR_EXC_INVALID_PARAMETER, "Give both username and accessToken (or neither).");
        return;
    }
    if (user || arn || no_creds) {
        rule.has_credentials = false;
        rule.credential_arn[0] = '\0';
    }
    if (user) {
        rule.check_user = user;
        rule.check_secret = token;
    } else if (arn) {
        if (strlen(arn) >= sizeof rule.credential_arn ||
            authz_check_arn(c, "secretsmanager:GetSecretValue", arn, &e) != PIER_OK) {
            fail(r, ECR_EXC_ACCESS_DENIED,
                 strlen(arn) >= sizeof rule.credential_arn ? "credentialArn is too long" : e.msg);
            return;
        }
        snprintf(rule.credential_arn, sizeof rule.credential_arn, "%s", arn);
    }
    if (ca) {
        if (ca[0] && (strlen(ca) > RULE_CA_MAX || !strstr(ca, "-----BEGIN CERTIFICATE-----"))) {
            fail(r, ECR_EXC_INVALID_PARAMETER,
                 "pierCaBundle must be PEM certificates, at most 256 KiB");
            return;
        }
        rule.ca_bundle = ca[0] ? ca : NULL;
    }
    struct upstream_resp resp;
    bool ok = upstream_check(c, &rule, &resp, &e) == PIER_OK;
    json_t *out = json_pack("{s:s}", "upstreamRegistryUrl", rule.upstream_url);
    health_validation_json(c->a, out, &resp, ok, upstream_rule_has_credentials(&rule));
    struct audit_event ev = {
        .action = "console:TestUpstream",
        .resource = authz_registry_arn(c),
        .target = rule.upstream_url,
        .result = ok ? NULL : json_string_value(json_object_get(out, "pierFailureClass"))};
    audit_record(c, &ev);
    reply(r, 200, out);
}

/* ---- entry ---- */

static void decref(void *j)
{
    json_decref(j);
}

void console_handle(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    const char *what = r->path + strlen("/console/api/");
    bool post = strcmp(r->method, "POST") == 0;
    char *body = NULL;
    size_t len = 0;
    struct perr e;
    json_t *in = NULL;
    if (post) {
        if (req_read_body(r, BODY_MAX, &body, &len, &e) != PIER_OK) {
            fail(r, ECR_EXC_VALIDATION, e.msg);
            return;
        }
        in = len ? json_loadb(body, len, 0, NULL) : json_object();
        if (!json_is_object(in)) {
            json_decref(in);
            fail(r, ECR_EXC_SERIALIZATION, "The request body is not a JSON object.");
            return;
        }
        arena_defer(r->a, decref, in);
    } else {
        req_refuse_body(r);
    }
    if (post && strcmp(what, "login") == 0) {
        /* Login CSRF: a foreign page can post text/plain (a "simple" request)
         * but not application/json, and the browser says where it came from. */
        if (!json_request(r) || !same_origin(r)) {
            log_warn("console: sign-in refused from %s (not a same-origin JSON request)",
                     r->remote_addr);
            fail(r, ECR_EXC_INVALID_ORIGIN, "Sign in from the console page itself.");
            return;
        }
        login(c, ac, r, in);
        return;
    }
    struct session s;
    if (!load_session(c, r, &s)) {
        fail(r, ECR_EXC_SESSION_EXPIRED, "Sign in first (or again: the session has ended).");
        return;
    }
    c->who = arena_memdup(c->a, &s.id, sizeof s.id); /* outlives this function */
    if (!post && strcmp(what, "session") == 0) {
        session_json(r, &s);
        return;
    }
    if (post && !csrf_ok(r, &s)) {
        log_warn("console: change without a valid CSRF token from %s for %s", r->remote_addr,
                 s.id.p.arn);
        fail(r, ECR_EXC_INVALID_CSRF_TOKEN,
             "This change did not come from the console page; reload it and try again.");
        return;
    }
    if (post && strcmp(what, "logout") == 0) {
        struct db_param p[1] = {{.value = (const char *)s.hash, .length = 32, .binary = true}};
        db_execp(c->db, c->a, &st_delete, p, false, &e);
        resp_header(r, "Set-Cookie",
                    COOKIE "=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0%s",
                    cookie_secure(c, r) ? "; Secure" : "");
        struct audit_event ev = {.action = "console:SignOut", .resource = authz_registry_arn(c)};
        audit_record(c, &ev);
        reply(r, 200, json_pack("{s:b}", "signedOut", 1));
        return;
    }
    /* The control plane's operations: ecr/<Op>, secretsmanager/<Op>, and
     * iam/<Op> (users, access keys, identity policies: ops_iam.c). */
    const char *slash = strchr(what, '/');
    size_t svclen = slash ? (size_t)(slash - what) : 0;
    const char *service = svclen == 3 && strncmp(what, "ecr", 3) == 0 ? "ecr"
                          : svclen == 14 && strncmp(what, "secretsmanager", 14) == 0
                              ? "secretsmanager"
                          : svclen == 3 && strncmp(what, "iam", 3) == 0 ? "iam"
                                                                        : NULL;
    if (post && service) {
        const char *op = slash + 1;
        json_t *out = NULL;
        enum ecr_exc exc;
        char msg[600];
        if (ecrapi_invoke(c, r, service, op, in, &out, &exc, msg, sizeof msg))
            reply(r, 200, out);
        else
            fail(r, exc, msg);
        return;
    }
    if (post && strcmp(what, "rules/test") == 0) {
        test_upstream(c, r, in);
        return;
    }
    if (!post && strcmp(what, "overview") == 0) {
        overview(c, r);
        return;
    }
    if (!post && strcmp(what, "storage") == 0) {
        storage(c, r);
        return;
    }
    if (!post && strcmp(what, "repositories") == 0) {
        repositories(c, r);
        return;
    }
    if (!post && strcmp(what, "activity") == 0) {
        activity(c, r);
        return;
    }
    if (!post && strcmp(what, "repository") == 0) {
        repository(c, r);
        return;
    }
    if (!post && strcmp(what, "policy-actions") == 0) {
        /* The policy engine's list: the editor warns about actions outside it. */
        json_t *list = json_array();
        for (size_t i = 0; i < policy_actions_count; i++)
            json_array_append_new(list, json_string(policy_actions[i]));
        reply(r, 200, json_pack("{s:o}", "actions", list));
        return;
    }
    if (!post && strcmp(what, "image") == 0) {
        console_image(c, r);
        return;
    }
    if (post && strcmp(what, "image/check") == 0) {
        console_image_check(c, r, in);
        return;
    }
    if (post && strcmp(what, "image/evict") == 0) {
        console_image_evict(c, r, in);
        return;
    }
    fail(r, ECR_EXC_CONSOLE_NOT_FOUND, "No such console endpoint.");
}
