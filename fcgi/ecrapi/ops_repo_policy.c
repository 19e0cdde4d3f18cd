/* ops_repo_policy: repository policies (Set/Get/DeleteRepositoryPolicy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/authz.h"
#include "ecrapi/api.h"

static void policy_out(struct api *x, const char *name, const char *doc)
{
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "policyText", json_string(doc));
}

void op_set_repository_policy(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *doc = api_str(x, "policyText", true, 10240);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    struct perr e;
    if (repository_policy_put(x->c, name, doc, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_REPOSITORY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    policy_out(x, name, doc);
}

void op_get_repository_policy(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    struct perr e;
    const char *doc;
    if (repository_policy_get(x->c, name, &doc, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_REPOSITORY_POLICY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    policy_out(x, name, doc);
}

void op_delete_repository_policy(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    struct perr e;
    const char *doc;
    if (repository_policy_get(x->c, name, &doc, &e) != PIER_OK ||
        repository_policy_delete(x->c, name, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_REPOSITORY_POLICY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    policy_out(x, name, doc);
}
