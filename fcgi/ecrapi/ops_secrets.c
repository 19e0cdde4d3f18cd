/* ops_secrets: the Secrets Manager calls of ECR's pull-through-cache
 * workflow. Secrets only serve as upstream credentials here, so managing them
 * needs what managing the rules needs: ecr:CreatePullThroughCacheRule on the
 * registry. Values are sealed and never returned. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "auth/authz.h"
#include "auth/secrets.h"
#include "cache/upstream.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"

static bool sm_authorize(struct api *x)
{
    struct perr e;
    if (authz_check_arn(x->c, "ecr:CreatePullThroughCacheRule", authz_registry_arn(x->c), &e) != PIER_OK)
        return api_fail(x, ECR_EXC_ACCESS_DENIED, "%s (Secrets Manager calls need the "
                        "permission to manage pull-through cache rules)", e.msg);
    return true;
}

static bool sm_error(struct api *x, const struct perr *e)
{
    return api_perr(x, e, ECR_EXC_RESOURCE_NOT_FOUND, ECR_EXC_RESOURCE_EXISTS);
}

void op_sm_create_secret(struct api *x)
{
    const char *name = api_str(x, "Name", true, 512);
    const char *value = api_str(x, "SecretString", false, SECRET_VALUE_MAX);
    const char *desc = api_str(x, "Description", false, 2048);
    if (x->err_type || !sm_authorize(x))
        return;
    if (json_object_get(x->in, "SecretBinary")) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "SecretBinary is not supported; use SecretString");
        return;
    }
    struct perr e;
    const char *arn, *version;
    if (secret_create(x->c, name, desc, value, &arn, &version, &e) != PIER_OK) {
        sm_error(x, &e);
        return;
    }
    json_object_set_new(x->out, "ARN", json_string(arn));
    json_object_set_new(x->out, "Name", json_string(name));
    if (version)
        json_object_set_new(x->out, "VersionId", json_string(version));
}

void op_sm_put_secret_value(struct api *x)
{
    const char *id = api_str(x, "SecretId", true, 2048);
    const char *value = api_str(x, "SecretString", true, SECRET_VALUE_MAX);
    if (x->err_type || !sm_authorize(x))
        return;
    struct perr e;
    const char *arn, *name, *version;
    if (secret_put(x->c, id, value, &arn, &name, &version, &e) != PIER_OK ||
        upstream_tokens_forget_credential(x->c, arn, name, &e) != PIER_OK) {
        sm_error(x, &e);
        return;
    }
    json_object_set_new(x->out, "ARN", json_string(arn));
    json_object_set_new(x->out, "Name", json_string(name));
    json_object_set_new(x->out, "VersionId", json_string(version));
    json_object_set_new(x->out, "VersionStages", json_pack("[s]", "AWSCURRENT"));
}

void op_sm_describe_secret(struct api *x)
{
    const char *id = api_str(x, "SecretId", true, 2048);
    if (x->err_type || !sm_authorize(x))
        return;
    struct perr e;
    json_t *meta;
    if (secret_describe(x->c, id, &meta, &e) != PIER_OK) {
        sm_error(x, &e);
        return;
    }
    json_decref(x->out);
    x->out = meta;
}

void op_sm_list_secrets(struct api *x)
{
    long long limit = 100, offset = 0;
    const char *tok = api_str(x, "NextToken", false, 64);
    if (x->err_type || !api_int(x, "MaxResults", 1, 100, &limit) || !sm_authorize(x))
        return;
    if (tok && (tok[0] != 'o' || !grammar_uint(tok + 1, 1LL << 40, &offset))) {
        api_fail(x, ECR_EXC_INVALID_NEXT_TOKEN, "NextToken is not one this service issued");
        return;
    }
    struct perr e;
    json_t *all = json_array();
    if (secret_list(x->c, all, &e) != PIER_OK) {
        json_decref(all);
        sm_error(x, &e);
        return;
    }
    json_t *list = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v) {
        if ((long long)i >= offset && (long long)i < offset + limit)
            json_array_append(list, v);
    }
    if ((long long)json_array_size(all) > offset + limit) {
        char next[32];
        snprintf(next, sizeof next, "o%lld", offset + limit);
        json_object_set_new(x->out, "NextToken", json_string(next));
    }
    json_decref(all);
    json_object_set_new(x->out, "SecretList", list);
}

void op_sm_delete_secret(struct api *x)
{
    const char *id = api_str(x, "SecretId", true, 2048);
    if (x->err_type || !sm_authorize(x))
        return;
    struct perr e;
    const char *arn, *name;
    if (secret_delete(x->c, id, &arn, &name, &e) != PIER_OK) {
        sm_error(x, &e);
        return;
    }
    json_object_set_new(x->out, "ARN", json_string(arn));
    json_object_set_new(x->out, "Name", json_string(name));
    json_object_set_new(x->out, "DeletionDate", json_integer((json_int_t)time(NULL)));
}
