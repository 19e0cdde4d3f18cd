/* ops_templates: repository creation templates (Create/Describe/Update/Delete
 * RepositoryCreationTemplate). */
#include <stdbool.h>
#include <string.h>
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "store/templates.h"

static void template_out(struct api *x, const char *prefix)
{
    json_t *t;
    struct perr e;
    if (templates_get(x->c, prefix, &t, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_TEMPLATE_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryCreationTemplate", t);
}

static void template_put(struct api *x, bool create)
{
    const char *prefix = api_str(x, "prefix", true, 256);
    if (x->err_type || !api_authorize(x, NULL))
        return;
    struct perr e;
    json_t *t = json_deep_copy(x->in);
    if (!create) {
        /* Update: unspecified fields keep their values. */
        json_t *old;
        if (templates_get(x->c, prefix, &old, &e) != PIER_OK) {
            json_decref(t);
            api_perr(x, &e, ECR_EXC_TEMPLATE_NOT_FOUND, ECR_EXC_NONE);
            return;
        }
        /* A new mode comes with its own filters (or none). */
        if (json_object_get(x->in, "imageTagMutability"))
            json_object_del(old, "imageTagMutabilityExclusionFilters");
        json_object_update_missing(t, old);
        json_decref(old);
    }
    if (templates_put(x->c, prefix, t, create, &e) != PIER_OK) {
        json_decref(t);
        api_perr(x, &e, ECR_EXC_TEMPLATE_NOT_FOUND, ECR_EXC_TEMPLATE_ALREADY_EXISTS);
        return;
    }
    json_decref(t);
    template_out(x, prefix);
}

void op_create_template(struct api *x)
{
    template_put(x, true);
}

void op_update_template(struct api *x)
{
    template_put(x, false);
}

void op_delete_template(struct api *x)
{
    const char *prefix = api_str(x, "prefix", true, 256);
    if (x->err_type || !api_authorize(x, NULL))
        return;
    json_t *old;
    struct perr e;
    if (templates_delete(x->c, prefix, &old, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_TEMPLATE_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryCreationTemplate", old);
}

/* A prefix of DescribeRepositoryCreationTemplates: "ROOT" or a repository
 * name prefix, with the trailing '/' the model allows (ECR's Prefix shape). */
static bool prefix_valid(const char *p)
{
    size_t n = strlen(p);
    if (strcmp(p, "ROOT") == 0)
        return true;
    if (n < 1 || n > 256)
        return false;
    char name[257];
    memcpy(name, p, n + 1);
    if (name[n - 1] == '/')
        name[n - 1] = '\0';
    return name[0] && grammar_name(name, NULL) == PIER_OK;
}

void op_describe_templates(struct api *x)
{
    long long limit, offset;
    if (!api_authorize(x, NULL) || !api_page(x, 1000, &limit, &offset))
        return;
    /* The model's errors only: a malformed prefix is an invalid parameter; a
     * prefix with no template is no error, it selects nothing. */
    json_t *want = json_object_get(x->in, "prefixes");
    if (want && !json_is_null(want) && !json_is_array(want)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "prefixes must be a list");
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(want, i, p) {
        if (!json_is_string(p) || !prefix_valid(json_string_value(p))) {
            api_fail(x, ECR_EXC_INVALID_PARAMETER,
                     "prefixes[%zu] must be ROOT or a repository name prefix", i);
            return;
        }
    }
    json_t *all = json_array();
    struct perr e;
    if (templates_list(x->c, all, &e) != PIER_OK) {
        json_decref(all);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_t *selected = json_array();
    json_t *t;
    json_array_foreach(all, i, t) {
        const char *prefix = json_string_value(json_object_get(t, "prefix"));
        bool keep = json_array_size(want) == 0;
        size_t k;
        json_array_foreach(want, k, p) {
            const char *w = json_string_value(p);
            size_t n = strlen(w);
            if (strcmp(w, prefix) == 0 ||
                (n > 1 && w[n - 1] == '/' && strlen(prefix) == n - 1 && !strncmp(w, prefix, n - 1)))
                keep = true;
        }
        if (keep)
            json_array_append(selected, t);
    }
    json_decref(all);
    json_t *out = json_array();
    json_array_foreach(selected, i, t) {
        if ((long long)i >= offset && (long long)i < offset + limit)
            json_array_append(out, t);
    }
    api_next(x, offset, limit, (long long)json_array_size(selected) > offset + limit);
    json_decref(selected);
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryCreationTemplates", out);
}
