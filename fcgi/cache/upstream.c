/* upstream: libcurl requests to upstream registries with the auth dance. */
#include "cache/upstream.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "cache/health.h"
#include "db/db.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "lib/netpolicy.h"
#include "lib/secretbox.h"
#include "store/manifest.h"
#include <arpa/inet.h>
#include <netinet/in.h>

#define CTX_TOKEN "upstream_tokens.token"
#define ERROR_BODY_MAX 4096
#define TOKEN_BODY_MAX (64 * 1024)
/* An Authorization value: "Basic " and the base64 of "user:secret" (the rule
 * credentials' limits), or "Bearer " and a token (upstream_parse_token keeps
 * them under 8000 bytes). */
#define AUTH_VALUE_MAX 9400

const char UPSTREAM_MANIFEST_ACCEPT[] = MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST
                                       ", " MT_DOCKER_MANIFEST;

struct upstream {
    CURL *curl;
    struct netpolicy policy;   /* where connections may go (lib/netpolicy.h) */
    void (*tick)(void *);      /* upstream_do's caller, called while transfers wait */
    void *tick_arg;
};

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct upstream *u = arg;
    u->tick(u->tick_arg);
    return 0;
}

static const struct db_stmt st_token_get = {
    "up_token_get",
    "SELECT token_enc, scope = 'basic' FROM upstream_tokens WHERE rule_id = $1::bigint"
    " AND scope IN ($2, 'basic') AND expires_at > now() + interval '5 seconds'"
    " ORDER BY scope = 'basic' LIMIT 1", 2};
static const struct db_stmt st_token_put = {
    "up_token_put",
    "INSERT INTO upstream_tokens(rule_id, scope, token_enc, expires_at)"
    " VALUES ($1::bigint, $2, $3::bytea, now() + make_interval(secs => $4::int))"
    " ON CONFLICT (rule_id, scope) DO UPDATE SET token_enc = EXCLUDED.token_enc,"
    " expires_at = EXCLUDED.expires_at", 4};
static const struct db_stmt st_token_drop = {
    "up_token_drop", "DELETE FROM upstream_tokens WHERE rule_id = $1::bigint AND scope = $2", 2};

struct upstream *upstream_new(const struct config *cfg)
{
    static bool global;
    if (!global) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global = true;
    }
    struct upstream *u = xcalloc(1, sizeof *u);
    u->curl = curl_easy_init();
    struct perr e;
    /* config_validate() parsed the list already; a failure here leaves the
     * allow-list empty, which is the strict side. */
    if (netpolicy_parse(cfg->upstream_allow_networks, &u->policy, &e) != PIER_OK)
        log_error("%s", e.msg);
    return u;
}

void upstream_free(struct upstream *u)
{
    if (!u)
        return;
    curl_easy_cleanup(u->curl);
    free(u);
}

_Static_assert(UPF_NOT_REGISTRY < METRICS_UPSTREAM_CLASSES, "every failure class has a counter");

const char *upstream_failure_name(enum up_failure f)
{
    static const char *const names[] = {
        "none",         "unreachable",           "timeout",   "server error",
        "rate limited", "authentication failed", "not found", "protocol error",
        "aborted",      "refused by Pier",       "tls error", "not a registry"};
    return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "unknown";
}

bool upstream_rule_has_credentials(const struct cache_rule *r)
{
    return r->has_credentials || r->credential_arn[0] || r->check_user;
}

const char *upstream_failure_class(enum up_failure f)
{
    switch (f) {
    case UPF_NONE:
        return "ok";
    case UPF_UNREACHABLE:
    case UPF_TIMEOUT:
        return "unreachable";
    case UPF_TLS:
        return "tls";
    case UPF_AUTH:
        return "auth-refused";
    case UPF_NOT_REGISTRY:
        return "not-a-registry";
    case UPF_RATE_LIMITED:
        return "rate-limited";
    case UPF_SERVER:
        return "server-error";
    case UPF_PROTOCOL:
        return "protocol-error";
    case UPF_FORBIDDEN:
        return "refused-by-pier";
    case UPF_NOT_FOUND:
    case UPF_ABORTED:
        return NULL;
    }
    return NULL;
}

/* ---- WWW-Authenticate ---- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    return p;
}

bool upstream_parse_challenge(const char *v, struct challenge *out)
{
    memset(out, 0, sizeof *out);
    const char *p = skip_ws(v);
    size_t n = 0;
    while (p[n] && isalpha((unsigned char)p[n]))
        n++;
    if (n == 0 || n >= sizeof out->scheme)
        return false;
    memcpy(out->scheme, p, n);
    p += n;
    while (*p) {
        p = skip_ws(p);
        if (!*p)
            break;
        const char *key = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
            p++;
        size_t klen = (size_t)(p - key);
        while (*p == ' ')
            p++;
        if (klen == 0 || *p != '=')
            return false;
        p++;
        while (*p == ' ')
            p++;
        char val[512];
        size_t vlen = 0;
        bool cut = false; /* longer than val: refused below if it is one we keep */
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (vlen < sizeof val - 1)
                    val[vlen++] = *p;
                else
                    cut = true;
                p++;
            }
            if (*p != '"')
                return false;
            p++;
        } else {
            while (*p && *p != ',' && *p != ' ') {
                if (vlen < sizeof val - 1)
                    val[vlen++] = *p;
                else
                    cut = true;
                p++;
            }
        }
        val[vlen] = '\0';
        char *dst = NULL;
        size_t dsz = 0;
        if (klen == 5 && !strncasecmp(key, "realm", 5)) {
            dst = out->realm;
            dsz = sizeof out->realm;
        } else if (klen == 7 && !strncasecmp(key, "service", 7)) {
            dst = out->service;
            dsz = sizeof out->service;
        } else if (klen == 5 && !strncasecmp(key, "scope", 5)) {
            dst = out->scope;
            dsz = sizeof out->scope;
        }
        if (dst) {
            if (cut || vlen >= dsz)
                return false;
            memcpy(dst, val, vlen + 1);
        }
    }
    return true;
}

/* ---- one HTTP exchange ---- */

struct exchange {
    struct arena *a;
    const struct netpolicy *policy;
    char refused[160];    /* set when the address policy refused a connection */
    const struct upstream_req *q;
    struct upstream_resp *resp;
    char www_auth[1024];
    bool headers_done;    /* on_headers was called for the final response */
    struct buf body;      /* a 2xx body, when there is no on_data; capped at max_body */
    bool oversize;        /* the body passed its cap */
    const char *overlong; /* a header that does not fit where it goes ("Content-Type") */
    bool aborted;
};

/* The exchange for one upstream request; bodies of 2xx answers are kept up
 * to max bytes in the request's arena. */
static void exchange_init(struct exchange *x, struct ctx *c, const struct upstream_req *q,
                          struct upstream_resp *resp, size_t max)
{
    memset(x, 0, sizeof *x);
    x->a = c->a;
    x->q = q;
    x->resp = resp;
    buf_init_arena(&x->body, c->a, max);
}

/* Copy a header value into a field of its size; false when it does not fit
 * (a cut-off media type or challenge would be read as another one). */
static bool header_value(char *dst, size_t dsz, const char *v, size_t vlen)
{
    if (vlen >= dsz)
        return false;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
    return true;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *arg)
{
    struct exchange *x = arg;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100): forget the previous one. */
        x->resp->digest[0] = '\0';
        x->resp->content_type[0] = '\0';
        x->resp->content_length = -1;
        x->www_auth[0] = '\0';
        x->resp->retry_after = 0;
        buf_reset(&x->body);
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon)
        return n;
    size_t klen = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (klen == 21 && !strncasecmp(data, "Docker-Content-Digest", 21)) {
        /* Not a digest (whatever its length): as if not sent. */
        char val[DIGEST_STR_MAX];
        if (header_value(val, sizeof val, v, vlen) && grammar_digest(val, NULL, NULL) == PIER_OK)
            memcpy(x->resp->digest, val, sizeof val);
    } else if (klen == 12 && !strncasecmp(data, "Content-Type", 12)) {
        if (!header_value(x->resp->content_type, sizeof x->resp->content_type, v, vlen))
            x->overlong = "Content-Type";
    } else if (klen == 14 && !strncasecmp(data, "Content-Length", 14)) {
        char val[32];
        long long cl;
        if (header_value(val, sizeof val, v, vlen) && grammar_uint(val, 1LL << 50, &cl))
            x->resp->content_length = cl;
    } else if (klen == 11 && !strncasecmp(data, "Retry-After", 11)) {
        /* Seconds, or an HTTP date; at most a day (a longer wait is a day). */
        char val[64];
        long long secs;
        if (header_value(val, sizeof val, v, vlen)) {
            if (grammar_uint(val, 86400LL * 365, &secs)) {
                x->resp->retry_after = (long)(secs > 86400 ? 86400 : secs);
            } else {
                time_t at = curl_getdate(val, NULL);
                long long left = at > 0 ? (long long)at - (long long)time(NULL) : 0;
                x->resp->retry_after = left <= 0 ? 0 : (long)(left > 86400 ? 86400 : left);
            }
        }
    } else if (klen == 16 && !strncasecmp(data, "WWW-Authenticate", 16)) {
        if (!header_value(x->www_auth, sizeof x->www_auth, v, vlen))
            x->overlong = "WWW-Authenticate";
    }
    return x->overlong ? 0 : n; /* 0 stops the transfer */
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct exchange *x = arg;
    size_t n = size * nmemb;
    bool ok = x->resp->status >= 200 && x->resp->status < 300;
    x->resp->bytes += (long long)n;
    if (ok && x->q->on_data) {
        if (!x->headers_done) {
            x->headers_done = true;
            if (x->q->on_headers && x->q->on_headers(x->q->arg, x->resp) != 0) {
                x->aborted = true;
                return 0;
            }
        }
        if (x->q->on_data(x->q->arg, data, n) != 0) {
            x->aborted = true;
            return 0;
        }
        return n;
    }
    if (!ok)
        return n; /* error bodies are not kept: the status says what happened */
    long long cl = x->resp->content_length;
    if (buf_len(&x->body) == 0 && cl > 0 && (unsigned long long)cl <= buf_cap(&x->body))
        (void)buf_reserve(&x->body, (size_t)cl); /* a hint: cannot pass the cap */
    if (buf_add(&x->body, data, n) != PIER_OK) {
        x->oversize = true;
        return 0;
    }
    return n;
}

/* Status line callback replacement: libcurl reports the status after the
 * headers, so we read it with CURLINFO_RESPONSE_CODE in a header hook. */
static size_t on_header_status(char *data, size_t size, size_t nitems, void *arg)
{
    struct exchange *x = arg;
    size_t n = size * nitems;
    if (n >= 12 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', n);
        if (sp)
            x->resp->status = strtol(sp + 1, NULL, 10);
    }
    return on_header(data, size, nitems, arg);
}

/* Messages for clients name what was asked and what went wrong, never the
 * upstream's URL or any of its body: those go to the log only. */
static void describe(struct upstream_resp *resp, const char *method, const char *what_asked,
                     const char *what)
{
    snprintf(resp->message, sizeof resp->message, "%s %s: %s", method, what_asked, what);
}

/* Every connection libcurl opens (upstream, redirect target, token realm,
 * proxy) passes the address policy first. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    struct exchange *x = arg;
    const char *why = NULL;
    if (!netpolicy_allows(x->policy, &a->addr, &why)) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (a->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, host, sizeof host);
        else if (a->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, host, sizeof host);
        /* The class goes to the client, the address only to the log. */
        snprintf(x->refused, sizeof x->refused, "%s address", why ? why : "forbidden");
        log_warn("upstream connection to %s refused: %s address (not in upstream_allow_networks)",
                 host, why ? why : "forbidden");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static bool is_https(const char *url)
{
    return strncasecmp(url, "https://", 8) == 0;
}

/* host of an http(s) URL, lower case, without port or brackets. */
static void url_host(const char *url, char *out, size_t outsz)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n;
    if (*p == '[') {
        p++;
        n = strcspn(p, "]");
    } else {
        n = strcspn(p, ":/?#");
    }
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n >= outsz)
        n = outsz - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)p[i]);
    out[n] = '\0';
}

/* The last two labels of a host name ("auth.docker.io" -> "docker.io"). */
static const char *site_of(const char *host)
{
    const char *last = strrchr(host, '.');
    if (!last || last == host)
        return host;
    const char *p = last - 1;
    while (p > host && *p != '.')
        p--;
    return *p == '.' ? p + 1 : host;
}

/* May the rule's credentials go to realm? Only to the upstream's own site
 * (Docker Hub's realm auth.docker.io serves registry-1.docker.io; GHCR, Quay,
 * ECR Public use their own host), and not over plain http unless allowed. */
static bool realm_may_get_credentials(struct ctx *c, const char *upstream_url, const char *realm)
{
    if (!is_https(realm) && !c->cfg->upstream_allow_http_credentials)
        return false;
    char a[256], b[256];
    url_host(upstream_url, a, sizeof a);
    url_host(realm, b, sizeof b);
    if (strcmp(a, b) == 0)
        return true;
    bool ip_a, ip_b;
    netpolicy_allows_text(NULL, a, &ip_a, NULL);
    netpolicy_allows_text(NULL, b, &ip_b, NULL);
    if (ip_a || ip_b)
        return false;
    return strcmp(site_of(a), site_of(b)) == 0 && strchr(site_of(a), '.');
}

/* One request with a given Authorization value (may be NULL). Returns the
 * libcurl code; resp and x describe the answer. */
static CURLcode perform(struct ctx *c, struct upstream *u, const char *method, const char *url,
                        const char *accept, const char *authorization, const struct cache_rule *rule,
                        bool streaming, struct exchange *x, long total_timeout_ms)
{
    CURL *h = u->curl;
    curl_easy_reset(h);
    x->policy = &u->policy;
    x->refused[0] = '\0';
    x->overlong = NULL;
    struct curl_slist *hdrs = NULL;
    char line[AUTH_VALUE_MAX + 16];
    if (accept) {
        if (snprintf(line, sizeof line, "Accept: %s", accept) >= (int)sizeof line)
            x->overlong = "Accept";
        else
            hdrs = curl_slist_append(hdrs, line);
    }
    if (authorization && !x->overlong) {
        /* libcurl does not send a custom Authorization header to another host
         * after a redirect (CDN, object storage), which is what we want. */
        if (snprintf(line, sizeof line, "Authorization: %s", authorization) >= (int)sizeof line)
            x->overlong = "Authorization";
        else
            hdrs = curl_slist_append(hdrs, line);
    }
    if (x->overlong) {
        log_error("upstream %s %s: the %s header to send is over %zu bytes", method, url,
                  x->overlong, sizeof line);
        OPENSSL_cleanse(line, sizeof line);
        curl_slist_free_all(hdrs);
        return CURLE_BAD_FUNCTION_ARGUMENT;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pier/0.1");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A redirect never downgrades https to plain http. */
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, is_https(url) ? "https" : "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg->upstream_connect_timeout * 1000);
    /* Bodies must keep flowing: a blob download slower than upstream_min_rate
     * on average over upstream_idle_timeout seconds is given up (a trickling
     * upstream would otherwise hold a worker for as long as it likes). */
    long min_rate = streaming ? (long)c->cfg->upstream_min_rate : 1L;
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, min_rate);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->cfg->upstream_idle_timeout);
    if (!streaming && total_timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_timeout_ms);
    if (streaming && x->q && x->q->deadline_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, x->q->deadline_ms);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    if (u->tick) {
        /* libcurl calls this at least once a second, also while connecting
         * or while the upstream sends nothing. */
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, u);
    }
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header_status);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (rule && rule->ca_bundle) {
        struct curl_blob blob = {.data = (void *)rule->ca_bundle, .len = strlen(rule->ca_bundle),
                                 .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    x->resp->status = 0;
    x->resp->content_length = -1;
    x->resp->bytes = 0;
    buf_reset(&x->body);
    x->headers_done = false;
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (code)
        x->resp->status = code;
    if (rc != CURLE_OK) {
        char *last = NULL;
        curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &last);
        log_warn("upstream %s %s%s%s: %s%s%s", method, url, last && strcmp(last, url) ? " -> " : "",
                 last && strcmp(last, url) ? last : "", curl_easy_strerror(rc),
                 x->refused[0] ? "; refused " : "", x->refused);
    }
    curl_slist_free_all(hdrs);
    OPENSSL_cleanse(line, sizeof line);
    return rc;
}

static enum up_failure classify_curl(const struct exchange *x, CURLcode rc)
{
    if (x->refused[0])
        return UPF_FORBIDDEN;
    if (x->overlong)
        return UPF_PROTOCOL;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return UPF_TIMEOUT;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK: return UPF_ABORTED;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_TOO_MANY_REDIRECTS: return UPF_FORBIDDEN;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return UPF_UNREACHABLE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
        return UPF_TLS;
    default: return UPF_PROTOCOL;
    }
}

/* The client-facing reason of a failed transfer. */
static const char *curl_reason(const struct exchange *x, CURLcode rc)
{
    if (x->refused[0])
        return arena_printf(x->a, "Pier does not connect to a %s (see upstream_allow_networks)",
                            x->refused);
    if (x->overlong)
        return arena_printf(x->a, "the %s header is too long", x->overlong);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL)
        return "a redirect to another protocol (https never downgrades to http) was refused";
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return "timed out (or slower than the minimum transfer rate)";
    return curl_easy_strerror(rc);
}

/* ---- credentials and tokens ---- */

static bool basic_header(const char *user, const char *secret, char *out, size_t outsz)
{
    char plain[9300];
    int n = snprintf(plain, sizeof plain, "%s:%s", user, secret);
    if (n < 0 || (size_t)n >= sizeof plain || outsz < 7 + 4 * ((size_t)n / 3 + 1) + 1) {
        OPENSSL_cleanse(plain, sizeof plain);
        return false;
    }
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, n);
    OPENSSL_cleanse(plain, sizeof plain);
    return true;
}

/* The Authorization value cached for scope, else the knowledge that Basic
 * works (*basic set), in one round trip; NULL when neither is cached. */
static const char *cached_auth(struct ctx *c, const struct cache_rule *rule, const char *scope,
                               bool *basic)
{
    struct perr e;
    struct db_param p[2] = {DB_ARG(rule->id), DB_ARG(scope)};
    *basic = false;
    PGresult *res = db_execp(c->db, c->a, &st_token_get, p, true, &e);
    if (!res || PQntuples(res) == 0)
        return NULL;
    *basic = PQgetvalue(res, 0, 1)[0] == 't';
    size_t len = (size_t)PQgetlength(res, 0, 0);
    char *plain = arena_alloc(c->a, len + 1);
    if (secretbox_open(c->sb, CTX_TOKEN, (const unsigned char *)PQgetvalue(res, 0, 0), len, plain,
                       len + 1, NULL, &e) != PIER_OK)
        return NULL;
    return plain;
}

static void store_auth(struct ctx *c, const struct cache_rule *rule, const char *scope,
                       const char *auth, int seconds)
{
    struct perr e;
    struct db_param p[4] = {DB_ARG(rule->id), DB_ARG(scope), {.binary = true}, DB_ARG(seconds)};
    if (secretbox_seal_arena(c->sb, c->a, CTX_TOKEN, auth, &p[2].value, &p[2].length, &e) != PIER_OK)
        return; /* no server key: every request does the dance, still correct */
    db_execp(c->db, c->a, &st_token_put, p, false, &e);
}

static void drop_auth(struct ctx *c, const struct cache_rule *rule, const char *scope)
{
    struct perr e;
    db_exec(c->db, c->a, &st_token_drop, &e, rule->id, scope);
}

const char *upstream_parse_token(struct arena *a, const char *body, size_t len, int *lifetime)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (!tok || !*tok)
        tok = json_string_value(json_object_get(j, "access_token"));
    json_t *exp = json_object_get(j, "expires_in");
    json_int_t secs = json_is_integer(exp) ? json_integer_value(exp) : 0;
    /* Clamp before narrowing: a huge expires_in must not wrap to a negative int. */
    *lifetime = secs <= 0 ? 60 : secs > 86400 ? 86400 : (int)secs;
    const char *out = NULL;
    if (tok && *tok && strlen(tok) < 8000 && !strpbrk(tok, "\r\n"))
        out = arena_printf(a, "Bearer %s", tok);
    json_decref(j);
    return out;
}

/* Ask the token service named by a Bearer challenge. Returns "Bearer <token>"
 * in arena memory, or NULL with resp describing the failure. The rule's
 * credentials go along only where realm_may_get_credentials() allows. */
static const char *fetch_token(struct ctx *c, struct upstream *u, const struct cache_rule *rule,
                               const struct challenge *ch, const char *scope, const char *user,
                               const char *secret, int *lifetime, bool *withheld,
                               struct upstream_resp *resp)
{
    if (strncasecmp(ch->realm, "https://", 8) != 0 && strncasecmp(ch->realm, "http://", 7) != 0) {
        resp->failure = UPF_PROTOCOL;
        snprintf(resp->message, sizeof resp->message, "the upstream's token realm is not an http(s) URL");
        log_warn("upstream %s: token realm '%.200s' is not an http(s) URL", rule->upstream_url, ch->realm);
        return NULL;
    }
    if (is_https(rule->upstream_url) && !is_https(ch->realm)) {
        resp->failure = UPF_FORBIDDEN;
        snprintf(resp->message, sizeof resp->message,
                 "the upstream's token realm is plain http; Pier does not downgrade from https");
        log_warn("upstream %s: refused token realm %.200s (https -> http)", rule->upstream_url, ch->realm);
        return NULL;
    }
    char *esc_service = curl_easy_escape(u->curl, ch->service, 0);
    char *esc_scope = curl_easy_escape(u->curl, ch->scope[0] ? ch->scope : scope, 0);
    char *url = arena_printf(c->a, "%s%s%s%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
                             ch->service[0] ? "service=" : "", ch->service[0] ? esc_service : "",
                             ch->service[0] ? "&scope=" : "scope=", esc_scope);
    curl_free(esc_service);
    curl_free(esc_scope);
    char auth[AUTH_VALUE_MAX];
    bool creds_ok = user[0] && realm_may_get_credentials(c, rule->upstream_url, ch->realm);
    *withheld = user[0] && !creds_ok;
    if (user[0] && !creds_ok)
        log_warn("upstream %s: the rule's credentials are not sent to token realm %.200s (another "
                 "site, or plain http); asking anonymously", rule->upstream_url, ch->realm);
    bool have_creds = creds_ok && basic_header(user, secret, auth, sizeof auth);
    struct upstream_resp tr;
    memset(&tr, 0, sizeof tr);
    struct upstream_req tq = {.rule = rule, .max_body = TOKEN_BODY_MAX};
    struct exchange x;
    exchange_init(&x, c, &tq, &tr, TOKEN_BODY_MAX);
    CURLcode rc = perform(c, u, "GET", url, NULL, have_creds ? auth : NULL, rule, false, &x,
                          (long)c->cfg->upstream_connect_timeout * 1000 + 30000);
    OPENSSL_cleanse(auth, sizeof auth);
    if (rc != CURLE_OK) {
        resp->failure = classify_curl(&x, rc);
        snprintf(resp->message, sizeof resp->message, "token service: %s", curl_reason(&x, rc));
        return NULL;
    }
    if (tr.status == 401 || tr.status == 403) {
        resp->failure = UPF_AUTH;
        snprintf(resp->message, sizeof resp->message,
                 "the token service refused the %s (HTTP %ld)",
                 have_creds ? "rule's credentials" : user[0] ? "request (the rule's credentials were withheld)"
                                                             : "anonymous request", tr.status);
        log_warn("upstream %s: token service %.200s answered HTTP %ld", rule->upstream_url, ch->realm,
                 tr.status);
        return NULL;
    }
    if (tr.status != 200) {
        resp->failure = tr.status == 429 ? UPF_RATE_LIMITED : tr.status >= 500 ? UPF_SERVER : UPF_PROTOCOL;
        snprintf(resp->message, sizeof resp->message, "the token service answered HTTP %ld", tr.status);
        log_warn("upstream %s: token service %.200s answered HTTP %ld", rule->upstream_url, ch->realm,
                 tr.status);
        return NULL;
    }
    const char *out = upstream_parse_token(c->a, buf_str(&x.body), buf_len(&x.body), lifetime);
    if (!out) {
        resp->failure = UPF_PROTOCOL;
        snprintf(resp->message, sizeof resp->message, "the token service answered without a usable token");
        log_warn("upstream %s: token service %.200s answered without a usable token",
                 rule->upstream_url, ch->realm);
    }
    return out;
}

/* The rule's credentials, unless they would travel over plain http without
 * the operator's consent (*withheld is then set and both are empty). */
static pier_err load_credentials(struct ctx *c, const struct cache_rule *rule, char *user,
                                 size_t usersz, char *secret, size_t secretsz, bool *withheld,
                                 struct perr *e)
{
    *withheld = false;
    pier_err rc = rules_credentials(c, rule, user, usersz, secret, secretsz, e);
    if (rc)
        return rc;
    if (user[0] && !is_https(rule->upstream_url) && !c->cfg->upstream_allow_http_credentials) {
        OPENSSL_cleanse(user, usersz);
        OPENSSL_cleanse(secret, secretsz);
        user[0] = secret[0] = '\0';
        *withheld = true;
    }
    return PIER_OK;
}

enum login {
    LOGIN_NONE,   /* the challenge cannot be answered: the 401 stands */
    LOGIN_BASIC,  /* answered with the rule's credentials */
    LOGIN_BEARER, /* answered with a token from the challenge's realm */
    LOGIN_FAILED, /* the token service failed: resp says why */
};

/* Answer a 401's challenge, the one login exchange of every request: Basic
 * with the rule's credentials, or Bearer through the token dance (scope is
 * asked for when the challenge names none). *auth receives the Authorization
 * value (arena), *lifetime a token's lifetime in seconds, *realm_withheld
 * whether the rule's credentials were kept from the token realm. */
static enum login login(struct ctx *c, const struct cache_rule *rule, const struct challenge *ch,
                        const char *scope, const char *user, const char *secret,
                        const char **auth, int *lifetime, bool *realm_withheld,
                        struct upstream_resp *resp)
{
    *auth = NULL;
    if (!strcasecmp(ch->scheme, "Basic")) {
        char basic[AUTH_VALUE_MAX];
        if (!user[0] || !basic_header(user, secret, basic, sizeof basic))
            return LOGIN_NONE;
        *auth = arena_strdup(c->a, basic);
        OPENSSL_cleanse(basic, sizeof basic);
        return LOGIN_BASIC;
    }
    if (!strcasecmp(ch->scheme, "Bearer")) {
        *lifetime = 60;
        *auth = fetch_token(c, c->up, rule, ch, scope, user, secret, lifetime, realm_withheld,
                            resp);
        return *auth ? LOGIN_BEARER : LOGIN_FAILED;
    }
    return LOGIN_NONE;
}

static const char *auth_failure_text(struct arena *a, bool withheld, bool realm_withheld,
                                     long status)
{
    if (withheld)
        return arena_printf(a, "HTTP %ld; the rule's credentials were not sent because the "
                            "upstream is plain http (upstream_allow_http_credentials is off)", status);
    if (realm_withheld)
        return arena_printf(a, "HTTP %ld; the rule's credentials were withheld from the upstream's "
                            "token realm (another site, or plain http)", status);
    return arena_printf(a, "HTTP %ld", status);
}

static enum up_failure classify_status(long status)
{
    return status == 404                    ? UPF_NOT_FOUND
           : status == 401 || status == 403 ? UPF_AUTH
           : status == 429                  ? UPF_RATE_LIMITED
           : status >= 500                  ? UPF_SERVER
                                            : UPF_PROTOCOL;
}

static pier_err do_request(struct ctx *c, const struct upstream_req *q, struct upstream_resp *resp,
                           struct perr *e);

pier_err upstream_do(struct ctx *c, const struct upstream_req *q, struct upstream_resp *resp,
                     struct perr *e)
{
    c->up->tick = q->on_tick;
    c->up->tick_arg = q->arg;
    int64_t t0 = now_us();
    pier_err rc = do_request(c, q, resp, e);
    metrics_upstream(q->rule->id, (int)resp->failure, now_us() - t0);
    if (rc == PIER_OK || resp->failure != UPF_NONE)
        health_note(c, q->rule->id, resp, upstream_rule_has_credentials(q->rule), false);
    c->up->tick = NULL;
    c->up->tick_arg = NULL;
    return rc;
}

static pier_err do_request(struct ctx *c, const struct upstream_req *q, struct upstream_resp *resp,
                           struct perr *e)
{
    memset(resp, 0, sizeof *resp);
    resp->content_length = -1;
    struct upstream *u = c->up;
    const char *method = q->head ? "HEAD" : "GET";
    char *url = arena_printf(c->a, "%s/v2/%s/%s", q->rule->upstream_url, q->repo, q->path);
    char *scope = arena_printf(c->a, "repository:%s:pull", q->repo);
    char user[1100], secret[8300];
    bool withheld;
    pier_err rc = load_credentials(c, q->rule, user, sizeof user, secret, sizeof secret, &withheld, e);
    if (rc)
        return rc;
    bool streaming = q->on_data != NULL;
    long total = streaming ? 0 : (long)c->cfg->upstream_timeout * 1000;
    struct exchange x;
    exchange_init(&x, c, q, resp, q->max_body);

    /* A token (or the knowledge that Basic works) from any worker is reused. */
    bool basic_known;
    const char *auth = cached_auth(c, q->rule, scope, &basic_known);
    if (basic_known && !user[0])
        auth = NULL; /* credentials withheld now: never send the cached Basic value */
    bool from_cache = auth != NULL && !basic_known;
    bool realm_withheld = false;
    CURLcode cc = perform(c, u, method, url, q->accept, auth, q->rule, streaming, &x, total);
    for (int round = 0; round < 2 && cc == CURLE_OK && resp->status == 401; round++) {
        struct challenge ch;
        if (!x.www_auth[0] || !upstream_parse_challenge(x.www_auth, &ch))
            break;
        if (from_cache) {
            drop_auth(c, q->rule, scope);
            from_cache = false;
        }
        int lifetime = 60;
        enum login how = login(c, q->rule, &ch, scope, user, secret, &auth, &lifetime,
                               &realm_withheld, resp);
        if (how == LOGIN_NONE)
            break;
        if (how == LOGIN_FAILED) {
            OPENSSL_cleanse(secret, sizeof secret);
            log_warn("upstream %s: %s", q->rule->upstream_url, resp->message);
            return PIER_E_UNAVAILABLE;
        }
        if (how == LOGIN_BASIC)
            store_auth(c, q->rule, "basic", auth, 86400);
        else
            store_auth(c, q->rule, scope, auth, lifetime > 20 ? lifetime - 10 : lifetime);
        cc = perform(c, u, method, url, q->accept, auth, q->rule, streaming, &x, total);
    }
    OPENSSL_cleanse(secret, sizeof secret);
    if (cc != CURLE_OK) {
        if (x.oversize) {
            resp->failure = UPF_PROTOCOL;
            describe(resp, method, q->path, "the answer exceeds the size limit");
        } else if (x.aborted) {
            resp->failure = UPF_ABORTED;
            describe(resp, method, q->path, "transfer stopped by Pier");
        } else {
            resp->failure = classify_curl(&x, cc);
            describe(resp, method, q->path, curl_reason(&x, cc));
        }
        return PIER_E_UNAVAILABLE;
    }
    if (resp->status >= 200 && resp->status < 300) {
        if (streaming && !x.headers_done && q->on_headers && !q->head) {
            /* An empty body: the header callback still has to run. */
            if (q->on_headers(q->arg, resp) != 0) {
                resp->failure = UPF_ABORTED;
                return PIER_E_UNAVAILABLE;
            }
        }
        resp->body = x.body.p;
        resp->body_len = buf_len(&x.body);
        return PIER_OK;
    }
    resp->failure = classify_status(resp->status);
    describe(resp, method, q->path,
             auth_failure_text(c->a, withheld && resp->failure == UPF_AUTH,
                               realm_withheld && resp->failure == UPF_AUTH, resp->status));
    if (resp->failure != UPF_NOT_FOUND)
        log_warn("upstream %s %s: HTTP %ld", method, url, resp->status);
    return PIER_E_UNAVAILABLE;
}

pier_err upstream_check(struct ctx *c, const struct cache_rule *rule, struct upstream_resp *resp,
                        struct perr *e)
{
    memset(resp, 0, sizeof *resp);
    char *url = arena_printf(c->a, "%s/v2/", rule->upstream_url);
    char user[1100], secret[8300];
    bool withheld;
    pier_err rc = load_credentials(c, rule, user, sizeof user, secret, sizeof secret, &withheld, e);
    if (rc) {
        resp->failure = UPF_AUTH;
        snprintf(resp->message, sizeof resp->message, "%s", e->msg);
        return PIER_E_UNAVAILABLE;
    }
    struct upstream_req q = {.rule = rule, .max_body = ERROR_BODY_MAX};
    struct exchange x;
    exchange_init(&x, c, &q, resp, q.max_body);
    long total = (long)c->cfg->upstream_timeout * 1000;
    bool realm_withheld = false;
    CURLcode cc = perform(c, c->up, "GET", url, NULL, NULL, rule, false, &x, total);
    struct challenge ch;
    if (cc == CURLE_OK && resp->status == 401 && x.www_auth[0] &&
        upstream_parse_challenge(x.www_auth, &ch)) {
        const char *auth;
        int lifetime;
        enum login how = login(c, rule, &ch, ch.scope, user, secret, &auth, &lifetime,
                               &realm_withheld, resp);
        if (how == LOGIN_FAILED) {
            OPENSSL_cleanse(secret, sizeof secret);
            return PIER_E_UNAVAILABLE;
        }
        if (how != LOGIN_NONE)
            cc = perform(c, c->up, "GET", url, NULL, auth, rule, false, &x, total);
    }
    OPENSSL_cleanse(secret, sizeof secret);
    if (cc != CURLE_OK) {
        resp->failure = classify_curl(&x, cc);
        describe(resp, "GET", "/v2/", curl_reason(&x, cc));
        return PIER_E_UNAVAILABLE;
    }
    if (resp->status == 200)
        return PIER_OK;
    resp->failure = classify_status(resp->status);
    if (resp->failure == UPF_NOT_FOUND || resp->failure == UPF_PROTOCOL)
        resp->failure = UPF_NOT_REGISTRY; /* /v2/ is where every registry answers */
    describe(resp, "GET", "/v2/",
             auth_failure_text(c->a, withheld && resp->failure == UPF_AUTH,
                               realm_withheld && resp->failure == UPF_AUTH, resp->status));
    return PIER_E_UNAVAILABLE;
}

/* ---- shared tokens: what the rest of the registry may ask ---- */

static const struct db_stmt st_tokens_forget = {
    "up_tokens_forget", "DELETE FROM upstream_tokens WHERE rule_id = $1::bigint", 1};
static const struct db_stmt st_tokens_forget_credential = {
    "up_tokens_forget_credential",
    "DELETE FROM upstream_tokens WHERE rule_id IN (SELECT id FROM cache_rules"
    " WHERE credential_arn = $1 OR credential_arn = $2)", 2};
static const struct db_stmt st_tokens_expire = {
    "up_tokens_expire", "DELETE FROM upstream_tokens WHERE expires_at < now()", 0};

pier_err upstream_tokens_forget(struct ctx *c, long long rule_id, struct perr *e)
{
    return db_exec(c->db, c->a, &st_tokens_forget, e, rule_id) ? PIER_OK : e->code;
}

pier_err upstream_tokens_forget_credential(struct ctx *c, const char *arn, const char *name,
                                           struct perr *e)
{
    return db_exec(c->db, c->a, &st_tokens_forget_credential, e, arn, name) ? PIER_OK : e->code;
}

pier_err upstream_tokens_expire(struct ctx *c, long long *removed, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tokens_expire, e);
    if (!res)
        return e->code;
    *removed = atoll(PQcmdTuples(res));
    return PIER_OK;
}
