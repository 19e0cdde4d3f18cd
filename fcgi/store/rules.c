/* rules: cache_rules table, validation and name mapping. */
#include "store/rules.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "db/db.h"
#include "lib/log.h"
#include "auth/secrets.h"
#include "lib/netpolicy.h"
#include "lib/secretbox.h"
#include "store/repo.h"

#define CTX_USER "cache_rules.username"
#define CTX_SECRET "cache_rules.secret"

static const char *const KINDS[] = {
    "ecr-public",
    "ecr",
    "docker-hub",
    "quay",
    "github-container-registry",
    "k8s",
    "azure-container-registry",
    "gitlab-container-registry",
    "chainguard",
    "oci",
};

/* Columns every SELECT of a rule returns, in this order. */
#define RULE_COLUMNS                                                                   \
    "id, prefix, upstream_url, upstream_registry, upstream_prefix,"                    \
    " coalesce(credential_arn, ''), coalesce(custom_role_arn, ''),"                    \
    " secret_enc IS NOT NULL, refresh_seconds, negative_seconds, ca_bundle,"           \
    " extract(epoch FROM created_at)::bigint, extract(epoch FROM updated_at)::bigint," \
    " last_error, coalesce(extract(epoch FROM last_error_at)::bigint, 0),"             \
    " coalesce(max_bytes, 0),"                                                         \
    " coalesce(upstream_url_given, regexp_replace(upstream_url, '^https://', '')),"    \
    " (extract(epoch FROM created_at) * 1000)::bigint,"                                \
    " (extract(epoch FROM updated_at) * 1000)::bigint,"                                \
    " coalesce((SELECT string_agg(m.registry, ',' ORDER BY m.position)"                \
    "   FROM cache_rule_mirrors m WHERE m.rule_id = cache_rules.id), ''),"             \
    " default_mirror"

static const struct db_stmt st_match = {
    "rules_match",
    "SELECT " RULE_COLUMNS " FROM cache_rules"
    " WHERE prefix = 'ROOT' OR left($1, length(prefix) + 1) = prefix || '/'"
    " ORDER BY prefix = 'ROOT', length(prefix) DESC LIMIT 1",
    1};
static const struct db_stmt st_get = {
    "rules_get", "SELECT " RULE_COLUMNS " FROM cache_rules WHERE prefix = $1", 1};
static const struct db_stmt st_get_id = {
    "rules_get_id", "SELECT " RULE_COLUMNS " FROM cache_rules WHERE id = $1::bigint", 1};
static const struct db_stmt st_for_mirror = {
    "rules_for_mirror",
    "SELECT " RULE_COLUMNS " FROM cache_rules"
    " WHERE id = (SELECT rule_id FROM cache_rule_mirrors WHERE registry = $1)",
    1};
/* A default mirror answers only names nothing else claims: not a repository
 * (pushed or cached) and under no rule's prefix (a ROOT rule claims all). */
static const struct db_stmt st_default_mirror_for = {
    "rules_default_mirror_for",
    "SELECT " RULE_COLUMNS " FROM cache_rules WHERE default_mirror"
    " AND NOT EXISTS (SELECT 1 FROM repositories r WHERE r.name = $1)"
    " AND NOT EXISTS (SELECT 1 FROM cache_rules o WHERE o.prefix = 'ROOT'"
    "   OR left($1, length(o.prefix) + 1) = o.prefix || '/')",
    1};
static const struct db_stmt st_default_exists = {
    "rules_default_exists", "SELECT EXISTS (SELECT 1 FROM cache_rules WHERE default_mirror)", 0};
static const struct db_stmt st_mirror_taken = {
    "rules_mirror_taken",
    "SELECT m.registry, r.prefix FROM cache_rule_mirrors m JOIN cache_rules r ON r.id = m.rule_id"
    " WHERE m.rule_id <> $1::bigint AND m.registry = ANY (string_to_array($2, ','))"
    " ORDER BY m.registry LIMIT 1",
    2};
static const struct db_stmt st_default_taken = {
    "rules_default_taken",
    "SELECT prefix FROM cache_rules WHERE default_mirror AND id <> $1::bigint LIMIT 1", 1};
static const struct db_stmt st_mirrors_clear = {
    "rules_mirrors_clear", "DELETE FROM cache_rule_mirrors WHERE rule_id = $1::bigint", 1};
static const struct db_stmt st_mirrors_insert = {
    "rules_mirrors_insert",
    "INSERT INTO cache_rule_mirrors(registry, rule_id, position)"
    " SELECT t.registry, $1::bigint, t.n FROM unnest(string_to_array($2, ','))"
    " WITH ORDINALITY AS t(registry, n)",
    2};
static const struct db_stmt st_set_default = {
    "rules_set_default", "UPDATE cache_rules SET default_mirror = $2 WHERE id = $1::bigint", 2};
static const struct db_stmt st_list = {
    "rules_list", "SELECT " RULE_COLUMNS " FROM cache_rules ORDER BY prefix", 0};
static const struct db_stmt st_prefixes = {"rules_prefixes",
                                           "SELECT id, prefix FROM cache_rules ORDER BY id", 0};
static const struct db_stmt st_with_budget = {
    "rules_with_budget",
    "SELECT " RULE_COLUMNS " FROM cache_rules WHERE max_bytes IS NOT NULL ORDER BY prefix", 0};
static const struct db_stmt st_insert = {
    "rules_insert",
    "INSERT INTO cache_rules(prefix, upstream_url, upstream_registry, upstream_prefix,"
    " credential_arn, custom_role_arn, username_enc, secret_enc, ca_bundle, refresh_seconds,"
    " negative_seconds, max_bytes, upstream_url_given) VALUES ($1, $2, $3, $4, nullif($5, ''),"
    " nullif($6, ''), $7::bytea, $8::bytea, $9, $10::int, $11::int, nullif($12::bigint, 0), $13)"
    " ON CONFLICT (prefix) DO NOTHING RETURNING id",
    13};
static const struct db_stmt st_update = {
    "rules_update",
    "UPDATE cache_rules SET upstream_url = $2, upstream_registry = $3, upstream_prefix = $4,"
    " credential_arn = nullif($5, ''), custom_role_arn = nullif($6, ''), ca_bundle = $7,"
    " refresh_seconds = $8::int, negative_seconds = $9::int,"
    " max_bytes = nullif($10::bigint, 0), upstream_url_given = $11, updated_at = now(),"
    " last_error = NULL, last_error_at = NULL"
    " WHERE prefix = $1 RETURNING id",
    11};
static const struct db_stmt st_update_creds = {
    "rules_update_creds",
    "UPDATE cache_rules SET username_enc = $2::bytea, secret_enc = $3::bytea, updated_at = now()"
    " WHERE prefix = $1",
    3};
static const struct db_stmt st_delete = {
    "rules_delete", "DELETE FROM cache_rules WHERE prefix = $1 RETURNING id", 1};
static const struct db_stmt st_creds = {
    "rules_creds", "SELECT username_enc, secret_enc FROM cache_rules WHERE id = $1::bigint", 1};
static const struct db_stmt st_note_error = {
    "rules_note_error",
    "UPDATE cache_rules SET last_error = $2, last_error_at = now() WHERE id = $1::bigint", 2};
static const struct db_stmt st_note_storage_error = {
    "rules_note_storage_error",
    "UPDATE cache_rules SET last_storage_error = $2, last_storage_error_at = now()"
    " WHERE id = $1::bigint",
    2};
static const struct db_stmt st_clear_error = {
    "rules_clear_error",
    "UPDATE cache_rules SET last_error = NULL, last_error_at = NULL WHERE id = $1::bigint", 1};

void rule_defaults(struct cache_rule *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->upstream_prefix, sizeof r->upstream_prefix, "ROOT");
    snprintf(r->upstream_registry, sizeof r->upstream_registry, "oci");
    r->refresh_seconds = 86400;
    r->negative_seconds = 300;
}

pier_err rule_check_prefix(const char *p, struct perr *e)
{
    if (strcmp(p, "ROOT") == 0)
        return PIER_OK;
    size_t n = strlen(p);
    if (n < 2 || n > RULE_PREFIX_MAX)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "ecrRepositoryPrefix must be ROOT or 2-30 characters, got %zu", n);
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)p[i]) || isdigit((unsigned char)p[i]) || strchr("._/-", p[i])))
            return perr_set(e, PIER_E_NAME_INVALID,
                            "ecrRepositoryPrefix may contain only a-z, 0-9, '.', '_', '/', '-' "
                            "(character %zu is '%c')",
                            i, p[i]);
    struct perr sub;
    if (grammar_name(p, &sub) != PIER_OK)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "ecrRepositoryPrefix '%s' is not a valid "
                        "repository name prefix: %s",
                        p, sub.msg);
    return PIER_OK;
}

pier_err rule_check_budget(long long max_bytes, struct perr *e)
{
    if (max_bytes != 0 && (max_bytes < RULE_BUDGET_MIN || max_bytes > RULE_BUDGET_MAX))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "a rule's byte budget must be at least %lld bytes (1 MiB) and at most "
                        "%lld (1 EiB), or none; got %lld",
                        RULE_BUDGET_MIN, RULE_BUDGET_MAX, max_bytes);
    return PIER_OK;
}

pier_err rule_check_upstream_prefix(const char *p, struct perr *e)
{
    if (strcmp(p, "ROOT") == 0)
        return PIER_OK;
    struct perr sub;
    if (strlen(p) > 200 || grammar_name(p, &sub) != PIER_OK)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "upstreamRepositoryPrefix must be ROOT or a valid repository name "
                        "of at most 200 characters");
    return PIER_OK;
}

pier_err rule_normalize_url(const char *in, char out[RULE_URL_MAX], struct perr *e)
{
    const char *scheme = "https";
    const char *p = in;
    if (strncasecmp(p, "https://", 8) == 0) {
        p += 8;
    } else if (strncasecmp(p, "http://", 7) == 0) {
        scheme = "http";
        p += 7;
    } else if (strstr(p, "://")) {
        return perr_set(
            e, PIER_E_BAD_REQUEST,
            "upstreamRegistryUrl: only https:// (the default) and http:// are supported");
    }
    size_t hlen = strcspn(p, "/?#");
    if (hlen == 0)
        return perr_set(e, PIER_E_BAD_REQUEST, "upstreamRegistryUrl: a host is required");
    char host[256];
    if (hlen >= sizeof host)
        return perr_set(e, PIER_E_BAD_REQUEST, "upstreamRegistryUrl: host is too long");
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    /* host: letters, digits, '-', '.', an optional :port, or a bracketed IPv6 address */
    for (size_t i = 0; i < hlen; i++) {
        char ch = host[i];
        if (ch == '@')
            return perr_set(
                e, PIER_E_BAD_REQUEST,
                "upstreamRegistryUrl must not contain credentials; set them on the rule");
        if (!(isalnum((unsigned char)ch) || strchr("-.:[]", ch)))
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "upstreamRegistryUrl: character '%c' is not allowed in a host", ch);
        host[i] = (char)tolower((unsigned char)ch);
    }
    const char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        long port = 0;
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || port < 1 || port > 65535)
            return perr_set(e, PIER_E_BAD_REQUEST, "upstreamRegistryUrl: invalid port");
    }
    if (!strcmp(host, "docker.io") || !strcmp(host, "index.docker.io"))
        snprintf(host, sizeof host, "registry-1.docker.io");
    const char *path = p + hlen;
    if (*path == '?' || *path == '#' || strpbrk(path, "?#"))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "upstreamRegistryUrl must not have a query or fragment");
    char clean[RULE_URL_MAX];
    size_t plen = strlen(path);
    while (plen && path[plen - 1] == '/')
        plen--;
    if (plen >= sizeof clean)
        return perr_set(e, PIER_E_BAD_REQUEST, "upstreamRegistryUrl is too long");
    memcpy(clean, path, plen);
    clean[plen] = '\0';
    for (size_t i = 0; i < plen; i++)
        if (!(isalnum((unsigned char)clean[i]) || strchr("/-._~", clean[i])))
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "upstreamRegistryUrl: character '%c' is not allowed in the path",
                            clean[i]);
    if (strstr(clean, "/../") || (plen >= 3 && !strcmp(clean + plen - 3, "/..")))
        return perr_set(e, PIER_E_BAD_REQUEST, "upstreamRegistryUrl: '..' is not allowed");
    int n = snprintf(out, RULE_URL_MAX, "%s://%s%s", scheme, host, clean);
    if (n < 0 || n >= RULE_URL_MAX)
        return perr_set(e, PIER_E_BAD_REQUEST, "upstreamRegistryUrl is too long");
    return PIER_OK;
}

pier_err rule_check_mirror(const char *in, char out[RULE_MIRROR_LEN + 1], struct perr *e)
{
    char host[RULE_MIRROR_LEN + 1];
    size_t n = strlen(in);
    if (n == 0 || n > RULE_MIRROR_LEN)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "a mirrored registry is a host name with an optional :port of 1-%d "
                        "characters (e.g. docker.io, quay.io:443), got %zu characters",
                        RULE_MIRROR_LEN, n);
    for (size_t i = 0; i <= n; i++)
        host[i] = (char)tolower((unsigned char)in[i]);
    char *colon = strchr(host, ':');
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || port < 1 || port > 65535 || colon[1] == '0')
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "mirrored registry '%.*s': the port must be a number from 1 to 65535",
                            (int)n, in);
    }
    size_t hn = colon ? (size_t)(colon - host) : n;
    /* DNS labels: 1-63 of [a-z0-9-], no '-' at either end, separated by '.' */
    size_t label = 0;
    bool ok = hn > 0;
    for (size_t i = 0; ok && i <= hn; i++) {
        char ch = i < hn ? host[i] : '.';
        if (ch == '.') {
            ok = label > 0 && label <= 63 && host[i - 1] != '-' && host[i - label] != '-';
            label = 0;
        } else if (islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-') {
            label++;
        } else {
            ok = false;
        }
    }
    if (!ok)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "mirrored registry '%.*s' is not a host name with an optional :port "
                        "(DNS labels of a-z, 0-9 and '-', separated by '.'; no scheme or path)",
                        (int)(n > 80 ? 80 : n), in);
    /* containerd names Docker Hub docker.io in ns, whatever the endpoint. */
    if (!strcmp(host, "index.docker.io") || !strcmp(host, "registry-1.docker.io"))
        snprintf(host, sizeof host, "docker.io");
    memcpy(out, host, strlen(host) + 1);
    return PIER_OK;
}

pier_err rule_set_mirrors(struct cache_rule *r, const char *list, struct perr *e)
{
    char got[RULE_MIRRORS_MAX][RULE_MIRROR_LEN + 1];
    int n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        const char *q = p;
        size_t m = len;
        while (m && *q == ' ') {
            q++;
            m--;
        }
        while (m && q[m - 1] == ' ')
            m--;
        if (m) {
            char one[RULE_MIRROR_LEN + 2];
            if (m > RULE_MIRROR_LEN)
                m = RULE_MIRROR_LEN + 1; /* too long: rule_check_mirror says so */
            memcpy(one, q, m);
            one[m] = '\0';
            char norm[RULE_MIRROR_LEN + 1];
            pier_err rc = rule_check_mirror(one, norm, e);
            if (rc)
                return rc;
            bool dup = false;
            for (int i = 0; i < n && !dup; i++)
                dup = strcmp(got[i], norm) == 0;
            if (!dup) {
                if (n == RULE_MIRRORS_MAX)
                    return perr_set(e, PIER_E_BAD_REQUEST, "a rule mirrors at most %d registries",
                                    RULE_MIRRORS_MAX);
                memcpy(got[n++], norm, strlen(norm) + 1);
            }
        }
        p += len;
        if (*p == ',')
            p++;
    }
    for (int i = 0; i < n; i++)
        memcpy(r->mirrors[i], got[i], strlen(got[i]) + 1);
    r->n_mirrors = n;
    return PIER_OK;
}

const char *rule_mirrors_text(struct arena *a, const struct cache_rule *r)
{
    size_t need = 1;
    for (int i = 0; i < r->n_mirrors; i++)
        need += strlen(r->mirrors[i]) + 1;
    char *out = arena_alloc(a, need);
    out[0] = '\0';
    size_t at = 0;
    for (int i = 0; i < r->n_mirrors; i++) {
        size_t l = strlen(r->mirrors[i]);
        if (i)
            out[at++] = ',';
        memcpy(out + at, r->mirrors[i], l + 1);
        at += l;
    }
    return out;
}

static const char *infer_kind(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t n = strcspn(host, ":/");
    static const struct {
        const char *suffix;
        const char *kind;
    } map[] = {
        {"public.ecr.aws", "ecr-public"},
        {"registry-1.docker.io", "docker-hub"},
        {"quay.io", "quay"},
        {"ghcr.io", "github-container-registry"},
        {"registry.k8s.io", "k8s"},
        {".azurecr.io", "azure-container-registry"},
        {"registry.gitlab.com", "gitlab-container-registry"},
        {"cgr.dev", "chainguard"},
        {".amazonaws.com", "ecr"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t m = strlen(map[i].suffix);
        if (n >= m && strncmp(host + n - m, map[i].suffix, m) == 0)
            return map[i].kind;
    }
    return "oci";
}

pier_err rule_check_registry(const char *kind, const char *url, char out[40], struct perr *e)
{
    if (!kind || !*kind) {
        snprintf(out, 40, "%s", infer_kind(url));
        return PIER_OK;
    }
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strcmp(kind, KINDS[i]) == 0) {
            snprintf(out, 40, "%s", kind);
            return PIER_OK;
        }
    return perr_set(e, PIER_E_BAD_REQUEST,
                    "upstreamRegistry '%.40s' is not one of ecr-public, ecr, docker-hub, quay, "
                    "github-container-registry, k8s, azure-container-registry, "
                    "gitlab-container-registry, chainguard, oci",
                    kind);
}

bool rule_registry_is_ecr(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strcmp(kind, KINDS[i]) == 0)
            return strcmp(kind, "oci") != 0;
    return false;
}

pier_err rule_upstream_name(const struct cache_rule *r, const char *local,
                            char out[NAME_MAX_LEN + 1], struct perr *e)
{
    const char *rest = local;
    if (strcmp(r->prefix, "ROOT") != 0) {
        size_t n = strlen(r->prefix);
        if (strncmp(local, r->prefix, n) != 0 || local[n] != '/' || !local[n + 1])
            return perr_set(e, PIER_E_NAME_INVALID, "repository %s is not under prefix %s", local,
                            r->prefix);
        rest = local + n + 1;
    }
    char buf[2 * NAME_MAX_LEN + 16];
    const char *up = strcmp(r->upstream_prefix, "ROOT") == 0 ? "" : r->upstream_prefix;
    snprintf(buf, sizeof buf, "%s%s%s", up, *up ? "/" : "", rest);
    /* Docker Hub keeps official images under library/. */
    if (strcmp(r->upstream_registry, "docker-hub") == 0 && !strchr(buf, '/')) {
        char tmp[sizeof buf];
        if (snprintf(tmp, sizeof tmp, "library/%s", buf) >= (int)sizeof tmp)
            return perr_set(e, PIER_E_NAME_INVALID, "upstream repository name is longer than %d",
                            NAME_MAX_LEN);
        memcpy(buf, tmp, sizeof buf);
    }
    if (strlen(buf) > NAME_MAX_LEN)
        return perr_set(e, PIER_E_NAME_INVALID, "upstream repository name is longer than %d",
                        NAME_MAX_LEN);
    pier_err rc = grammar_name(buf, e);
    if (rc)
        return rc;
    memcpy(out, buf, strlen(buf) + 1);
    return PIER_OK;
}

static void from_row(struct ctx *c, PGresult *res, int row, struct cache_rule *r)
{
    rule_defaults(r);
    r->id = db_int(res, row, 0);
    snprintf(r->prefix, sizeof r->prefix, "%s", PQgetvalue(res, row, 1));
    snprintf(r->upstream_url, sizeof r->upstream_url, "%s", PQgetvalue(res, row, 2));
    snprintf(r->upstream_registry, sizeof r->upstream_registry, "%s", PQgetvalue(res, row, 3));
    snprintf(r->upstream_prefix, sizeof r->upstream_prefix, "%s", PQgetvalue(res, row, 4));
    snprintf(r->credential_arn, sizeof r->credential_arn, "%s", PQgetvalue(res, row, 5));
    snprintf(r->custom_role_arn, sizeof r->custom_role_arn, "%s", PQgetvalue(res, row, 6));
    r->has_credentials = PQgetvalue(res, row, 7)[0] == 't';
    r->refresh_seconds = (int)db_int(res, row, 8);
    r->negative_seconds = (int)db_int(res, row, 9);
    r->ca_bundle = db_isnull(res, row, 10) ? NULL : arena_strdup(c->a, PQgetvalue(res, row, 10));
    r->created_at = db_int(res, row, 11);
    r->updated_at = db_int(res, row, 12);
    r->last_error = db_isnull(res, row, 13) ? NULL : arena_strdup(c->a, PQgetvalue(res, row, 13));
    r->last_error_at = db_int(res, row, 14);
    r->max_bytes = db_int(res, row, 15);
    snprintf(r->upstream_url_given, sizeof r->upstream_url_given, "%s", PQgetvalue(res, row, 16));
    r->created_ms = db_int(res, row, 17);
    r->updated_ms = db_int(res, row, 18);
    struct perr ignore;
    if (rule_set_mirrors(r, PQgetvalue(res, row, 19), &ignore) != PIER_OK)
        r->n_mirrors = 0; /* stored rows were checked when written */
    r->default_mirror = PQgetvalue(res, row, 20)[0] == 't';
}

pier_err rules_match(struct ctx *c, const char *name, struct cache_rule *out, bool *found,
                     struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_match, e, name);
    if (!res)
        return e->code;
    *found = PQntuples(res) > 0;
    if (*found)
        from_row(c, res, 0, out);
    return PIER_OK;
}

pier_err rules_for_mirror(struct ctx *c, const char *registry, struct cache_rule *out, bool *found,
                          struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_for_mirror, e, registry);
    if (!res)
        return e->code;
    *found = PQntuples(res) > 0;
    if (*found)
        from_row(c, res, 0, out);
    return PIER_OK;
}

pier_err rules_default_mirror_exists(struct ctx *c, bool *exists, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_default_exists, e);
    if (!res)
        return e->code;
    *exists = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
    return PIER_OK;
}

pier_err rules_default_mirror_for(struct ctx *c, const char *name, struct cache_rule *out,
                                  bool *found, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_default_mirror_for, e, name);
    if (!res)
        return e->code;
    *found = PQntuples(res) > 0;
    if (*found)
        from_row(c, res, 0, out);
    return PIER_OK;
}

pier_err rules_get(struct ctx *c, const char *prefix, struct cache_rule *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get, e, prefix);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no pull-through cache rule with prefix %s",
                        prefix);
    from_row(c, res, 0, out);
    return PIER_OK;
}

pier_err rules_get_id(struct ctx *c, long long id, struct cache_rule *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get_id, e, id);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no pull-through cache rule with prefix %lld", id);
    from_row(c, res, 0, out);
    return PIER_OK;
}

static pier_err validate(struct cache_rule *r, struct perr *e)
{
    pier_err rc;
    char url[RULE_URL_MAX];
    if ((rc = rule_check_prefix(r->prefix, e)) ||
        (rc = rule_check_upstream_prefix(r->upstream_prefix, e)) ||
        (rc = rule_normalize_url(r->upstream_url, url, e)))
        return rc;
    /* upstreamRegistryUrl is answered as it was written (Terraform compares
     * it with its configuration): a new URL replaces what was written, the
     * normalized form of the same URL (what an update reads back) keeps it. */
    char was[RULE_URL_MAX];
    struct perr ig;
    if (!r->upstream_url_given[0] ||
        rule_normalize_url(r->upstream_url_given, was, &ig) != PIER_OK || strcmp(was, url) != 0)
        snprintf(r->upstream_url_given, sizeof r->upstream_url_given, "%s", r->upstream_url);
    snprintf(r->upstream_url, sizeof r->upstream_url, "%s", url);
    char kind[40];
    if ((rc = rule_check_registry(r->upstream_registry, r->upstream_url, kind, e)))
        return rc;
    snprintf(r->upstream_registry, sizeof r->upstream_registry, "%s", kind);
    if (r->refresh_seconds < 0 || r->refresh_seconds > 365 * 86400)
        return perr_set(e, PIER_E_BAD_REQUEST, "refresh interval must be 0..31536000 seconds");
    if (r->negative_seconds < 0 || r->negative_seconds > 7 * 86400)
        return perr_set(e, PIER_E_BAD_REQUEST, "negative-cache time must be 0..604800 seconds");
    if (r->ca_bundle && (strlen(r->ca_bundle) > RULE_CA_MAX ||
                         !strstr(r->ca_bundle, "-----BEGIN CERTIFICATE-----")))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "CA bundle must be PEM certificates, at most 256 KiB");
    return rule_check_budget(r->max_bytes, e);
}

/* Is the rule's upstream somewhere Pier may connect to, and may its
 * credentials travel there? Literal addresses are checked against the
 * address policy now (names are checked after DNS, at every connection). */
static pier_err check_destination(struct ctx *c, const struct cache_rule *r, bool creds,
                                  struct perr *e)
{
    const char *p = strstr(r->upstream_url, "://");
    p = p ? p + 3 : r->upstream_url;
    char host[256];
    size_t n = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/");
    if (n >= sizeof host)
        n = sizeof host - 1;
    memcpy(host, p, n);
    host[n] = '\0';
    struct netpolicy np;
    pier_err rc = netpolicy_parse(c->cfg->upstream_allow_networks, &np, e);
    if (rc)
        return rc;
    bool is_ip;
    const char *why = NULL;
    size_t hl = strlen(host);
    bool local_name = !strcmp(host, "localhost") ||
                      (hl > 10 && !strcmp(host + hl - 10, ".localhost"));
    if (local_name) {
        bool ok = netpolicy_allows_text(&np, "127.0.0.1", &is_ip, &why);
        if (!ok)
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "upstreamRegistryUrl names %s, a loopback host; Pier connects only to "
                            "public addresses unless upstream_allow_networks lists them",
                            host);
    } else if (!netpolicy_allows_text(&np, host, &is_ip, &why)) {
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "upstreamRegistryUrl names %s, a %s address; Pier connects only to public "
                        "addresses unless upstream_allow_networks lists them",
                        host, why);
    }
    if (creds && strncmp(r->upstream_url, "http://", 7) == 0 &&
        !c->cfg->upstream_allow_http_credentials)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "credentials are never sent over plain http: use an https:// upstream "
                        "(or set upstream_allow_http_credentials on every node)");
    return PIER_OK;
}

/* Seal a credential into arena memory; NULL value gives a NULL parameter. */
static pier_err seal(struct ctx *c, const char *context, const char *value, struct db_param *p,
                     struct perr *e)
{
    memset(p, 0, sizeof *p);
    p->binary = true;
    return value ? secretbox_seal_arena(c->sb, c->a, context, value, &p->value, &p->length, e)
                 : PIER_OK;
}

static pier_err check_credentials(const char *username, const char *secret, struct perr *e)
{
    if (!username != !secret)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "credentials need both a username and an access token");
    if (username && (strlen(username) > 1024 || strlen(secret) > 8192 || !*username || !*secret))
        return perr_set(e, PIER_E_BAD_REQUEST, "credentials are empty or too long");
    return PIER_OK;
}

/* Write the rule's mirrors and default-mirror flag, inside the caller's
 * transaction; a registry another rule mirrors, or a second default
 * mirror, is a conflict that names the other rule. */
static pier_err write_mirrors(struct ctx *c, const struct cache_rule *r, long long id,
                              struct perr *e)
{
    const char *list = rule_mirrors_text(c->a, r);
    PGresult *res = db_exec(c->db, c->a, &st_mirror_taken, e, id, list);
    if (!res)
        return e->code;
    if (PQntuples(res) > 0) {
        perr_set(e, PIER_E_CONFLICT,
                 "registry %s is already mirrored by the rule with prefix %s; a registry is "
                 "mirrored by at most one rule (remove it there first)",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        perr_detail(e, "%s", PQgetvalue(res, 0, 1));
        return e->code;
    }
    if (r->default_mirror) {
        if (!(res = db_exec(c->db, c->a, &st_default_taken, e, id)))
            return e->code;
        if (PQntuples(res) > 0) {
            perr_set(e, PIER_E_CONFLICT,
                     "the rule with prefix %s is already the default mirror; there is one "
                     "default mirror registry-wide (unset it there first)",
                     PQgetvalue(res, 0, 0));
            perr_detail(e, "%s", PQgetvalue(res, 0, 0));
            return e->code;
        }
    }
    if (!db_exec(c->db, c->a, &st_mirrors_clear, e, id) ||
        !db_exec(c->db, c->a, &st_mirrors_insert, e, id, list) ||
        !db_exec(c->db, c->a, &st_set_default, e, id, r->default_mirror))
        return e->code;
    return PIER_OK;
}

/* rules_create's steps, inside its transaction. */
static pier_err insert(struct ctx *c, struct cache_rule *r, const struct db_param *p,
                       struct perr *e)
{
    const char *pushed;
    pier_err rc = repo_pushed_under(c, r->prefix, &pushed, e);
    if (rc)
        return rc;
    if (pushed) {
        /* A conflict with what is stored, not a permission: who may create
         * rules still may not create this one. */
        perr_set(e, PIER_E_CONFLICT,
                 "prefix %s already holds pushed repositories (e.g. %s); a pull-through "
                 "cache rule cannot take over pushed images",
                 r->prefix, pushed);
        perr_detail(e, "%s", pushed);
        return e->code;
    }
    PGresult *res = db_execp(c->db, c->a, &st_insert, p, false, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_CONFLICT,
                        "a pull-through cache rule with prefix %s already exists", r->prefix);
    r->id = db_int(res, 0, 0);
    pier_err rc2 = write_mirrors(c, r, r->id, e);
    return rc2 ? rc2 : repo_adopt(c, r->id, r->prefix, e);
}

pier_err rules_create(struct ctx *c, struct cache_rule *r, const char *username, const char *secret,
                      struct perr *e)
{
    pier_err rc;
    if ((rc = validate(r, e)) || (rc = check_credentials(username, secret, e)) ||
        (rc = check_destination(c, r, username || r->credential_arn[0], e)))
        return rc;
    struct db_param p[13];
    memset(p, 0, sizeof p);
    if ((rc = seal(c, CTX_USER, username, &p[6], e)) ||
        (rc = seal(c, CTX_SECRET, secret, &p[7], e)))
        return rc;
    p[0].value = r->prefix;
    p[1].value = r->upstream_url;
    p[2].value = r->upstream_registry;
    p[3].value = r->upstream_prefix;
    p[4].value = r->credential_arn;
    p[5].value = r->custom_role_arn;
    p[8].value = r->ca_bundle;
    p[9] = DB_ARG(r->refresh_seconds);
    p[10] = DB_ARG(r->negative_seconds);
    p[11] = DB_ARG(r->max_bytes);
    p[12].value = r->upstream_url_given;
    if ((rc = db_tx_begin(c->db, e)))
        return rc;
    rc = insert(c, r, p, e);
    return db_tx_end(c->db, rc, e);
}

/* rules_update's steps, inside its transaction (the caller's, when open). */
static pier_err update(struct ctx *c, const struct cache_rule *r, bool set_credentials,
                       const char *username, const char *secret, long long *id_out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_update, e, r->prefix, r->upstream_url,
                            r->upstream_registry, r->upstream_prefix, r->credential_arn,
                            r->custom_role_arn, r->ca_bundle, r->refresh_seconds,
                            r->negative_seconds, r->max_bytes, r->upstream_url_given);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no pull-through cache rule with prefix %s",
                        r->prefix);
    long long id = db_int(res, 0, 0);
    pier_err wrc = write_mirrors(c, r, id, e);
    if (wrc)
        return wrc;
    if (set_credentials) {
        struct db_param p[3];
        memset(p, 0, sizeof p);
        pier_err rc;
        if ((rc = seal(c, CTX_USER, username, &p[1], e)) ||
            (rc = seal(c, CTX_SECRET, secret, &p[2], e)))
            return rc;
        p[0].value = r->prefix;
        if (!db_execp(c->db, c->a, &st_update_creds, p, false, e))
            return e->code;
    }
    if (id_out)
        *id_out = id;
    return PIER_OK;
}

pier_err rules_update(struct ctx *c, const struct cache_rule *in, bool set_credentials,
                      const char *username, const char *secret, long long *id_out, struct perr *e)
{
    struct cache_rule r = *in;
    pier_err rc;
    if ((rc = validate(&r, e)))
        return rc;
    if (set_credentials && (rc = check_credentials(username, secret, e)))
        return rc;
    bool creds = set_credentials ? username != NULL : r.has_credentials;
    if ((rc = check_destination(c, &r, creds || r.credential_arn[0], e)))
        return rc;
    if ((rc = db_tx_begin(c->db, e)))
        return rc;
    rc = update(c, &r, set_credentials, username, secret, id_out, e);
    return db_tx_end(c->db, rc, e);
}

pier_err rules_delete(struct ctx *c, const char *prefix, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_delete, e, prefix);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no pull-through cache rule with prefix %s",
                        prefix);
    return PIER_OK;
}

pier_err rules_prefixes(struct ctx *c, long long **ids, const char ***prefixes, int *n,
                        struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_prefixes, e);
    if (!res)
        return e->code;
    int rows = PQntuples(res);
    *ids = arena_alloc(c->a, sizeof **ids * (size_t)(rows ? rows : 1));
    *prefixes = arena_alloc(c->a, sizeof **prefixes * (size_t)(rows ? rows : 1));
    for (int i = 0; i < rows; i++) {
        (*ids)[i] = db_int(res, i, 0);
        (*prefixes)[i] = PQgetvalue(res, i, 1);
    }
    *n = rows;
    return PIER_OK;
}

json_t *rule_to_json(const struct cache_rule *r)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:b, s:i, s:i, s:I, s:I, s:b}",
                          "ecrRepositoryPrefix", r->prefix, "upstreamRegistryUrl", r->upstream_url,
                          "upstreamRegistry", r->upstream_registry, "upstreamRepositoryPrefix",
                          r->upstream_prefix, "hasCredentials", r->has_credentials,
                          "refreshIntervalSeconds", r->refresh_seconds, "negativeCacheSeconds",
                          r->negative_seconds, "createdAt", (json_int_t)r->created_at, "updatedAt",
                          (json_int_t)r->updated_at, "hasCaBundle", r->ca_bundle != NULL);
    if (r->credential_arn[0])
        json_object_set_new(j, "credentialArn", json_string(r->credential_arn));
    if (r->custom_role_arn[0])
        json_object_set_new(j, "customRoleArn", json_string(r->custom_role_arn));
    if (r->last_error) {
        json_object_set_new(j, "lastError", json_string(r->last_error));
        json_object_set_new(j, "lastErrorAt", json_integer(r->last_error_at));
    }
    if (r->max_bytes > 0)
        json_object_set_new(j, "maxBytes", json_integer(r->max_bytes));
    json_t *m = json_array();
    for (int i = 0; i < r->n_mirrors; i++)
        json_array_append_new(m, json_string(r->mirrors[i]));
    json_object_set_new(j, "mirrorRegistries", m);
    json_object_set_new(j, "defaultMirror", json_boolean(r->default_mirror));
    return j;
}

pier_err rules_list(struct ctx *c, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_list, e);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++) {
        struct cache_rule r;
        from_row(c, res, i, &r);
        json_array_append_new(out, rule_to_json(&r));
    }
    return PIER_OK;
}

pier_err rules_with_budget(struct ctx *c, struct cache_rule **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_with_budget, e);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++)
        from_row(c, res, i, &(*out)[i]);
    return PIER_OK;
}

pier_err rules_credentials(struct ctx *c, const struct cache_rule *r, char *user, size_t usersz,
                           char *secret, size_t secretsz, struct perr *e)
{
    user[0] = secret[0] = '\0';
    if (r->check_user) {
        const char *t = r->check_secret ? r->check_secret : "";
        if (strlen(r->check_user) >= usersz || strlen(t) >= secretsz)
            return perr_set(e, PIER_E_BAD_REQUEST, "the username or access token is too long");
        snprintf(user, usersz, "%s", r->check_user);
        snprintf(secret, secretsz, "%s", t);
        return PIER_OK;
    }
    if (!r->has_credentials && r->credential_arn[0]) {
        /* ECR's way: a Secrets Manager secret {"username": ..., "accessToken": ...}. */
        char *value;
        pier_err rc = secret_value(c, r->credential_arn, &value, e);
        if (rc)
            return rc;
        json_t *j = json_loads(value, 0, NULL);
        OPENSSL_cleanse(value, strlen(value));
        const char *u = json_string_value(json_object_get(j, "username"));
        const char *t = json_string_value(json_object_get(j, "accessToken"));
        if (!u || !t || strlen(u) >= usersz || strlen(t) >= secretsz) {
            json_decref(j);
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "secret %s must hold {\"username\": ..., \"accessToken\": ...}",
                            r->credential_arn);
        }
        snprintf(user, usersz, "%s", u);
        snprintf(secret, secretsz, "%s", t);
        json_decref(j);
        return PIER_OK;
    }
    if (!r->has_credentials)
        return PIER_OK;
    struct db_param p[1] = {DB_ARG(r->id)};
    PGresult *res = db_execp(c->db, c->a, &st_creds, p, true, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1))
        return PIER_OK;
    pier_err rc = secretbox_open(c->sb, CTX_USER, (const unsigned char *)PQgetvalue(res, 0, 0),
                                 (size_t)PQgetlength(res, 0, 0), user, usersz, NULL, e);
    if (!rc)
        rc = secretbox_open(c->sb, CTX_SECRET, (const unsigned char *)PQgetvalue(res, 0, 1),
                            (size_t)PQgetlength(res, 0, 1), secret, secretsz, NULL, e);
    if (rc) {
        OPENSSL_cleanse(user, usersz);
        OPENSSL_cleanse(secret, secretsz);
    }
    return rc;
}

void rules_note_storage_error(struct ctx *c, long long rule_id, const char *message)
{
    struct perr ignore;
    db_exec(c->db, c->a, &st_note_storage_error, &ignore, rule_id, message);
}

void rules_note_error(struct ctx *c, long long rule_id, const char *message)
{
    struct perr ignore;
    db_exec(c->db, c->a, &st_note_error, &ignore, rule_id, message);
}

void rules_clear_error(struct ctx *c, long long rule_id)
{
    struct perr ignore;
    db_exec(c->db, c->a, &st_clear_error, &ignore, rule_id);
}

pier_err rules_for_repository(struct ctx *c, const char *name, long long rule_id,
                              struct cache_rule *rule, bool *found, struct perr *e)
{
    if (rule_id > 0) {
        pier_err rc = rules_get_id(c, rule_id, rule, e);
        *found = rc == PIER_OK;
        return rc == PIER_E_NAME_UNKNOWN ? PIER_OK : rc;
    }
    return rules_match(c, name, rule, found, e);
}

/* ---- the console's overview ---- */

static const struct db_stmt st_overview = {
    "rules_overview",
    "SELECT cr.prefix, cr.upstream_url, cr.upstream_registry, cr.upstream_prefix,"
    " cr.refresh_seconds, (cr.secret_enc IS NOT NULL OR cr.credential_arn IS NOT NULL),"
    " coalesce(cr.credential_arn, ''), coalesce(cr.last_error, ''),"
    " coalesce(extract(epoch FROM cr.last_error_at)::bigint, 0),"
    " coalesce(s.hits, 0), coalesce(s.misses, 0), coalesce(s.stale, 0),"
    " coalesce(s.upstream_bytes, 0), coalesce(s.served_bytes, 0), coalesce(s.upstream_errors, 0),"
    " (SELECT count(*) FROM repositories r WHERE r.rule_id = cr.id),"
    /* a layer several of the rule's repositories hold is one file: counted once */
    " (SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN (SELECT rb.digest"
    "   FROM repositories r JOIN repository_blobs rb ON rb.repository_id = r.id"
    "   WHERE r.rule_id = cr.id)),"
    " extract(epoch FROM cr.created_at)::bigint, coalesce(s.storage_errors, 0),"
    " coalesce(cr.last_storage_error, ''),"
    " coalesce(extract(epoch FROM cr.last_storage_error_at)::bigint, 0),"
    " coalesce(cr.max_bytes, 0), coalesce(s.budget_expired, 0),"
    " coalesce(s.budget_reclaimed_bytes, 0),"
    " coalesce(extract(epoch FROM s.budget_last_expired_at)::bigint, 0),"
    " (SELECT coalesce(extract(epoch FROM min(coalesce(m.last_pulled_at, m.created_at)))::bigint, 0)"
    "   FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE r.rule_id = cr.id),"
    " cr.id, cr.negative_seconds, cr.ca_bundle IS NOT NULL,"
    " coalesce((SELECT string_agg(m.registry, ',' ORDER BY m.position)"
    "   FROM cache_rule_mirrors m WHERE m.rule_id = cr.id), ''), cr.default_mirror"
    " FROM cache_rules cr LEFT JOIN cache_stats s ON s.rule_id = cr.id ORDER BY cr.prefix",
    0};

pier_err rules_overview(struct ctx *c, struct rule_overview **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_overview, e);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        struct rule_overview *o = &(*out)[i];
        o->prefix = PQgetvalue(res, i, 0);
        o->upstream_url = PQgetvalue(res, i, 1);
        o->upstream_registry = PQgetvalue(res, i, 2);
        o->upstream_prefix = PQgetvalue(res, i, 3);
        o->refresh_seconds = db_int(res, i, 4);
        o->has_credentials = PQgetvalue(res, i, 5)[0] == 't';
        o->credential_arn = PQgetvalue(res, i, 6);
        o->last_error = PQgetvalue(res, i, 7);
        o->last_error_at = db_int(res, i, 8);
        o->hits = db_int(res, i, 9);
        o->misses = db_int(res, i, 10);
        o->stale = db_int(res, i, 11);
        o->upstream_bytes = db_int(res, i, 12);
        o->served_bytes = db_int(res, i, 13);
        o->upstream_errors = db_int(res, i, 14);
        o->repositories = db_int(res, i, 15);
        o->bytes_cached = db_int(res, i, 16);
        o->created_at = db_int(res, i, 17);
        o->storage_errors = db_int(res, i, 18);
        o->last_storage_error = PQgetvalue(res, i, 19);
        o->last_storage_error_at = db_int(res, i, 20);
        o->max_bytes = db_int(res, i, 21);
        o->budget_expired = db_int(res, i, 22);
        o->budget_reclaimed = db_int(res, i, 23);
        o->budget_last_expired_at = db_int(res, i, 24);
        o->oldest_last_pull = db_int(res, i, 25);
        o->id = db_int(res, i, 26);
        o->negative_seconds = db_int(res, i, 27);
        o->has_ca_bundle = PQgetvalue(res, i, 28)[0] == 't';
        o->mirrors = PQgetvalue(res, i, 29);
        o->default_mirror = PQgetvalue(res, i, 30)[0] == 't';
    }
    return PIER_OK;
}
