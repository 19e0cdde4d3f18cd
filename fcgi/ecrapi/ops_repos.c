/* ops_repos: repositories — create, describe, delete, and their tag mutability
 * setting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/authz.h"
#include "cache/rules.h"
#include "db/db.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"

#define REPO_COLUMNS                                                                        \
    "r.id, r.name, extract(epoch FROM r.created_at)::bigint, r.image_tag_mutability,"        \
    " r.scan_on_push, r.encryption_type, r.kms_key, r.kind"

static const struct db_stmt st_create = {
    "api_repo_create",
    "INSERT INTO repositories(name, kind, rule_id, image_tag_mutability, scan_on_push,"
    " encryption_type, kms_key) VALUES ($1, CASE WHEN $2::bigint > 0 THEN 'cache' ELSE 'push' END,"
    " nullif($2::bigint, 0), $3, $4::bool, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id", 6};
static const struct db_stmt st_get = {
    "api_repo_get", "SELECT " REPO_COLUMNS " FROM repositories r WHERE r.name = $1", 1};
static const struct db_stmt st_list = {
    "api_repo_list",
    "SELECT " REPO_COLUMNS " FROM repositories r ORDER BY r.name LIMIT $1::bigint OFFSET $2::bigint", 2};
static const struct db_stmt st_count_images = {
    "api_repo_count_images",
    "SELECT count(*) FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = $1", 1};
static const struct db_stmt st_delete = {
    "api_repo_delete", "DELETE FROM repositories WHERE name = $1", 1};
static const struct db_stmt st_delete_tags = {
    "api_repo_delete_tags", "DELETE FROM resource_tags WHERE resource_arn = $1", 1};
static const struct db_stmt st_mutability = {
    "api_repo_mutability",
    "UPDATE repositories SET image_tag_mutability = $2 WHERE name = $1", 2};

static json_t *repo_json(struct api *x, PGresult *res, int i)
{
    const char *name = PQgetvalue(res, i, 1);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:{s:b}, s:{s:s}}",
                          "repositoryArn", authz_repo_arn(x->c, name),
                          "registryId", x->c->cfg->account_id,
                          "repositoryName", name,
                          "repositoryUri", arena_printf(x->r->a, "%s/%s", api_registry_host(x), name),
                          "createdAt", (json_int_t)db_int(res, i, 2),
                          "imageTagMutability", PQgetvalue(res, i, 3),
                          "imageScanningConfiguration", "scanOnPush", PQgetvalue(res, i, 4)[0] == 't',
                          "encryptionConfiguration", "encryptionType", PQgetvalue(res, i, 5));
    if (!PQgetisnull(res, i, 6))
        json_object_set_new(json_object_get(j, "encryptionConfiguration"), "kmsKey",
                            json_string(PQgetvalue(res, i, 6)));
    return j;
}

bool api_repo_exists(struct api *x, const char *name, PGresult **out)
{
    struct perr e;
    PGresult *res = db_exec(x->c->db, x->c->a, &st_get, &e, name);
    if (!res)
        return api_perr(x, &e, NULL, NULL);
    if (PQntuples(res) == 0)
        return api_fail(x, "RepositoryNotFoundException",
                        "The repository with name '%s' does not exist in the registry with id '%s'",
                        name, x->c->cfg->account_id);
    if (out)
        *out = res;
    return true;
}


void op_create_repository(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *mut = api_str(x, "imageTagMutability", false, 16);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name))
        return;
    if (mut && strcmp(mut, "MUTABLE") && strcmp(mut, "IMMUTABLE")) {
        api_fail(x, "InvalidParameterException", "imageTagMutability must be MUTABLE or IMMUTABLE");
        return;
    }
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
            api_fail(x, "InvalidParameterException", "encryptionConfiguration.encryptionType must be AES256, KMS or KMS_DSSE");
            return;
        }
        if (!strcmp(etype, "AES256") && kms) {
            api_fail(x, "InvalidParameterException", "kmsKey is only valid with encryption type KMS");
            return;
        }
    }
    /* A repository under a pull-through cache rule is a cache repository. */
    struct cache_rule rule;
    bool under = false;
    struct perr e;
    if (rules_match(x->c, name, &rule, &under, &e) != PIER_OK) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    char rid[24];
    snprintf(rid, sizeof rid, "%lld", under ? rule.id : 0);
    if (db_begin(x->c->db, &e) != PIER_OK) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    PGresult *res = db_exec(x->c->db, x->c->a, &st_create, &e, name, rid, mut ? mut : "MUTABLE",
                            scan ? "true" : "false", etype, kms);
    if (!res) {
        db_rollback(x->c->db);
        api_perr(x, &e, NULL, NULL);
        return;
    }
    if (PQntuples(res) == 0) {
        db_rollback(x->c->db);
        api_fail(x, "RepositoryAlreadyExistsException",
                 "The repository with name '%s' already exists in the registry with id '%s'", name,
                 x->c->cfg->account_id);
        return;
    }
    if (!api_put_tags(x, authz_repo_arn(x->c, name), json_object_get(x->in, "tags"))) {
        db_rollback(x->c->db);
        return;
    }
    if (db_commit(x->c->db, &e) != PIER_OK) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    PGresult *row;
    if (api_repo_exists(x, name, &row))
        json_object_set_new(x->out, "repository", repo_json(x, row, 0));
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
            api_fail(x, "InvalidParameterException", "repositoryNames must list 1 to 100 names");
            return;
        }
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n) {
            const char *name = json_string_value(n);
            struct perr ge;
            if (!name || grammar_name(name, &ge) != PIER_OK) {
                api_fail(x, "InvalidParameterException", "repositoryNames[%zu] must be a repository name%s%s",
                         i, name ? ": " : "", name ? ge.msg : "");
                break;
            }
            struct perr de;
            if (authz_check(x->c, action, name, &de) != PIER_OK) {
                api_fail(x, "AccessDeniedException", "%s", de.msg);
                break;
            }
            PGresult *res;
            if (!api_repo_exists(x, name, &res))
                break;
            json_array_append_new(list, repo_json(x, res, 0));
        }
    } else {
        char l[24], o[24];
        snprintf(l, sizeof l, "%lld", limit + 1);
        snprintf(o, sizeof o, "%lld", offset);
        PGresult *res = db_exec(x->c->db, x->c->a, &st_list, &e, l, o);
        if (!res) {
            json_decref(list);
            api_perr(x, &e, NULL, NULL);
            return;
        }
        int rows = PQntuples(res);
        for (int i = 0; i < rows && i < limit; i++)
            if (authz_allowed(x->c, action, PQgetvalue(res, i, 1)))
                json_array_append_new(list, repo_json(x, res, i));
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
    PGresult *row;
    if (!api_repo_exists(x, name, &row))
        return;
    json_t *repo = repo_json(x, row, 0);
    struct perr e;
    PGresult *res = db_exec(x->c->db, x->c->a, &st_count_images, &e, name);
    if (!res) {
        json_decref(repo);
        api_perr(x, &e, NULL, NULL);
        return;
    }
    if (db_int(res, 0, 0) > 0 && !force) {
        json_decref(repo);
        api_fail(x, "RepositoryNotEmptyException",
                 "The repository with name '%s' in registry with id '%s' cannot be deleted because it "
                 "still contains images", name, x->c->cfg->account_id);
        return;
    }
    if (!db_exec(x->c->db, x->c->a, &st_delete, &e, name) ||
        !db_exec(x->c->db, x->c->a, &st_delete_tags, &e, authz_repo_arn(x->c, name))) {
        json_decref(repo);
        api_perr(x, &e, NULL, NULL);
        return;
    }
    json_object_set_new(x->out, "repository", repo);
}
void op_put_image_tag_mutability(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *mut = api_str(x, "imageTagMutability", true, 16);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    if (strcmp(mut, "MUTABLE") && strcmp(mut, "IMMUTABLE")) {
        api_fail(x, "InvalidParameterException", "imageTagMutability must be MUTABLE or IMMUTABLE");
        return;
    }
    struct perr e;
    if (!db_exec(x->c->db, x->c->a, &st_mutability, &e, name, mut)) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "imageTagMutability", json_string(mut));
}
