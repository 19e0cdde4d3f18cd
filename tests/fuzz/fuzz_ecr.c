/* Fuzz target: ECR / Secrets Manager JSON requests, decoded and validated as
 * far as that runs without the database (ecrapi/api.c, ops_*.c).
 * Input: line 1 is the operation (X-Amz-Target, with or without its
 * "AmazonEC2ContainerRegistry_V20150921." or "secretsmanager." prefix),
 * the rest is the request body.
 *
 * The operations interleave checks with authorization and queries, so they
 * cannot run here as a whole. This harness decodes the body as ecrapi_handle
 * does and then applies, per operation, the checks that operation makes on
 * its input before (or instead of) touching the database, through the same
 * functions: api_str/api_int/api_bool/api_repo_name/api_page/
 * api_registry_id, the grammars, policy_parse for policy documents,
 * rule_check_prefix/rule_normalize_url/rule_check_registry/
 * rule_check_upstream_prefix/rule_upstream_name for pull-through cache
 * rules, templates_check for creation templates, secret_check_name, and
 * manifest_accepts for acceptedMediaTypes. Field names, limits and order
 * follow ops_*.c; keep them in step when an operation changes.
 *
 * Checks: errors are well-formed, accepted strings respect their limits,
 * accepted names pass the grammar, pagination tokens round-trip, normalized
 * upstream URLs are fixed points, mapped upstream names are valid. */
#include <string.h>
#include <jansson.h>
#include "auth/policy.h"
#include "auth/secrets.h"
#include "store/rules.h"
#include "ecrapi/api.h"
#include "fuzz.h"
#include "lib/grammar.h"
#include "store/manifest.h"
#include "store/templates.h"

#define ECR_PREFIX "AmazonEC2ContainerRegistry_V20150921."
#define SM_PREFIX "secretsmanager."

static struct config cfg;

static const char *str(struct api *x, const char *field, bool required, size_t maxlen)
{
    const char *s = api_str(x, field, required, maxlen);
    if (s) {
        FUZZ_ASSERT(strlen(s) <= maxlen);
        FUZZ_ASSERT(!required || *s);
    } else if (required) {
        FUZZ_ASSERT(x->err_type != ECR_EXC_NONE);
    }
    return s;
}

static const char *repo_name(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (name) {
        struct perr e;
        FUZZ_ASSERT(strlen(name) >= 2 && strlen(name) <= 256);
        FUZZ_ASSERT(grammar_name(name, &e) == PIER_OK);
    } else {
        FUZZ_ASSERT(x->err_type != ECR_EXC_NONE);
    }
    return name;
}

/* api_page, and the nextToken it would issue read back by api_page. */
static void page(struct api *x, long long max)
{
    long long limit, offset;
    if (!api_page(x, max, &limit, &offset))
        return;
    FUZZ_ASSERT(limit >= 1 && limit <= max && offset >= 0 && offset <= 1LL << 40);
    json_t *out = json_object();
    struct api y = {.c = x->c, .op = x->op, .out = out};
    api_next(&y, offset, limit, true);
    json_t *in = json_pack("{s:O}", "nextToken", json_object_get(out, "nextToken"));
    struct api z = {.c = x->c, .op = x->op, .in = in};
    long long l2, o2;
    FUZZ_ASSERT(api_page(&z, max, &l2, &o2) || offset + limit > 1LL << 40);
    if (!z.err_type)
        FUZZ_ASSERT(o2 == offset + limit && l2 == max);
    json_decref(in);
    json_decref(out);
}

static void policy_text(struct api *x)
{
    const char *doc = str(x, "policyText", true, 10240);
    if (!doc)
        return;
    struct policy *p;
    struct perr e;
    if (policy_parse(doc, strlen(doc), POLICY_RESOURCE, &p, &e) == PIER_OK)
        policy_free(p);
}

static void mutability(struct api *x, bool required)
{
    const char *mut = str(x, "imageTagMutability", required, 16);
    if (mut && strcmp(mut, "MUTABLE") && strcmp(mut, "IMMUTABLE"))
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageTagMutability must be MUTABLE or IMMUTABLE");
}

/* put_tags (ops_repos.c) before its queries. */
static void tags(struct api *x, json_t *t)
{
    if (!t)
        return;
    if (!json_is_array(t)) {
        api_fail(x, ECR_EXC_INVALID_TAG_PARAMETER, "tags must be a list of {Key, Value}");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v) {
        const char *k = json_string_value(json_object_get(v, "Key"));
        const char *val = json_string_value(json_object_get(v, "Value"));
        if (!k || !*k || strlen(k) > 128 || (val && strlen(val) > 256) || strncmp(k, "aws:", 4) == 0) {
            api_fail(x, ECR_EXC_INVALID_TAG_PARAMETER, "tags[%zu]: bad key or value", i);
            return;
        }
    }
}

/* resolve (ops_repos.c) before its query: an imageId's digest and tag. */
static void image_ids(struct api *x, json_t *ids, bool required)
{
    if (!ids && !required)
        return;
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        if (required)
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds must list 1 to 100 images");
        return;
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        const char *d = json_string_value(json_object_get(id, "imageDigest"));
        const char *t = json_string_value(json_object_get(id, "imageTag"));
        struct perr e;
        if (d && grammar_digest(d, NULL, &e) == PIER_OK)
            FUZZ_ASSERT(strlen(d) <= DIGEST_MAX_LEN);
        if (t && grammar_tag(t, &e) == PIER_OK)
            FUZZ_ASSERT(strlen(t) <= TAG_MAX_LEN);
    }
}

static void tag_status(struct api *x)
{
    json_t *filter = json_object_get(x->in, "filter");
    if (!filter)
        return;
    const char *status = json_string_value(json_object_get(filter, "tagStatus"));
    if (!status || (strcmp(status, "TAGGED") && strcmp(status, "UNTAGGED") && strcmp(status, "ANY")))
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "filter.tagStatus must be TAGGED, UNTAGGED or ANY");
}

/* op_batch_get_image's Accept value from acceptedMediaTypes. */
static void accepted_media_types(struct api *x)
{
    json_t *accepted = json_object_get(x->in, "acceptedMediaTypes");
    char accept[2048] = "";
    size_t i;
    json_t *v;
    json_array_foreach(accepted, i, v) {
        if (json_is_string(v) && strlen(accept) + strlen(json_string_value(v)) + 3 < sizeof accept) {
            if (accept[0])
                strcat(accept, ", ");
            strcat(accept, json_string_value(v));
        }
    }
    static const char *const types[] = {MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST,
                                        MT_DOCKER_LIST};
    for (size_t k = 0; k < 4; k++)
        (void)manifest_accepts(accept, types[k]);
}

/* read_rule_fields (ops_registry.c) and the checks rules_create/rules_update
 * run before their queries (validate in store/rules.c). */
static void rule(struct api *x, bool create)
{
    const char *prefix = str(x, "ecrRepositoryPrefix", true, 30);
    const char *url = create ? str(x, "upstreamRegistryUrl", true, RULE_URL_MAX - 1) : NULL;
    const char *kind = str(x, "upstreamRegistry", false, 39);
    const char *cred = str(x, "credentialArn", false, RULE_ARN_MAX - 1);
    const char *role = str(x, "customRoleArn", false, RULE_ARN_MAX - 1);
    const char *upfx = str(x, "upstreamRepositoryPrefix", false, 30);
    if (x->err_type || !api_registry_id(x))
        return;
    if (cred && (strncmp(cred, "arn:aws:secretsmanager:", 23) != 0 ||
                 !strstr(cred, ":secret:ecr-pullthroughcache/")))
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "credentialArn must name a secret");
    struct cache_rule r;
    rule_defaults(&r);
    r.upstream_registry[0] = '\0';
    snprintf(r.upstream_url, sizeof r.upstream_url, "%s", url ? url : "https://registry-1.docker.io");
    snprintf(r.prefix, sizeof r.prefix, "%s", prefix);
    if (kind)
        snprintf(r.upstream_registry, sizeof r.upstream_registry, "%s", kind);
    if (role)
        snprintf(r.custom_role_arn, sizeof r.custom_role_arn, "%s", role);
    if (upfx)
        snprintf(r.upstream_prefix, sizeof r.upstream_prefix, "%s", upfx);

    struct perr e;
    char norm[RULE_URL_MAX], again[RULE_URL_MAX], kindbuf[40];
    if (rule_check_prefix(r.prefix, &e) != PIER_OK || rule_check_upstream_prefix(r.upstream_prefix, &e) != PIER_OK)
        return;
    if (rule_normalize_url(r.upstream_url, norm, &e) != PIER_OK)
        return;
    FUZZ_ASSERT(!strncmp(norm, "https://", 8) || !strncmp(norm, "http://", 7));
    FUZZ_ASSERT(rule_normalize_url(norm, again, &e) == PIER_OK && !strcmp(norm, again));
    snprintf(r.upstream_url, sizeof r.upstream_url, "%s", norm);
    if (rule_check_registry(r.upstream_registry, r.upstream_url, kindbuf, &e) != PIER_OK)
        return;
    snprintf(r.upstream_registry, sizeof r.upstream_registry, "%s", kindbuf);

    /* Where a pull under the new rule would go upstream. */
    static const char *const rests[] = {"nginx", "library/nginx", "team/app/v2"};
    for (size_t i = 0; i < 3; i++) {
        char local[128], up[NAME_MAX_LEN + 1];
        if (strcmp(r.prefix, "ROOT") == 0)
            snprintf(local, sizeof local, "%s", rests[i]);
        else
            snprintf(local, sizeof local, "%s/%s", r.prefix, rests[i]);
        if (rule_upstream_name(&r, local, up, &e) == PIER_OK)
            FUZZ_ASSERT(grammar_name(up, &e) == PIER_OK);
    }
}

static void template(struct api *x)
{
    const char *prefix = str(x, "prefix", true, 256);
    if (!prefix)
        return;
    struct perr e;
    if (templates_check(prefix, x->in, &e) != PIER_OK)
        FUZZ_ASSERT(e.code == PIER_E_BAD_REQUEST && memchr(e.msg, '\0', sizeof e.msg));
}

/* arn_repo (ops_repos.c). */
static void resource_arn(struct api *x)
{
    const char *arn = str(x, "resourceArn", true, 1024);
    if (!arn)
        return;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "arn:aws:ecr:%s:%s:repository/", cfg.region, cfg.account_id);
    struct perr e;
    if (strncmp(arn, prefix, strlen(prefix)) != 0 || grammar_name(arn + strlen(prefix), &e) != PIER_OK)
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "resourceArn must be a repository ARN");
}

static void secret_name(struct api *x)
{
    const char *name = str(x, "Name", true, 512);
    str(x, "SecretString", false, SECRET_VALUE_MAX);
    str(x, "Description", false, 2048);
    struct perr e;
    if (name && secret_check_name(name, &e) == PIER_OK)
        FUZZ_ASSERT(strlen(name) >= 1 && strlen(name) <= 512);
}

static void operation(struct api *x, const char *op)
{
    json_t *in = x->in;
    if (!strcmp(op, "GetAuthorizationToken")) {
        json_t *ids = json_object_get(in, "registryIds");
        if (ids && !json_is_array(ids))
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "registryIds must be a list");
    } else if (!strcmp(op, "PutRegistryPolicy")) {
        policy_text(x);
    } else if (!strcmp(op, "CreatePullThroughCacheRule")) {
        rule(x, true);
    } else if (!strcmp(op, "UpdatePullThroughCacheRule")) {
        rule(x, false);
    } else if (!strcmp(op, "DescribePullThroughCacheRules")) {
        api_registry_id(x);
        page(x, 1000);
        json_t *want = json_object_get(in, "ecrRepositoryPrefixes");
        if (want && (!json_is_array(want) || json_array_size(want) > 100))
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "ecrRepositoryPrefixes: up to 100");
    } else if (!strcmp(op, "DeletePullThroughCacheRule") || !strcmp(op, "ValidatePullThroughCacheRule")) {
        str(x, "ecrRepositoryPrefix", true, 30);
        api_registry_id(x);
    } else if (!strcmp(op, "CreateRepository")) {
        repo_name(x);
        mutability(x, false);
        api_registry_id(x);
        json_t *enc = json_object_get(in, "encryptionConfiguration");
        if (enc) {
            const char *etype = json_string_value(json_object_get(enc, "encryptionType"));
            const char *kms = json_string_value(json_object_get(enc, "kmsKey"));
            if (!etype || (strcmp(etype, "AES256") && strcmp(etype, "KMS") && strcmp(etype, "KMS_DSSE")))
                api_fail(x, ECR_EXC_INVALID_PARAMETER, "encryptionType");
            else if (!strcmp(etype, "AES256") && kms)
                api_fail(x, ECR_EXC_INVALID_PARAMETER, "kmsKey");
        }
        tags(x, json_object_get(in, "tags"));
    } else if (!strcmp(op, "DescribeRepositories")) {
        api_registry_id(x);
        page(x, 1000);
        json_t *names = json_object_get(in, "repositoryNames");
        if (names && json_is_array(names) && json_array_size(names) <= 100) {
            size_t i;
            json_t *n;
            json_array_foreach(names, i, n) {
                struct perr e;
                const char *name = json_string_value(n);
                if (name && grammar_name(name, &e) == PIER_OK)
                    FUZZ_ASSERT(strlen(name) <= NAME_MAX_LEN);
            }
        }
    } else if (!strcmp(op, "DeleteRepository")) {
        repo_name(x);
        bool force = false;
        api_bool(x, "force", &force);
        api_registry_id(x);
    } else if (!strcmp(op, "SetRepositoryPolicy")) {
        repo_name(x);
        policy_text(x);
        api_registry_id(x);
    } else if (!strcmp(op, "GetRepositoryPolicy") || !strcmp(op, "DeleteRepositoryPolicy")) {
        repo_name(x);
        api_registry_id(x);
    } else if (!strcmp(op, "ListImages")) {
        repo_name(x);
        api_registry_id(x);
        page(x, 1000);
        tag_status(x);
    } else if (!strcmp(op, "DescribeImages")) {
        repo_name(x);
        api_registry_id(x);
        page(x, 1000);
        tag_status(x);
        image_ids(x, json_object_get(in, "imageIds"), false);
    } else if (!strcmp(op, "BatchGetImage")) {
        repo_name(x);
        api_registry_id(x);
        image_ids(x, json_object_get(in, "imageIds"), true);
        accepted_media_types(x);
    } else if (!strcmp(op, "BatchDeleteImage")) {
        repo_name(x);
        api_registry_id(x);
        image_ids(x, json_object_get(in, "imageIds"), true);
    } else if (!strcmp(op, "PutImageTagMutability")) {
        repo_name(x);
        mutability(x, true);
        api_registry_id(x);
    } else if (!strcmp(op, "CreateRepositoryCreationTemplate") ||
               !strcmp(op, "UpdateRepositoryCreationTemplate")) {
        template(x);
    } else if (!strcmp(op, "DeleteRepositoryCreationTemplate")) {
        str(x, "prefix", true, 256);
    } else if (!strcmp(op, "DescribeRepositoryCreationTemplates")) {
        page(x, 1000);
    } else if (!strcmp(op, "ListTagsForResource")) {
        resource_arn(x);
    } else if (!strcmp(op, "TagResource")) {
        resource_arn(x);
        json_t *t = json_object_get(in, "tags");
        if (!json_is_array(t))
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "tags is required");
        tags(x, t);
    } else if (!strcmp(op, "UntagResource")) {
        resource_arn(x);
        json_t *keys = json_object_get(in, "tagKeys");
        if (!json_is_array(keys))
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "tagKeys is required");
    } else if (!strcmp(op, "CreateSecret")) {
        secret_name(x);
        if (json_object_get(in, "SecretBinary"))
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "SecretBinary is not supported");
    } else if (!strcmp(op, "PutSecretValue")) {
        str(x, "SecretId", true, 2048);
        str(x, "SecretString", true, SECRET_VALUE_MAX);
    } else if (!strcmp(op, "DescribeSecret") || !strcmp(op, "DeleteSecret")) {
        str(x, "SecretId", true, 2048);
    } else if (!strcmp(op, "ListSecrets")) {
        long long limit = 100, offset = 0;
        const char *tok = str(x, "NextToken", false, 64);
        if (api_int(x, "MaxResults", 1, 100, &limit))
            FUZZ_ASSERT(limit >= 1 && limit <= 100);
        if (tok && (tok[0] != 'o' || !grammar_uint(tok + 1, 1LL << 40, &offset)))
            api_fail(x, ECR_EXC_INVALID_NEXT_TOKEN, "NextToken is not one this service issued");
    } else {
        /* Unknown or argument-free operations: the shared helpers still run. */
        repo_name(x);
        api_registry_id(x);
        page(x, 1000);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg.region[0])
        config_defaults(&cfg);
    const uint8_t *nl = memchr(data, '\n', size);
    size_t oplen = nl ? (size_t)(nl - data) : size;
    char *target = fuzz_strdup(data, oplen);
    const char *body = nl ? (const char *)nl + 1 : "";
    size_t len = nl ? size - oplen - 1 : 0;
    const char *op = target;
    if (!strncmp(op, ECR_PREFIX, strlen(ECR_PREFIX)))
        op += strlen(ECR_PREFIX);
    else if (!strncmp(op, SM_PREFIX, strlen(SM_PREFIX)))
        op += strlen(SM_PREFIX);

    /* As ecrapi_handle decodes the body. */
    json_error_t jerr;
    json_t *in = len ? json_loadb(body, len, 0, &jerr) : json_object();
    if (json_is_object(in)) {
        struct ctx c = {.cfg = &cfg};
        struct api x = {.c = &c, .op = op, .in = in, .out = json_object()};
        operation(&x, op);
        if (x.err_type) {
            FUZZ_ASSERT(ecr_exc_status(x.err_type) == 400 || ecr_exc_status(x.err_type) == 500);
            FUZZ_ASSERT(memchr(x.err_msg, '\0', sizeof x.err_msg) != NULL);
        }
        json_decref(x.out);
    }
    json_decref(in);
    free(target);
    return 0;
}
