/* ops_tags: resource tags on repositories (ListTagsForResource, TagResource,
 * UntagResource). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db/db.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "store/resource_tags.h"

/* Tags as [{Key, Value}] into resource_tags of arn. */
bool api_put_tags(struct api *x, const char *arn, json_t *tags)
{
    if (!tags)
        return true;
    if (!json_is_array(tags))
        return api_fail(x, ECR_EXC_INVALID_TAG_PARAMETER, "tags must be a list of {Key, Value}");
    size_t i;
    json_t *t;
    struct perr e;
    json_array_foreach(tags, i, t) {
        const char *k = json_string_value(json_object_get(t, "Key"));
        const char *v = json_string_value(json_object_get(t, "Value"));
        if (!k || !*k || strlen(k) > 128 || (v && strlen(v) > 256) || strncmp(k, "aws:", 4) == 0)
            return api_fail(x, ECR_EXC_INVALID_TAG_PARAMETER,
                            "tags[%zu]: Key must be 1-128 characters not starting with aws:, Value at most 256", i);
        if (resource_tags_put(x->c, arn, k, v ? v : "", &e) != PIER_OK)
            return api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
    }
    long long count;
    if (resource_tags_count(x->c, arn, &count, &e) == PIER_OK && count > 50)
        return api_fail(x, ECR_EXC_TOO_MANY_TAGS, "a resource can have at most 50 tags");
    return true;
}


/* The repository behind a repository ARN of this registry, or NULL. */
static const char *arn_repo(struct api *x, const char *arn)
{
    const char *prefix = arena_printf(x->r->a, "arn:aws:ecr:%s:%s:repository/", x->c->cfg->region,
                                      x->c->cfg->account_id);
    if (!arn || strncmp(arn, prefix, strlen(prefix)) != 0) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "resourceArn must be a repository ARN of this registry (%s...)",
                 prefix);
        return NULL;
    }
    const char *name = arn + strlen(prefix);
    struct perr e;
    if (grammar_name(name, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "resourceArn: %s", e.msg);
        return NULL;
    }
    return name;
}

void op_list_tags_for_resource(struct api *x)
{
    const char *arn = api_str(x, "resourceArn", true, 1024);
    const char *name = x->err_type ? NULL : arn_repo(x, arn);
    if (!name || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    struct perr e;
    struct resource_tag *list;
    int n;
    if (resource_tags_list(x->c, arn, &list, &n, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_t *tags = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(tags, json_pack("{s:s, s:s}", "Key", list[i].key, "Value",
                                              list[i].value));
    json_object_set_new(x->out, "tags", tags);
}

void op_tag_resource(struct api *x)
{
    const char *arn = api_str(x, "resourceArn", true, 1024);
    const char *name = x->err_type ? NULL : arn_repo(x, arn);
    if (!name || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    json_t *tags = json_object_get(x->in, "tags");
    if (!json_is_array(tags)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "tags is required");
        return;
    }
    struct perr e;
    if (db_tx_begin(x->c->db, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    pier_err rc = api_put_tags(x, arn, tags) ? PIER_OK : PIER_E_BAD_REQUEST; /* it said why */
    if (db_tx_end(x->c->db, rc, &e) != PIER_OK && !x->err_type)
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
}

void op_untag_resource(struct api *x)
{
    const char *arn = api_str(x, "resourceArn", true, 1024);
    const char *name = x->err_type ? NULL : arn_repo(x, arn);
    if (!name || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    json_t *keys = json_object_get(x->in, "tagKeys");
    if (!json_is_array(keys)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "tagKeys is required");
        return;
    }
    size_t i;
    json_t *k;
    struct perr e;
    json_array_foreach(keys, i, k) {
        if (!json_is_string(k)) {
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "tagKeys[%zu] must be a string", i);
            return;
        }
        if (resource_tags_delete(x->c, arn, json_string_value(k), &e) != PIER_OK) {
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
            return;
        }
    }
}
