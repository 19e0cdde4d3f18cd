/* ops_registry: registry-wide operations — authorization tokens, the
 * registry, its policy, and pull-through cache rules. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "auth/authn.h"
#include "auth/authz.h"
#include "auth/secrets.h"
#include "auth/token.h"
#include "cache/health.h"
#include "cache/rulechange.h"
#include "store/rules.h"
#include "cache/upstream.h"
#include "ecrapi/api.h"

#define LOGIN_LIFETIME (12 * 3600)

void op_get_authorization_token(struct api *x)
{
    if (!api_authorize(x, NULL))
        return;
    json_t *ids = json_object_get(x->in, "registryIds");
    if (ids && !json_is_array(ids)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "registryIds must be a list");
        return;
    }
    const struct identity *who = x->c->who;
    json_t *claims = json_pack("{s:s, s:I}", "sub", who->p.arn, "pid", (json_int_t)who->p.id);
    /* The password dies with the access key it was made with, and never
     * outlives the session (console) that asked for it. */
    if (who->key_id[0])
        json_object_set_new(claims, "kid", json_string(who->key_id));
    long lifetime = LOGIN_LIFETIME;
    long long left = who->expires - (long long)time(NULL);
    if (who->expires > 0 && left < lifetime)
        lifetime = left > 1 ? (long)left : 1;
    char *tok = token_sign(x->r->a, x->c->tk, TOKEN_LOGIN, claims, lifetime);
    json_decref(claims);
    if (!tok) {
        api_fail(x, ECR_EXC_SERVER, "tokens are not available: no server key");
        return;
    }
    char *plain = arena_printf(x->r->a, "AWS:%s", tok);
    size_t n = strlen(plain);
    char *b64 = arena_alloc(x->r->a, 4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, (int)n);
    json_t *data = json_pack("{s:s, s:o, s:s}", "authorizationToken", b64, "expiresAt",
                             api_time(((long long)time(NULL) + lifetime) * 1000), "proxyEndpoint",
                             authn_public_url(x->c, x->r));
    json_object_set_new(x->out, "authorizationData", json_pack("[o]", data));
}

void op_describe_registry(struct api *x)
{
    if (!api_authorize(x, NULL))
        return;
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "replicationConfiguration", json_pack("{s:[]}", "rules"));
}

static void registry_policy_out(struct api *x, const char *doc)
{
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "policyText", json_string(doc));
}

void op_put_registry_policy(struct api *x)
{
    const char *doc = api_str(x, "policyText", true, 10240);
    if (!doc || !api_authorize(x, NULL))
        return;
    struct perr e;
    if (registry_policy_put(x->c, doc, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    registry_policy_out(x, doc);
}

void op_get_registry_policy(struct api *x)
{
    if (!api_authorize(x, NULL))
        return;
    struct perr e;
    const char *doc;
    if (registry_policy_get(x->c, &doc, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_REGISTRY_POLICY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    registry_policy_out(x, doc);
}

void op_delete_registry_policy(struct api *x)
{
    if (!api_authorize(x, NULL))
        return;
    struct perr e;
    const char *doc;
    if (registry_policy_get(x->c, &doc, &e) != PIER_OK ||
        registry_policy_delete(x->c, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_REGISTRY_POLICY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    registry_policy_out(x, doc);
}

/* ---- pull-through cache rules ----
 * Pier's extensions, read by Create/UpdatePullThroughCacheRule and echoed by
 * them and by Describe: pierMaxBytes, the rule's byte budget (0: none; echoed
 * when set); pierRefreshSeconds and pierNegativeSeconds; pierCaBundle (PEM,
 * "" removes it); mirrorRegistries, the registries the rule mirrors (a list
 * of host[:port]; [] clears), and defaultMirror (mirror mode, docs/mirror.md;
 * both echoed only when the rule mirrors a registry or is the default
 * mirror); on Update also pierUpstreamRegistryUrl (a new upstream) and
 * pierRemoveCredentials (true: the rule sends no credentials any more).
 * Describe adds pierHasCredentials and pierUpstreamHealth (the upstream's
 * health now, cache/health.h); Validate adds pierFailureClass and, when
 * rate-limited, pierRetryAfterSeconds. The SDKs and the aws CLI ignore
 * output members their model lacks; they do not send unknown input members,
 * so these are set with a plain signed request, pierctl or the console. */

#define RULE_EXT_MAX_BYTES "pierMaxBytes"
#define RULE_EXT_SECONDS_MAX (365LL * 86400)
#define RULE_EXT_MIRRORS "mirrorRegistries"
#define RULE_EXT_DEFAULT_MIRROR "defaultMirror"

static void budget_json(json_t *j, const struct cache_rule *r)
{
    if (r->max_bytes > 0)
        json_object_set_new(j, RULE_EXT_MAX_BYTES, json_integer(r->max_bytes));
    json_object_set_new(j, "pierRefreshSeconds", json_integer(r->refresh_seconds));
    json_object_set_new(j, "pierNegativeSeconds", json_integer(r->negative_seconds));
    if (r->ca_bundle)
        json_object_set_new(j, "pierCaBundle", json_string(r->ca_bundle));
    /* The mirror fields only on a rule in mirror mode, as pierMaxBytes only
     * with a budget. */
    if (r->n_mirrors == 0 && !r->default_mirror)
        return;
    json_t *m = json_array();
    for (int i = 0; i < r->n_mirrors; i++)
        json_array_append_new(m, json_string(r->mirrors[i]));
    json_object_set_new(j, RULE_EXT_MIRRORS, m);
    json_object_set_new(j, RULE_EXT_DEFAULT_MIRROR, json_boolean(r->default_mirror));
}

/* mirrorRegistries (absent: unchanged) into r. */
static bool read_mirrors(struct api *x, struct cache_rule *r)
{
    json_t *v = json_object_get(x->in, RULE_EXT_MIRRORS);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_array(v) || json_array_size(v) > RULE_MIRRORS_MAX)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                        RULE_EXT_MIRRORS " must be a list of at most %d registry host names",
                        RULE_MIRRORS_MAX);
    size_t need = 1, i;
    json_t *h;
    json_array_foreach(v, i, h)
    {
        const char *s = json_string_value(h);
        if (!s || !*s || strchr(s, ','))
            return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                            RULE_EXT_MIRRORS " must hold registry host names such as docker.io "
                                             "(item %zu is not one)",
                            i);
        need += strlen(s) + 1;
    }
    char *list = arena_alloc(x->r->a, need);
    list[0] = '\0';
    size_t at = 0;
    json_array_foreach(v, i, h)
    {
        size_t l = strlen(json_string_value(h));
        if (i)
            list[at++] = ',';
        memcpy(list + at, json_string_value(h), l + 1);
        at += l;
    }
    struct perr e;
    if (rule_set_mirrors(r, list, &e) != PIER_OK)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s", e.msg);
    return true;
}

/* A rule as ECR describes it: upstreamRegistryUrl as it was written, and
 * upstreamRegistry only when one of ECR's values describes the upstream (an
 * upstream none of them fits, "oci" in Pier, goes without the field). */
static json_t *rule_json(struct api *x, const struct cache_rule *r, bool updated)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o}", "ecrRepositoryPrefix", r->prefix,
                          "upstreamRegistryUrl", r->upstream_url_given, "registryId",
                          x->c->cfg->account_id, "upstreamRepositoryPrefix", r->upstream_prefix,
                          "createdAt", api_time(r->created_ms));
    if (rule_registry_is_ecr(r->upstream_registry))
        json_object_set_new(j, "upstreamRegistry", json_string(r->upstream_registry));
    if (r->credential_arn[0])
        json_object_set_new(j, "credentialArn", json_string(r->credential_arn));
    if (r->custom_role_arn[0])
        json_object_set_new(j, "customRoleArn", json_string(r->custom_role_arn));
    if (updated)
        json_object_set_new(j, "updatedAt", api_time(r->updated_ms));
    budget_json(j, r);
    return j;
}

static void copy_rule_json(struct api *x, json_t *j)
{
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) json_object_set(x->out, k, v);
    json_decref(j);
}

/* credentialArn must name an existing ecr-pullthroughcache/ secret. */
static bool check_credential_arn(struct api *x, const char *arn)
{
    if (!arn)
        return true;
    if (strncmp(arn, "arn:aws:secretsmanager:", 23) != 0 ||
        !strstr(arn, ":secret:ecr-pullthroughcache/"))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                        "credentialArn must be the ARN of a Secrets Manager secret named "
                        "ecr-pullthroughcache/...");
    json_t *meta;
    struct perr e;
    if (secret_describe(x->c, arn, &meta, &e) != PIER_OK)
        return api_fail(x,
                        e.code == PIER_E_NAME_UNKNOWN ? ECR_EXC_SECRET_NOT_FOUND : ECR_EXC_SERVER,
                        "The specified secret %s could not be found", arn);
    json_decref(meta);
    return true;
}

/* r: the defaults (create) or the stored rule (update); the request's
 * fields go over it. *clear_creds (update): pierRemoveCredentials. */
static bool read_rule_fields(struct api *x, struct cache_rule *r, bool create, bool *clear_creds)
{
    const char *prefix = api_str(x, "ecrRepositoryPrefix", true, 30);
    const char *url = create ? api_str(x, "upstreamRegistryUrl", true, RULE_URL_MAX - 1)
                             : api_str(x, "pierUpstreamRegistryUrl", false, RULE_URL_MAX - 1);
    const char *ca = api_str(x, "pierCaBundle", false, RULE_CA_MAX);
    long long refresh = r->refresh_seconds, negative = r->negative_seconds;
    bool remove = false;
    if (x->err_type || !api_int(x, "pierRefreshSeconds", 0, RULE_EXT_SECONDS_MAX, &refresh) ||
        !api_int(x, "pierNegativeSeconds", 0, 7LL * 86400, &negative) ||
        (!create && !api_bool(x, "pierRemoveCredentials", &remove)))
        return false;
    const char *kind = api_str(x, "upstreamRegistry", false, 39);
    const char *cred = api_str(x, "credentialArn", false, RULE_ARN_MAX - 1);
    const char *role = api_str(x, "customRoleArn", false, RULE_ARN_MAX - 1);
    const char *upfx = api_str(x, "upstreamRepositoryPrefix", false, 30);
    long long max_bytes = r->max_bytes; /* absent: none, or unchanged */
    if (x->err_type || !api_int(x, RULE_EXT_MAX_BYTES, 0, RULE_BUDGET_MAX, &max_bytes) ||
        !api_bool(x, RULE_EXT_DEFAULT_MIRROR, &r->default_mirror) || !read_mirrors(x, r) ||
        !api_registry_id(x))
        return false;
    /* The model's enum only: Pier's "oci" is what an upstream none of its
     * values fits gets when upstreamRegistry is left out. */
    if (kind && !rule_registry_is_ecr(kind))
        return api_fail(
            x, ECR_EXC_UNSUPPORTED_UPSTREAM_REGISTRY,
            "upstreamRegistry '%s' is not one of ecr, ecr-public, quay, k8s, docker-hub, "
            "github-container-registry, azure-container-registry, "
            "gitlab-container-registry, chainguard (leave it out for any other OCI "
            "registry)",
            kind);
    if (create) {
        r->upstream_registry[0] = '\0';
        snprintf(r->upstream_url, sizeof r->upstream_url, "%s", url);
    } else if (url) {
        /* A new upstream: written as given, its kind inferred again unless named. */
        snprintf(r->upstream_url, sizeof r->upstream_url, "%s", url);
        r->upstream_url_given[0] = '\0';
        if (!kind)
            r->upstream_registry[0] = '\0';
    }
    if (remove && cred)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                        "pierRemoveCredentials and credentialArn cannot go together");
    if (remove) {
        r->credential_arn[0] = '\0';
        *clear_creds = true;
    }
    if (ca)
        r->ca_bundle = ca[0] ? ca : NULL;
    r->refresh_seconds = (int)refresh;
    r->negative_seconds = (int)negative;
    r->max_bytes = max_bytes;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    if (kind)
        snprintf(r->upstream_registry, sizeof r->upstream_registry, "%s", kind);
    if (cred) {
        if (!check_credential_arn(x, cred))
            return false;
        /* A rule sends its secret to its upstream: whoever attaches one must
         * be allowed to read it, or rule permissions would hand out every
         * stored credential to any server. */
        struct perr e;
        if (authz_check_arn(x->c, "secretsmanager:GetSecretValue", cred, &e) != PIER_OK)
            return api_fail(x, ECR_EXC_ACCESS_DENIED,
                            "%s (a rule sends its credentials to its upstream, so attaching a "
                            "secret needs secretsmanager:GetSecretValue on it)",
                            e.msg);
        snprintf(r->credential_arn, sizeof r->credential_arn, "%s", cred);
    }
    if (role)
        snprintf(r->custom_role_arn, sizeof r->custom_role_arn, "%s", role);
    if (upfx)
        snprintf(r->upstream_prefix, sizeof r->upstream_prefix, "%s", upfx);
    return true;
}

static bool rule_error(struct api *x, const struct perr *e)
{
    if (e->code == PIER_E_BAD_REQUEST && strstr(e->msg, "upstreamRegistry '"))
        return api_fail(x, ECR_EXC_UNSUPPORTED_UPSTREAM_REGISTRY, "%s", e->msg);
    /* A prefix that holds pushed repositories (the detail names one): the
     * request cannot be done as it is, which the model calls an invalid
     * parameter; the rule does not exist already. */
    if (e->code == PIER_E_CONFLICT && e->detail[0])
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s", e->msg);
    return api_perr(x, e, ECR_EXC_PTC_RULE_NOT_FOUND, ECR_EXC_PTC_RULE_ALREADY_EXISTS);
}

void op_create_ptc_rule(struct api *x)
{
    struct cache_rule r;
    rule_defaults(&r);
    bool unused = false;
    if (!api_authorize(x, NULL) || !read_rule_fields(x, &r, true, &unused))
        return;
    struct perr e;
    if (rules_create(x->c, &r, NULL, NULL, &e) != PIER_OK) {
        rule_error(x, &e);
        return;
    }
    struct cache_rule now;
    if (rules_get(x->c, r.prefix, &now, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    copy_rule_json(x, rule_json(x, &now, false));
}

/* A rule as Describe answers it: with its credentials' kind and the
 * upstream's health now (absent when the database could not say). */
static json_t *described(struct api *x, const struct cache_rule *r)
{
    json_t *j = rule_json(x, r, true);
    json_object_set_new(j, "pierHasCredentials", json_boolean(upstream_rule_has_credentials(r)));
    struct upstream_health h;
    struct perr e;
    if (health_get(x->c, r->id, &h, &e) == PIER_OK)
        json_object_set_new(j, "pierUpstreamHealth", health_json(&h));
    return j;
}

void op_describe_ptc_rules(struct api *x)
{
    long long limit, offset;
    if (!api_authorize(x, NULL) || !api_registry_id(x) || !api_page(x, 1000, &limit, &offset))
        return;
    json_t *want = json_object_get(x->in, "ecrRepositoryPrefixes");
    if (want && (!json_is_array(want) || json_array_size(want) > 100)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "ecrRepositoryPrefixes must be a list of up to 100");
        return;
    }
    struct perr e;
    json_t *all = json_array();
    if (rules_list(x->c, all, &e) != PIER_OK) {
        json_decref(all);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_t *list = json_array();
    size_t i;
    if (want) {
        json_t *p;
        json_array_foreach(want, i, p)
        {
            if (!json_is_string(p)) {
                api_fail(x, ECR_EXC_INVALID_PARAMETER, "ecrRepositoryPrefixes must hold strings");
                break;
            }
            struct cache_rule r;
            if (rules_get(x->c, json_string_value(p), &r, &e) != PIER_OK) {
                rule_error(x, &e);
                break;
            }
            json_array_append_new(list, described(x, &r));
        }
    } else {
        json_t *v;
        json_array_foreach(all, i, v)
        {
            if ((long long)i < offset || (long long)i >= offset + limit)
                continue;
            struct cache_rule r;
            if (rules_get(x->c, json_string_value(json_object_get(v, "ecrRepositoryPrefix")), &r,
                          &e) == PIER_OK)
                json_array_append_new(list, described(x, &r));
        }
        api_next(x, offset, limit, (long long)json_array_size(all) > offset + limit);
    }
    json_decref(all);
    json_object_set_new(x->out, "pullThroughCacheRules", list);
}

void op_update_ptc_rule(struct api *x)
{
    if (!api_authorize(x, NULL))
        return;
    const char *prefix = api_str(x, "ecrRepositoryPrefix", true, 30);
    if (!prefix)
        return;
    struct perr e;
    struct cache_rule r;
    if (rules_get(x->c, prefix, &r, &e) != PIER_OK) {
        rule_error(x, &e);
        return;
    }
    bool clear_creds = false;
    if (!read_rule_fields(x, &r, false, &clear_creds))
        return;
    if (cache_rule_update(x->c, &r, clear_creds, NULL, NULL, &e) != PIER_OK ||
        rules_get(x->c, prefix, &r, &e) != PIER_OK) {
        rule_error(x, &e);
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:o, s:s}", "ecrRepositoryPrefix", r.prefix, "registryId",
                          x->c->cfg->account_id, "updatedAt", api_time(r.updated_ms),
                          "upstreamRepositoryPrefix", r.upstream_prefix);
    if (r.credential_arn[0])
        json_object_set_new(j, "credentialArn", json_string(r.credential_arn));
    if (r.custom_role_arn[0])
        json_object_set_new(j, "customRoleArn", json_string(r.custom_role_arn));
    json_object_set_new(
        j, "pierUpstreamRegistryUrl",
        json_string(r.upstream_url_given[0] ? r.upstream_url_given : r.upstream_url));
    budget_json(j, &r);
    copy_rule_json(x, j);
}

void op_delete_ptc_rule(struct api *x)
{
    const char *prefix = api_str(x, "ecrRepositoryPrefix", true, 30);
    if (!prefix || !api_authorize(x, NULL) || !api_registry_id(x))
        return;
    struct perr e;
    struct cache_rule r;
    if (rules_get(x->c, prefix, &r, &e) != PIER_OK || rules_delete(x->c, prefix, &e) != PIER_OK) {
        rule_error(x, &e);
        return;
    }
    json_t *j = rule_json(x, &r, false);
    json_object_del(j, "upstreamRegistry"); /* not in DeletePullThroughCacheRule's answer */
    json_object_del(j, RULE_EXT_MIRRORS);   /* the extensions belong to Create/Update/Describe */
    json_object_del(j, RULE_EXT_DEFAULT_MIRROR);
    copy_rule_json(x, j);
}

void op_validate_ptc_rule(struct api *x)
{
    const char *prefix = api_str(x, "ecrRepositoryPrefix", true, 30);
    if (!prefix || !api_authorize(x, NULL) || !api_registry_id(x))
        return;
    struct perr e;
    struct cache_rule r;
    if (rules_get(x->c, prefix, &r, &e) != PIER_OK) {
        rule_error(x, &e);
        return;
    }
    struct upstream_resp resp;
    bool ok = upstream_check(x->c, &r, &resp, &e) == PIER_OK;
    json_t *j = rule_json(x, &r, false);
    json_object_del(j, "createdAt");
    json_object_del(j, "upstreamRegistry");
    json_object_del(j, "pierCaBundle");
    json_object_del(j, "pierRefreshSeconds");
    json_object_del(j, "pierNegativeSeconds");
    json_object_del(j, RULE_EXT_MIRRORS);
    json_object_del(j, RULE_EXT_DEFAULT_MIRROR);
    health_validation_json(x->c->a, j, &resp, ok, upstream_rule_has_credentials(&r));
    /* Validation is a request to the upstream like any other, and a success
     * ends "failing" at once, on every node. */
    health_note(x->c, r.id, &resp, upstream_rule_has_credentials(&r), true);
    if (!ok)
        rules_note_error(x->c, r.id, resp.message);
    else
        rules_clear_error(x->c, r.id);
    copy_rule_json(x, j);
}
