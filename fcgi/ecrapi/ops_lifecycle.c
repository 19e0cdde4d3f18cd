/* ops_lifecycle: lifecycle policies (Put/Get/DeleteLifecyclePolicy) and their
 * previews (Start/GetLifecyclePolicyPreview). A preview is computed when it
 * is started, by the function a run uses (lifecycle_plan), and kept until
 * the next one. */
#include <string.h>
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "store/lifecycle_run.h"
#include "store/lifecycle_store.h"

/* ECR's answer to a policy that does not validate names the parameter, then
 * the offending rule and element. */
static bool policy_error(struct api *x, const struct perr *e)
{
    if (e->code == PIER_E_BAD_REQUEST)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
                        "'Lifecycle policy validation failure: %s'",
                        e->msg);
    return false;
}

static void policy_out(struct api *x, const char *name, const char *text,
                       long long last_evaluated_at)
{
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "lifecyclePolicyText", json_string(text));
    if (last_evaluated_at > 0)
        json_object_set_new(x->out, "lastEvaluatedAt", json_integer(last_evaluated_at));
}

/* repositoryName, registryId, authorization and existence: what every
 * lifecycle operation checks first. NULL when one failed. */
static const char *repository(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) ||
        !api_repo_exists(x, name, NULL))
        return NULL;
    return name;
}

void op_put_lifecycle_policy(struct api *x)
{
    const char *text = api_str(x, "lifecyclePolicyText", true, LIFECYCLE_TEXT_MAX);
    const char *name = x->err_type ? NULL : repository(x);
    if (!name)
        return;
    struct perr e;
    if (lifecycle_policy_put(x->c, name, text, &e) != PIER_OK) {
        if (!policy_error(x, &e))
            api_perr(x, &e, ECR_EXC_REPOSITORY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    policy_out(x, name, text, 0);
}

void op_get_lifecycle_policy(struct api *x)
{
    const char *name = repository(x);
    if (!name)
        return;
    struct perr e;
    struct lifecycle_record p;
    if (lifecycle_policy_get(x->c, name, &p, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_LIFECYCLE_POLICY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    policy_out(x, name, p.text, p.last_evaluated_at);
}

void op_delete_lifecycle_policy(struct api *x)
{
    const char *name = repository(x);
    if (!name)
        return;
    struct perr e;
    struct lifecycle_record p;
    if (lifecycle_policy_delete(x->c, name, &p, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_LIFECYCLE_POLICY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    policy_out(x, name, p.text, p.last_evaluated_at);
}

void op_start_lifecycle_preview(struct api *x)
{
    const char *text = api_str(x, "lifecyclePolicyText", false, LIFECYCLE_TEXT_MAX);
    const char *name = x->err_type ? NULL : repository(x);
    if (!name)
        return;
    struct perr e;
    const char *used;
    if (lifecycle_preview_start(x->c, name, text, &used, &e) != PIER_OK) {
        if (!policy_error(x, &e))
            api_perr(x, &e, ECR_EXC_LIFECYCLE_POLICY_NOT_FOUND,
                     ECR_EXC_LIFECYCLE_PREVIEW_IN_PROGRESS);
        return;
    }
    policy_out(x, name, used, 0);
    json_object_set_new(x->out, "status", json_string("COMPLETE"));
}

/* imageIds[k] as a digest and a tag filter (either may be NULL). */
static bool image_id(struct api *x, json_t *id, size_t k, const char **digest, const char **tag)
{
    *digest = json_string_value(json_object_get(id, "imageDigest"));
    *tag = json_string_value(json_object_get(id, "imageTag"));
    struct perr e;
    if (!json_is_object(id) || (!*digest && !*tag))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                        "imageIds[%zu] needs an imageDigest or an imageTag", k);
    if (*digest && grammar_digest(*digest, NULL, &e) != PIER_OK)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds[%zu].imageDigest: %s", k, e.msg);
    if (*tag && grammar_tag(*tag, &e) != PIER_OK)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds[%zu].imageTag: %s", k, e.msg);
    return true;
}

void op_get_lifecycle_preview(struct api *x)
{
    const char *name = repository(x);
    long long limit, offset;
    if (!name || !api_page(x, 100, &limit, &offset))
        return;
    json_t *ids = json_object_get(x->in, "imageIds");
    if (ids && (!json_is_array(ids) || json_array_size(ids) < 1 || json_array_size(ids) > 100)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds must list 1 to 100 images");
        return;
    }
    if (ids && (json_object_get(x->in, "maxResults") || json_object_get(x->in, "nextToken"))) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "maxResults and nextToken cannot be used with imageIds");
        return;
    }
    const char *status = api_tag_status(x);
    if (!status)
        return;
    struct perr e;
    struct lifecycle_preview p;
    if (lifecycle_preview_get(x->c, name, &p, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_LIFECYCLE_PREVIEW_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    json_t *results = json_array();
    bool more = false;
    pier_err rc = PIER_OK;
    if (ids) {
        size_t k;
        json_t *id;
        json_array_foreach(ids, k, id)
        {
            const char *digest, *tag;
            bool ignore;
            if (!image_id(x, id, k, &digest, &tag))
                break;
            if ((rc = lifecycle_preview_results(x->c, name, status, digest, tag, 1, 0, results,
                                                &ignore, &e)))
                break;
        }
    } else {
        rc = lifecycle_preview_results(x->c, name, status, NULL, NULL, limit, offset, results,
                                       &more, &e);
    }
    if (rc)
        api_perr(x, &e, ECR_EXC_LIFECYCLE_PREVIEW_NOT_FOUND, ECR_EXC_NONE);
    if (x->err_type) {
        json_decref(results);
        return;
    }
    policy_out(x, name, p.text, 0);
    json_object_set_new(x->out, "status", json_string(p.status));
    json_object_set_new(x->out, "previewResults", results);
    json_object_set_new(x->out, "summary",
                        json_pack("{s:I}", "expiringImageTotalCount", (json_int_t)p.expiring));
    if (!ids)
        api_next(x, offset, limit, more);
}
