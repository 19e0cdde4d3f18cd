/* ops_templates: repository creation templates (Create/Describe/Update/Delete
 * RepositoryCreationTemplate). */
#include <stdbool.h>
#include "ecrapi/api.h"
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

void op_describe_templates(struct api *x)
{
    long long limit, offset;
    if (!api_authorize(x, NULL) || !api_page(x, 1000, &limit, &offset))
        return;
    json_t *want = json_object_get(x->in, "prefixes");
    json_t *out = json_array();
    struct perr e;
    if (json_is_array(want) && json_array_size(want) > 0) {
        size_t i;
        json_t *p;
        json_array_foreach(want, i, p) {
            json_t *t;
            if (!json_is_string(p) || templates_get(x->c, json_string_value(p), &t, &e) != PIER_OK) {
                api_fail(x, ECR_EXC_TEMPLATE_NOT_FOUND, "no repository creation template with prefix %s",
                         json_is_string(p) ? json_string_value(p) : "?");
                break;
            }
            json_array_append_new(out, t);
        }
    } else {
        json_t *all = json_array();
        if (templates_list(x->c, all, &e) != PIER_OK) {
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        } else {
            size_t i;
            json_t *t;
            json_array_foreach(all, i, t) {
                if ((long long)i >= offset && (long long)i < offset + limit)
                    json_array_append(out, t);
            }
            api_next(x, offset, limit, (long long)json_array_size(all) > offset + limit);
        }
        json_decref(all);
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryCreationTemplates", out);
}
