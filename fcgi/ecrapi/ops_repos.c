/* ops_repos: repositories — create, describe, delete, and their tag mutability
 * setting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/authz.h"
#include "store/rules.h"
#include "db/db.h"
#include "store/repo.h"
#include "store/mutability.h"
#include "store/resource_tags.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"

static json_t *repo_json(struct api *x, const struct repo_record *rec)
{
    const char *name = rec->name;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:{s:b}, s:{s:s}}", "repositoryArn",
                          authz_repo_arn(x->c, name), "registryId", x->c->cfg->account_id,
                          "repositoryName", name, "repositoryUri",
                          arena_printf(x->r->a, "%s/%s", api_registry_host(x), name), "createdAt",
                          api_time(rec->created_ms), "imageTagMutability", rec->tag_mutability,
                          "imageScanningConfiguration", "scanOnPush", rec->scan_on_push,
                          "encryptionConfiguration", "encryptionType", rec->encryption_type);
    if (rec->kms_key)
        json_object_set_new(json_object_get(j, "encryptionConfiguration"), "kmsKey",
                            json_string(rec->kms_key));
    json_t *values = json_loads(rec->tag_mutability_exclusions, 0, NULL);
    if (json_array_size(values) > 0)
        json_object_set_new(j, "imageTagMutabilityExclusionFilters",
                            mutability_filters_json(values));
    json_decref(values);
    return j;
}

/* imageTagMutability (required or not; absent: MUTABLE) with its
 * imageTagMutabilityExclusionFilters, as the JSON text of the filter values
 * (arena); NULL when refused (x holds the error). */
static const char *read_mutability(struct api *x, bool required, const char **mode)
{
    *mode = api_str(x, "imageTagMutability", required, 32);
    if (x->err_type)
        return NULL;
    if (!*mode)
        *mode = "MUTABLE";
    json_t *values;
    struct perr e;
    if (mutability_parse(*mode, json_object_get(x->in, "imageTagMutabilityExclusionFilters"),
                         &values, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s", e.msg);
        return NULL;
    }
    char *text = json_dumps(values, JSON_COMPACT);
    json_decref(values);
    if (!text) {
        api_fail(x, ECR_EXC_SERVER, "out of memory");
        return NULL;
    }
    const char *out = arena_strdup(x->r->a, text);
    free(text);
    return out;
}

bool api_repo_exists(struct api *x, const char *name, struct repo_record *out)
{
    struct perr e;
    struct repo_record rec;
    pier_err rc = repo_describe(x->c, name, &rec, &e);
    if (rc == PIER_E_NAME_UNKNOWN)
        return api_fail(x, ECR_EXC_REPOSITORY_NOT_FOUND,
                        "The repository with name '%s' does not exist in the registry with id '%s'",
                        name, x->c->cfg->account_id);
    if (rc)
        return api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
    if (out)
        *out = rec;
    return true;
}

void op_create_repository(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *mut;
    const char *exclusions = read_mutability(x, false, &mut);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name))
        return;
    bool scan = false;
    json_t *sc = json_object_get(x->in, "imageScanningConfiguration");
    if (json_is_object(sc) && json_is_true(json_object_get(sc, "scanOnPush")))
        scan = true;
    json_t *enc = json_object_get(x->in, "encryptionConfiguration");
    const char *etype = "AES256", *kms = NULL;
    if (enc) {
        etype = json_string_value(json_object_get(enc, "encryptionType"));
        kms = json_string_value(json_object_get(enc, "kmsKey"));
        if (!etype || (strcmp(etype, "AES256") && strcmp(etype, "KMS") && strcmp(etype, "KMS_DSSE"))) {
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "encryptionConfiguration.encryptionType must be AES256, KMS or KMS_DSSE");
            return;
        }
        if (!strcmp(etype, "AES256") && kms) {
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "kmsKey is only valid with encryption type KMS");
            return;
        }
    }
    /* A repository under a pull-through cache rule is a cache repository. */
    struct cache_rule rule;
    bool under = false;
    struct perr e;
    if (rules_match(x->c, name, &rule, &under, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    pier_err rc = db_tx_begin(x->c->db, &e);
    if (rc) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    struct repo_settings set = {.tag_mutability = mut,
                                .tag_mutability_exclusions = exclusions,
                                .scan_on_push = scan,
                                .encryption_type = etype,
                                .kms_key = kms};
    bool created;
    if ((rc = repo_create(x->c, name, under ? rule.id : 0, &set, &created, &e)) != PIER_OK) {
        /* e says why; answered below */
    } else if (!created) {
        rc = PIER_E_CONFLICT;
        api_fail(x, ECR_EXC_REPOSITORY_ALREADY_EXISTS,
                 "The repository with name '%s' already exists in the registry with id '%s'", name,
                 x->c->cfg->account_id);
    } else if (!api_put_tags(x, authz_repo_arn(x->c, name), json_object_get(x->in, "tags"))) {
        rc = PIER_E_BAD_REQUEST; /* api_put_tags said why */
    }
    if (db_tx_end(x->c->db, rc, &e) != PIER_OK) {
        if (!x->err_type)
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    struct repo_record row;
    if (api_repo_exists(x, name, &row))
        json_object_set_new(x->out, "repository", repo_json(x, &row));
}

void op_describe_repositories(struct api *x)
{
    long long limit, offset;
    if (!api_registry_id(x) || !api_page(x, 1000, &limit, &offset))
        return;
    json_t *names = json_object_get(x->in, "repositoryNames");
    json_t *list = json_array();
    struct perr e;
    char action[] = "ecr:DescribeRepositories";
    if (names) {
        if (!json_is_array(names) || json_array_size(names) == 0 || json_array_size(names) > 100) {
            json_decref(list);
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "repositoryNames must list 1 to 100 names");
            return;
        }
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n) {
            const char *name = json_string_value(n);
            struct perr ge;
            if (!name || grammar_name(name, &ge) != PIER_OK) {
                api_fail(x, ECR_EXC_INVALID_PARAMETER, "repositoryNames[%zu] must be a repository name%s%s",
                         i, name ? ": " : "", name ? ge.msg : "");
                break;
            }
            struct perr de;
            if (authz_check(x->c, action, name, &de) != PIER_OK) {
                api_fail(x, ECR_EXC_ACCESS_DENIED, "%s", de.msg);
                break;
            }
            struct repo_record rec;
            if (!api_repo_exists(x, name, &rec))
                break;
            json_array_append_new(list, repo_json(x, &rec));
        }
    } else {
        struct repo_record *recs;
        int rows;
        if (repo_list(x->c, limit + 1, offset, &recs, &rows, &e) != PIER_OK) {
            json_decref(list);
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
            return;
        }
        for (int i = 0; i < rows && i < limit; i++)
            if (authz_allowed(x->c, action, recs[i].name))
                json_array_append_new(list, repo_json(x, &recs[i]));
        api_next(x, offset, limit, rows > limit);
    }
    json_object_set_new(x->out, "repositories", list);
}

void op_delete_repository(struct api *x)
{
    const char *name = api_repo_name(x, true);
    bool force = false;
    if (x->err_type || !api_bool(x, "force", &force) || !api_registry_id(x) || !api_authorize(x, name))
        return;
    struct repo_record row;
    if (!api_repo_exists(x, name, &row))
        return;
    json_t *repo = repo_json(x, &row);
    struct perr e;
    long long images;
    if (repo_image_count(x->c, name, &images, &e) != PIER_OK) {
        json_decref(repo);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    if (images > 0 && !force) {
        json_decref(repo);
        api_fail(x, ECR_EXC_REPOSITORY_NOT_EMPTY,
                 "The repository with name '%s' in registry with id '%s' cannot be deleted because it "
                 "still contains images", name, x->c->cfg->account_id);
        return;
    }
    if (repo_delete(x->c, name, &e) != PIER_OK ||
        resource_tags_drop(x->c, authz_repo_arn(x->c, name), &e) != PIER_OK) {
        json_decref(repo);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "repository", repo);
}
void op_put_image_tag_mutability(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *mut = NULL;
    const char *exclusions = x->err_type ? NULL : read_mutability(x, true, &mut);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    struct perr e;
    if (repo_set_tag_mutability(x->c, name, mut, exclusions, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "imageTagMutability", json_string(mut));
    json_t *values = json_loads(exclusions, 0, NULL);
    if (json_array_size(values) > 0)
        json_object_set_new(x->out, "imageTagMutabilityExclusionFilters",
                            mutability_filters_json(values));
    json_decref(values);
}

/* Stored and reported like CreateRepository's scanOnPush, so that a tool that
 * sets it on an existing repository (Terraform's image_scanning_configuration)
 * reads back what it set; Pier has no scanner, so nothing is scanned. */
void op_put_image_scanning_configuration(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x))
        return;
    json_t *sc = json_object_get(x->in, "imageScanningConfiguration");
    json_t *flag = json_object_get(sc, "scanOnPush");
    if (!json_is_object(sc)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageScanningConfiguration is required");
        return;
    }
    if (flag && !json_is_boolean(flag)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageScanningConfiguration.scanOnPush must be a boolean");
        return;
    }
    if (!api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    struct perr e;
    if (repo_set_scan_on_push(x->c, name, json_is_true(flag), &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "imageScanningConfiguration",
                        json_pack("{s:b}", "scanOnPush", json_is_true(flag)));
}
