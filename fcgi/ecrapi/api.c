/* api: request parsing, SigV4 authentication, dispatch and error mapping. */
#include "ecrapi/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "auth/authz.h"
#include "auth/policy.h"
#include "auth/principals.h"
#include "ecrapi/sigv4.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/audit.h"

#define API_MAX_BODY (1 << 20)
#define MAX_SKEW 900
#define ECR_PREFIX "AmazonEC2ContainerRegistry_V20150921."
#define SM_PREFIX "secretsmanager."
/* Significant digits of the JSON numbers in answers: the only ones are
 * timestamps, epoch seconds with milliseconds (13 digits until 2286). */
#define API_NUMBER_DIGITS 13

struct op {
    const char *name;
    void (*fn)(struct api *);
};

static const struct op ECR_OPS[] = {
    {"GetAuthorizationToken", op_get_authorization_token},
    {"DescribeRegistry", op_describe_registry},
    {"PutRegistryPolicy", op_put_registry_policy},
    {"GetRegistryPolicy", op_get_registry_policy},
    {"DeleteRegistryPolicy", op_delete_registry_policy},
    {"CreatePullThroughCacheRule", op_create_ptc_rule},
    {"DescribePullThroughCacheRules", op_describe_ptc_rules},
    {"UpdatePullThroughCacheRule", op_update_ptc_rule},
    {"DeletePullThroughCacheRule", op_delete_ptc_rule},
    {"ValidatePullThroughCacheRule", op_validate_ptc_rule},
    {"CreateRepository", op_create_repository},
    {"DescribeRepositories", op_describe_repositories},
    {"DeleteRepository", op_delete_repository},
    {"SetRepositoryPolicy", op_set_repository_policy},
    {"GetRepositoryPolicy", op_get_repository_policy},
    {"DeleteRepositoryPolicy", op_delete_repository_policy},
    {"ListImages", op_list_images},
    {"DescribeImages", op_describe_images},
    {"BatchGetImage", op_batch_get_image},
    {"BatchDeleteImage", op_batch_delete_image},
    {"PutImageTagMutability", op_put_image_tag_mutability},
    {"PutLifecyclePolicy", op_put_lifecycle_policy},
    {"GetLifecyclePolicy", op_get_lifecycle_policy},
    {"DeleteLifecyclePolicy", op_delete_lifecycle_policy},
    {"StartLifecyclePolicyPreview", op_start_lifecycle_preview},
    {"GetLifecyclePolicyPreview", op_get_lifecycle_preview},
    {"CreateRepositoryCreationTemplate", op_create_template},
    {"DescribeRepositoryCreationTemplates", op_describe_templates},
    {"UpdateRepositoryCreationTemplate", op_update_template},
    {"DeleteRepositoryCreationTemplate", op_delete_template},
    {"ListTagsForResource", op_list_tags_for_resource},
    {"TagResource", op_tag_resource},
    {"UntagResource", op_untag_resource},
    /* ops_account.c */
    {"GetAccountSetting", op_get_account_setting},
    {"PutAccountSetting", op_put_account_setting},
    {"RegisterPullTimeUpdateExclusion", op_register_pull_time_exclusion},
    {"DeregisterPullTimeUpdateExclusion", op_deregister_pull_time_exclusion},
    {"ListPullTimeUpdateExclusions", op_list_pull_time_exclusions},
    /* ops_referrers.c */
    {"ListImageReferrers", op_list_image_referrers},
    /* ops_unsupported.c */
    {"PutReplicationConfiguration", op_put_replication_configuration},
    {"DescribeImageReplicationStatus", op_describe_image_replication_status},
    {"StartImageScan", op_start_image_scan},
    {"DescribeImageScanFindings", op_describe_image_scan_findings},
    {"PutImageScanningConfiguration", op_put_image_scanning_configuration},
    {"PutRegistryScanningConfiguration", op_put_registry_scanning_configuration},
    {"GetRegistryScanningConfiguration", op_get_registry_scanning_configuration},
    {"BatchGetRepositoryScanningConfiguration", op_batch_get_repository_scanning_configuration},
    {"PutSigningConfiguration", op_put_signing_configuration},
    {"GetSigningConfiguration", op_get_signing_configuration},
    {"DeleteSigningConfiguration", op_delete_signing_configuration},
    {"DescribeImageSigningStatus", op_describe_image_signing_status},
    {"UpdateImageStorageClass", op_update_image_storage_class},
    {"BatchCheckLayerAvailability", op_batch_check_layer_availability},
    {"InitiateLayerUpload", op_initiate_layer_upload},
    {"UploadLayerPart", op_upload_layer_part},
    {"CompleteLayerUpload", op_complete_layer_upload},
    {"PutImage", op_put_image},
    {"GetDownloadUrlForLayer", op_get_download_url_for_layer},
};

static const struct op SM_OPS[] = {
    {"CreateSecret", op_sm_create_secret},
    {"PutSecretValue", op_sm_put_secret_value},
    {"DescribeSecret", op_sm_describe_secret},
    {"ListSecrets", op_sm_list_secrets},
    {"DeleteSecret", op_sm_delete_secret},
};

/* IAM: only through ecrapi_invoke (the console); IAM's own wire protocol
 * (query strings) is not served. */
static const struct op IAM_OPS[] = {
    {"ListUsers", op_iam_list_users},
    {"CreateUser", op_iam_create_user},
    {"DeleteUser", op_iam_delete_user},
    {"CreateAccessKey", op_iam_create_access_key},
    {"UpdateAccessKey", op_iam_update_access_key},
    {"DeleteAccessKey", op_iam_delete_access_key},
    {"ListUserPolicies", op_iam_list_user_policies},
    {"GetUserPolicy", op_iam_get_user_policy},
    {"PutUserPolicy", op_iam_put_user_policy},
    {"DeleteUserPolicy", op_iam_delete_user_policy},
    {"CreateLoginPassword", op_iam_create_login_password},
};

bool api_fail(struct api *x, enum ecr_exc exc, const char *fmt, ...)
{
    if (x->err_type)
        return false;
    x->err_type = exc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err_msg, sizeof x->err_msg, fmt, ap);
    va_end(ap);
    return false;
}

bool api_fail_fields(struct api *x, json_t *fields, enum ecr_exc exc, const char *fmt, ...)
{
    if (x->err_type) {
        json_decref(fields);
        return false;
    }
    x->err_type = exc;
    x->err_fields = fields;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err_msg, sizeof x->err_msg, fmt, ap);
    va_end(ap);
    return false;
}

bool api_perr(struct api *x, const struct perr *e, enum ecr_exc notfound, enum ecr_exc conflict)
{
    switch (e->code) {
    case PIER_E_NAME_UNKNOWN:
    case PIER_E_MANIFEST_UNKNOWN:
    case PIER_E_BLOB_UNKNOWN:
        return api_fail(x, notfound ? notfound : ECR_EXC_INVALID_PARAMETER, "%s", e->msg);
    case PIER_E_CONFLICT:
        return api_fail(x, conflict ? conflict : ECR_EXC_INVALID_PARAMETER, "%s", e->msg);
    case PIER_E_DENIED:
    case PIER_E_UNAUTHORIZED:
        return api_fail(x, ECR_EXC_ACCESS_DENIED, "%s", e->msg);
    case PIER_E_UNAVAILABLE: /* SDKs retry it, after Retry-After */
        return api_fail(x, ECR_EXC_SERVER_UNAVAILABLE, "%s", e->msg);
    case PIER_E_STORAGE_FULL:
        return api_fail(x, ECR_EXC_SERVER_STORAGE_FULL, "%s", e->msg);
    case PIER_E_INTERNAL:
        return api_fail(x, ECR_EXC_SERVER, "%s", e->msg);
    default:
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s", e->msg);
    }
}

const char *api_str(struct api *x, const char *field, bool required, size_t maxlen)
{
    json_t *v = json_object_get(x->in, field);
    if (!v || json_is_null(v)) {
        if (required)
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s is required", field);
        return NULL;
    }
    if (!json_is_string(v)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s must be a string", field);
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) > maxlen || (required && !*s)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s must be 1 to %zu characters", field, maxlen);
        return NULL;
    }
    return s;
}

bool api_int(struct api *x, const char *field, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(x->in, field);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s must be an integer from %lld to %lld",
                        field, lo, hi);
    *out = json_integer_value(v);
    return true;
}

bool api_bool(struct api *x, const char *field, bool *out)
{
    json_t *v = json_object_get(x->in, field);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s must be a boolean", field);
    *out = json_is_true(v);
    return true;
}

const char *api_repo_name(struct api *x, bool required)
{
    const char *name = api_str(x, "repositoryName", required, 256);
    if (!name)
        return NULL;
    struct perr e;
    if (strlen(name) < 2 || grammar_name(name, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy "
                 "regular expression (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*'"
                 " and be 2-256 characters'%s%s", strlen(name) < 2 ? "" : ": ",
                 strlen(name) < 2 ? "" : e.msg);
        return NULL;
    }
    return name;
}

bool api_authorize(struct api *x, const char *repo)
{
    char action[96];
    snprintf(action, sizeof action, "ecr:%s", x->op);
    struct perr e;
    pier_err rc = repo ? authz_check(x->c, action, repo, &e)
                       : authz_check_arn(x->c, action, authz_registry_arn(x->c), &e);
    if (rc)
        return api_fail(x, rc == PIER_E_DENIED || rc == PIER_E_UNAUTHORIZED ? ECR_EXC_ACCESS_DENIED
                                                                             : ECR_EXC_SERVER,
                        "%s", e.msg);
    return true;
}

bool api_registry_id(struct api *x)
{
    const char *id = api_str(x, "registryId", false, 12);
    if (x->err_type)
        return false;
    if (id && strcmp(id, x->c->cfg->account_id) != 0)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                        "registryId %s is not this registry (%s)", id, x->c->cfg->account_id);
    return true;
}

bool api_page(struct api *x, long long max, long long *limit, long long *offset)
{
    *limit = max;
    *offset = 0;
    if (!api_int(x, "maxResults", 1, max, limit))
        return false;
    const char *tok = api_str(x, "nextToken", false, 64);
    if (x->err_type)
        return false;
    if (tok && (tok[0] != 'o' || !grammar_uint(tok + 1, 1LL << 40, offset)))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "nextToken is not one this registry issued");
    return true;
}

void api_next(struct api *x, long long offset, long long limit, bool more)
{
    if (more) {
        char tok[32];
        snprintf(tok, sizeof tok, "o%lld", offset + limit);
        json_object_set_new(x->out, "nextToken", json_string(tok));
    }
}

json_t *api_time(long long ms)
{
    return json_real((double)ms / 1000.0);
}

const char *api_registry_host(struct api *x)
{
    const char *u = x->c->cfg->public_url;
    if (u[0]) {
        const char *p = strstr(u, "://");
        return p ? p + 3 : u;
    }
    return x->c->cfg->registry_host[0] ? x->c->cfg->registry_host : "localhost";
}

/* ---- SigV4 header lookup over the CGI environment ---- */

static const char *cgi_header(void *arg, const char *lname)
{
    struct req *r = arg;
    if (strcmp(lname, "content-type") == 0)
        return req_env(r, "CONTENT_TYPE");
    if (strcmp(lname, "content-length") == 0)
        return req_env(r, "CONTENT_LENGTH");
    char var[128] = "HTTP_";
    size_t j = 5;
    for (const char *p = lname; *p && j < sizeof var - 1; p++)
        var[j++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    var[j] = '\0';
    return req_env(r, var);
}

/* The one place control-plane errors are written; fields (may be NULL) are
 * the exception's members besides its message. */
static void send_error_fields(struct req *r, enum ecr_exc exc, const char *msg, json_t *fields)
{
    const char *type = ecr_exc_type(exc);
    int status = ecr_exc_status(exc);
    json_t *body = json_pack("{s:s, s:s}", "__type", type, "message", msg);
    if (fields)
        json_object_update_missing(body, fields);
    resp_header(r, "x-amzn-ErrorType", "%s", type);
    if (status == 503)
        resp_header(r, "Retry-After", "5");
    resp_json(r, status, "application/x-amz-json-1.1", body);
    json_decref(body);
}

static void send_error(struct req *r, enum ecr_exc exc, const char *msg)
{
    send_error_fields(r, exc, msg, NULL);
}

void ecrapi_error(struct req *r, const struct perr *e)
{
    send_error(r, e->code == PIER_E_UNAVAILABLE ? ECR_EXC_SERVER_UNAVAILABLE : ECR_EXC_SERVER,
               e->msg[0] ? e->msg : "internal error");
}

const char *ecrapi_unlisted_operation(void)
{
    static char name[96];
    const struct {
        const char *service;
        const struct op *table;
        size_t n;
    } tables[] = {{"ecr", ECR_OPS, sizeof ECR_OPS / sizeof ECR_OPS[0]},
                  {"secretsmanager", SM_OPS, sizeof SM_OPS / sizeof SM_OPS[0]}};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (size_t i = 0; i < tables[t].n; i++) {
            snprintf(name, sizeof name, "%s:%s", tables[t].service, tables[t].table[i].name);
            size_t k = 0;
            while (k < policy_actions_count && strcmp(policy_actions[k], name) != 0)
                k++;
            if (k == policy_actions_count)
                return name;
        }
    return NULL;
}

static const struct op *find_op(const char *service, const char *name)
{
    const struct op *table = SM_OPS;
    size_t n = sizeof SM_OPS / sizeof SM_OPS[0];
    if (strcmp(service, "ecr") == 0) {
        table = ECR_OPS;
        n = sizeof ECR_OPS / sizeof ECR_OPS[0];
    } else if (strcmp(service, "iam") == 0) {
        table = IAM_OPS;
        n = sizeof IAM_OPS / sizeof IAM_OPS[0];
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

/* The tags and digests an operation names (imageIds, imageTag,
 * imageDigest), joined with ",", or NULL. */
static const char *image_targets(struct arena *a, json_t *in)
{
    struct buf b;
    buf_init_arena(&b, a, AUDIT_FIELD_MAX + 1);
    json_t *ids = json_object_get(in, "imageIds"), *one;
    size_t i;
    json_array_foreach(ids, i, one)
    {
        const char *t = json_string_value(json_object_get(one, "imageTag"));
        const char *d = json_string_value(json_object_get(one, "imageDigest"));
        const char *v = t ? t : d;
        if (v && (buf_len(&b) ? buf_add(&b, ",", 1) : PIER_OK) == PIER_OK)
            (void)buf_add(&b, v, strlen(v));
    }
    static const char *const single[] = {"imageTag", "imageDigest"};
    for (size_t k = 0; k < 2 && !buf_len(&b); k++) {
        const char *v = json_string_value(json_object_get(in, single[k]));
        if (v)
            (void)buf_add(&b, v, strlen(v));
    }
    if (!buf_len(&b) || buf_add(&b, "", 1) != PIER_OK)
        return NULL;
    return b.p;
}

/* Every control-plane call is an audit event: the operation, the resource it
 * names (a repository, or the only one of repositoryNames, else the first of
 * the fields below, else the registry), the images it names, and the
 * exception it ended with. Only names are taken from the input: never a
 * secret's value or a policy text. */
static void audit_call(struct ctx *c, const char *service, const struct api *x)
{
    const char *opname = x->op;
    json_t *in = x->in;
    enum ecr_exc exc = x->err_type;
    static const char *const named[] = {
        "resourceArn", "ecrRepositoryPrefix", "prefix", "SecretId", "Name", "name", "principalArn"};
    struct perr ignore;
    const char *repo = in ? json_string_value(json_object_get(in, "repositoryName")) : NULL;
    if (repo && grammar_name(repo, &ignore) != PIER_OK)
        repo = NULL;
    const char *resource = NULL;
    json_t *names = in ? json_object_get(in, "repositoryNames") : NULL;
    if (!repo && json_array_size(names) == 1) {
        repo = json_string_value(json_array_get(names, 0));
        if (repo && grammar_name(repo, &ignore) != PIER_OK)
            repo = NULL;
    }
    for (size_t i = 0; !repo && !resource && in && i < sizeof named / sizeof named[0]; i++)
        resource = json_string_value(json_object_get(in, named[i]));
    if (x->audit_resource)
        resource = x->audit_resource;
    if (!repo && !resource && strcmp(service, "ecr") == 0)
        resource = authz_registry_arn(c);
    struct audit_event ev = {
        .action = arena_printf(c->a, "%s:%s", service, opname),
        .repository = repo,
        .resource = resource,
        .target = x->audit_target ? x->audit_target : in ? image_targets(c->a, in) : NULL,
        .result = exc == ECR_EXC_NONE ? NULL : ecr_exc_type(exc),
    };
    audit_record(c, &ev);
}

/* Run op as ecrapi_invoke() does; *fields (NULL: not wanted) receives the
 * error's members besides its message, if it has any (caller decrefs). */
static bool invoke(struct ctx *c, struct req *r, const char *service, const struct op *op,
                   json_t *in, json_t **out, enum ecr_exc *exc, char *err_msg, size_t errsz,
                   json_t **fields)
{
    struct api x = {.c = c, .r = r, .op = op->name, .in = in, .out = json_object()};
    op->fn(&x);
    audit_call(c, service, &x);
    if (x.err_type) {
        if (ecr_exc_status(x.err_type) >= 500)
            log_error("control plane %s: %s", op->name, x.err_msg);
        *exc = x.err_type;
        snprintf(err_msg, errsz, "%s", x.err_msg);
        json_decref(x.out);
        if (fields)
            *fields = x.err_fields;
        else
            json_decref(x.err_fields);
        return false;
    }
    json_decref(x.err_fields);
    *out = x.out;
    *exc = ECR_EXC_NONE;
    return true;
}

bool ecrapi_invoke(struct ctx *c, struct req *r, const char *service, const char *opname,
                   json_t *in, json_t **out, enum ecr_exc *exc, char *err_msg, size_t errsz)
{
    const struct op *op = find_op(service, opname);
    if (!op) {
        *exc = ECR_EXC_UNKNOWN_OPERATION;
        snprintf(err_msg, errsz, "this registry does not implement %s", opname);
        return false;
    }
    return invoke(c, r, service, op, in, out, exc, err_msg, errsz, NULL);
}

/* A signed request refused before its operation ran: a failed sign-in. */
static void refused(struct ctx *c, const char *service, const char *opname, const char *who,
                    const char *key_id, enum ecr_exc exc)
{
    struct audit_event ev = {.action = arena_printf(c->a, "%s:%s", service, opname),
                             .resource = strcmp(service, "ecr") == 0 ? authz_registry_arn(c) : "",
                             .result = ecr_exc_type(exc),
                             .principal = who,
                             .key_id = key_id};
    audit_record(c, &ev);
}

void ecrapi_handle(struct ctx *c, struct req *r)
{
    struct perr e;
    if (strcmp(r->method, "POST") != 0) {
        req_refuse_body(r);
        send_error(r, ECR_EXC_UNKNOWN_OPERATION, "the control plane takes POST requests");
        return;
    }
    char *body;
    size_t len;
    const char *target = req_header(r, "X-Amz-Target");
    size_t limit = target && strncmp(target, ECR_PREFIX, strlen(ECR_PREFIX)) == 0
                       ? layers_body_limit(target + strlen(ECR_PREFIX))
                       : 0;
    if (req_read_body(r, limit ? limit : API_MAX_BODY, &body, &len, &e) != PIER_OK) {
        send_error(r, ECR_EXC_VALIDATION, e.msg);
        return;
    }
    const struct op *table = NULL;
    size_t ntable = 0;
    const char *opname = NULL, *service = NULL;
    if (target && strncmp(target, ECR_PREFIX, strlen(ECR_PREFIX)) == 0) {
        table = ECR_OPS;
        ntable = sizeof ECR_OPS / sizeof ECR_OPS[0];
        opname = target + strlen(ECR_PREFIX);
        service = "ecr";
    } else if (target && strncmp(target, SM_PREFIX, strlen(SM_PREFIX)) == 0) {
        table = SM_OPS;
        ntable = sizeof SM_OPS / sizeof SM_OPS[0];
        opname = target + strlen(SM_PREFIX);
        service = "secretsmanager";
    }
    const struct op *op = NULL;
    for (size_t i = 0; table && i < ntable; i++)
        if (strcmp(table[i].name, opname) == 0)
            op = &table[i];
    if (!op) {
        send_error(r, ECR_EXC_UNKNOWN_OPERATION,
                   target ? "this registry does not implement that operation"
                          : "X-Amz-Target is missing");
        return;
    }

    /* Signature Version 4: who is asking, and did they sign exactly this. */
    const char *auth = req_header(r, "Authorization");
    struct sigv4_auth sa;
    if (!auth || sigv4_parse(auth, &sa, &e) != PIER_OK) {
        send_error(r, ECR_EXC_MISSING_AUTHENTICATION_TOKEN,
                   auth ? e.msg : "Missing Authentication Token (sign requests with Signature Version 4)");
        return;
    }
    if (strcmp(sa.service, service) != 0) {
        send_error(r, ECR_EXC_INVALID_SIGNATURE, "the credential scope names the wrong service");
        return;
    }
    /* The operation, its time and the body's type must be signed: otherwise
     * a captured request could be replayed as another operation. */
    static const char *const must_sign[] = {"content-type", "host", "x-amz-date", "x-amz-target"};
    char probe[sizeof sa.signed_headers + 2];
    snprintf(probe, sizeof probe, ";%s;", sa.signed_headers);
    for (size_t i = 0; i < sizeof must_sign / sizeof must_sign[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, ";%s;", must_sign[i]);
        if (!strstr(probe, want)) {
            send_error(r, ECR_EXC_INVALID_SIGNATURE,
                       arena_printf(r->a, "the %s header must be signed (SignedHeaders: %s)",
                                    must_sign[i], sa.signed_headers));
            return;
        }
    }
    char secret[KEY_SECRET_LEN + 1];
    struct principal p;
    if (key_secret(c, sa.key_id, secret, &p, &e) != PIER_OK) {
        if (e.code == PIER_E_UNAUTHORIZED) {
            refused(c, service, opname, "unknown", sa.key_id, ECR_EXC_UNRECOGNIZED_CLIENT);
            send_error(r, ECR_EXC_UNRECOGNIZED_CLIENT,
                       "The security token included in the request is invalid.");
        } else
            ecrapi_error(r, &e);
        return;
    }
    unsigned char md[32];
    char hash[65];
    EVP_Digest(body, len, md, NULL, EVP_sha256(), NULL);
    hex_encode(md, 32, hash);
    const char *claimed = req_header(r, "X-Amz-Content-Sha256");
    struct sigv4_request sr = {.method = r->method, .path = r->path, .query = r->query,
                               .header = cgi_header, .arg = r, .payload_hash = hash};
    pier_err rc = (claimed && strcmp(claimed, hash) != 0)
                      ? perr_set(&e, PIER_E_UNAUTHORIZED, "X-Amz-Content-Sha256 does not match the body")
                      : sigv4_verify(&sa, &sr, secret, c->cfg->region, time(NULL), MAX_SKEW, &e);
    OPENSSL_cleanse(secret, sizeof secret);
    if (rc) {
        log_warn("control plane: %s signature refused: %s", sa.key_id, e.msg);
        refused(c, service, opname, p.arn, sa.key_id, ECR_EXC_INVALID_SIGNATURE);
        send_error(r, ECR_EXC_INVALID_SIGNATURE, e.msg);
        return;
    }
    struct identity *id = arena_alloc(r->a, sizeof *id);
    id->authenticated = true;
    id->via = VIA_ACCESS_KEY;
    id->p = p;
    if (snprintf(id->key_id, sizeof id->key_id, "%s", sa.key_id) >= (int)sizeof id->key_id) {
        /* key_secret() found it, and stored ids are KEY_ID_LEN long */
        perr_set(&e, PIER_E_INTERNAL, "access key id %.64s is too long", sa.key_id);
        ecrapi_error(r, &e);
        return;
    }
    c->who = id;

    json_error_t jerr;
    json_t *in = len ? json_loadb(body, len, 0, &jerr) : json_object();
    if (!json_is_object(in)) {
        json_decref(in);
        send_error(r, ECR_EXC_SERIALIZATION, "the request body is not a JSON object");
        return;
    }
    json_t *out = NULL, *fields = NULL;
    enum ecr_exc exc;
    char msg[600];
    if (invoke(c, r, service, op, in, &out, &exc, msg, sizeof msg, &fields)) {
        /* Timestamps print as 1700000000.123, not 1700000000.1229999 */
        char *text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(API_NUMBER_DIGITS));
        json_decref(out);
        if (text) {
            resp_status(r, 200);
            resp_send(r, "application/x-amz-json-1.1", text, strlen(text));
            free(text);
        } else {
            send_error(r, ECR_EXC_SERVER, "the answer could not be encoded");
        }
    } else {
        send_error_fields(r, exc, msg, fields);
        json_decref(fields);
    }
    json_decref(in);
}
