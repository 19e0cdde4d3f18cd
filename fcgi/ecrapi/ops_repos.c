/* ops_repos: repositories, their policies, images, tag mutability, creation
 * templates and resource tags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/authz.h"
#include "cache/rules.h"
#include "db/db.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/manifest.h"
#include "store/repo.h"
#include "store/templates.h"

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
static const struct db_stmt st_image_ids = {
    "api_image_ids",
    "SELECT m.digest, t.name FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest"
    " WHERE r.name = $1 AND ($2 = 'ANY' OR ($2 = 'TAGGED') = (t.name IS NOT NULL))"
    " ORDER BY m.digest, t.name LIMIT $3::bigint OFFSET $4::bigint", 4};
static const struct db_stmt st_images = {
    "api_images",
    "SELECT m.digest, m.media_type, m.artifact_type, m.size, extract(epoch FROM m.created_at)::bigint,"
    " coalesce(extract(epoch FROM m.last_pulled_at)::bigint, 0), m.body,"
    " coalesce((SELECT json_agg(t.name ORDER BY t.name) FROM tags t"
    "   WHERE t.repository_id = m.repository_id AND t.digest = m.digest), '[]')::text"
    " FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " WHERE r.name = $1 AND ($2::text IS NULL OR m.digest = $2)"
    " AND ($5 = 'ANY' OR ($5 = 'TAGGED') = EXISTS (SELECT 1 FROM tags t"
    "      WHERE t.repository_id = m.repository_id AND t.digest = m.digest))"
    " ORDER BY m.created_at, m.digest LIMIT $3::bigint OFFSET $4::bigint", 5};
static const struct db_stmt st_tag_digest = {
    "api_tag_digest",
    "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id"
    " WHERE r.name = $1 AND t.name = $2", 2};
static const struct db_stmt st_tags_left = {
    "api_tags_left",
    "SELECT count(*) FROM tags t JOIN repositories r ON r.id = t.repository_id"
    " WHERE r.name = $1 AND t.digest = $2", 2};
static const struct db_stmt st_tags_list = {
    "api_tags_list", "SELECT key, value FROM resource_tags WHERE resource_arn = $1 ORDER BY key", 1};
static const struct db_stmt st_tag_put = {
    "api_tag_put",
    "INSERT INTO resource_tags(resource_arn, key, value) VALUES ($1, $2, $3)"
    " ON CONFLICT (resource_arn, key) DO UPDATE SET value = EXCLUDED.value", 3};
static const struct db_stmt st_tag_del = {
    "api_tag_del", "DELETE FROM resource_tags WHERE resource_arn = $1 AND key = $2", 2};
static const struct db_stmt st_tag_count = {
    "api_tag_count", "SELECT count(*) FROM resource_tags WHERE resource_arn = $1", 1};

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

static bool repo_exists(struct api *x, const char *name, PGresult **out)
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

/* Tags as [{Key, Value}] into resource_tags of arn. */
static bool put_tags(struct api *x, const char *arn, json_t *tags)
{
    if (!tags)
        return true;
    if (!json_is_array(tags))
        return api_fail(x, "InvalidTagParameterException", "tags must be a list of {Key, Value}");
    size_t i;
    json_t *t;
    struct perr e;
    json_array_foreach(tags, i, t) {
        const char *k = json_string_value(json_object_get(t, "Key"));
        const char *v = json_string_value(json_object_get(t, "Value"));
        if (!k || !*k || strlen(k) > 128 || (v && strlen(v) > 256) || strncmp(k, "aws:", 4) == 0)
            return api_fail(x, "InvalidTagParameterException",
                            "tags[%zu]: Key must be 1-128 characters not starting with aws:, Value at most 256", i);
        if (!db_exec(x->c->db, x->c->a, &st_tag_put, &e, arn, k, v ? v : ""))
            return api_perr(x, &e, NULL, NULL);
    }
    PGresult *res = db_exec(x->c->db, x->c->a, &st_tag_count, &e, arn);
    if (res && db_int(res, 0, 0) > 50)
        return api_fail(x, "TooManyTagsException", "a resource can have at most 50 tags");
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
    if (!put_tags(x, authz_repo_arn(x->c, name), json_object_get(x->in, "tags"))) {
        db_rollback(x->c->db);
        return;
    }
    if (db_commit(x->c->db, &e) != PIER_OK) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    PGresult *row;
    if (repo_exists(x, name, &row))
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
            if (!repo_exists(x, name, &res))
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
    if (!repo_exists(x, name, &row))
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
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    struct perr e;
    if (repository_policy_put(x->c, name, doc, &e) != PIER_OK) {
        api_perr(x, &e, "RepositoryNotFoundException", NULL);
        return;
    }
    policy_out(x, name, doc);
}

void op_get_repository_policy(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    struct perr e;
    const char *doc;
    if (repository_policy_get(x->c, name, &doc, &e) != PIER_OK) {
        api_perr(x, &e, "RepositoryPolicyNotFoundException", NULL);
        return;
    }
    policy_out(x, name, doc);
}

void op_delete_repository_policy(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    struct perr e;
    const char *doc;
    if (repository_policy_get(x->c, name, &doc, &e) != PIER_OK ||
        repository_policy_delete(x->c, name, &e) != PIER_OK) {
        api_perr(x, &e, "RepositoryPolicyNotFoundException", NULL);
        return;
    }
    policy_out(x, name, doc);
}

void op_list_images(struct api *x)
{
    const char *name = api_repo_name(x, true);
    long long limit, offset;
    if (x->err_type || !api_registry_id(x) || !api_page(x, 1000, &limit, &offset) ||
        !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    const char *status = "ANY";
    json_t *filter = json_object_get(x->in, "filter");
    if (filter) {
        status = json_string_value(json_object_get(filter, "tagStatus"));
        if (!status || (strcmp(status, "TAGGED") && strcmp(status, "UNTAGGED") && strcmp(status, "ANY"))) {
            api_fail(x, "InvalidParameterException", "filter.tagStatus must be TAGGED, UNTAGGED or ANY");
            return;
        }
    }
    char l[24], o[24];
    snprintf(l, sizeof l, "%lld", limit + 1);
    snprintf(o, sizeof o, "%lld", offset);
    struct perr e;
    PGresult *res = db_exec(x->c->db, x->c->a, &st_image_ids, &e, name, status, l, o);
    if (!res) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    json_t *ids = json_array();
    for (int i = 0; i < PQntuples(res) && i < limit; i++) {
        json_t *id = json_pack("{s:s}", "imageDigest", PQgetvalue(res, i, 0));
        if (!PQgetisnull(res, i, 1))
            json_object_set_new(id, "imageTag", json_string(PQgetvalue(res, i, 1)));
        json_array_append_new(ids, id);
    }
    api_next(x, offset, limit, PQntuples(res) > limit);
    json_object_set_new(x->out, "imageIds", ids);
}

/* Digest named by an imageId ({imageDigest} or {imageTag}); NULL with
 * *code set when it cannot be resolved. */
static const char *resolve(struct api *x, const char *name, json_t *id, const char **code,
                           const char **reason)
{
    const char *d = json_string_value(json_object_get(id, "imageDigest"));
    const char *t = json_string_value(json_object_get(id, "imageTag"));
    struct perr e;
    if (!d && !t) {
        *code = "MissingDigestAndTag";
        *reason = "Requested image needs a digest or a tag";
        return NULL;
    }
    if (d && grammar_digest(d, NULL, &e) != PIER_OK) {
        *code = "InvalidImageDigest";
        *reason = "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'";
        return NULL;
    }
    if (t && grammar_tag(t, &e) != PIER_OK) {
        *code = "InvalidImageTag";
        *reason = "Invalid request parameters: image tag should satisfy the OCI tag grammar";
        return NULL;
    }
    if (!t)
        return d;
    PGresult *res = db_exec(x->c->db, x->c->a, &st_tag_digest, &e, name, t);
    if (!res || PQntuples(res) == 0) {
        *code = "ImageNotFound";
        *reason = "Requested image not found";
        return NULL;
    }
    const char *got = PQgetvalue(res, 0, 0);
    if (d && strcmp(d, got) != 0) {
        *code = "ImageTagDoesNotMatchDigest";
        *reason = "Invalid request parameters: the image tag does not match the digest";
        return NULL;
    }
    return got;
}

static json_t *failure(json_t *id, const char *code, const char *reason)
{
    return json_pack("{s:O, s:s, s:s}", "imageId", id, "failureCode", code, "failureReason", reason);
}

/* imageSizeInBytes: the manifest's own descriptors (config and layers). */
static long long image_size(const char *body, long long len)
{
    json_t *j = json_loadb(body, (size_t)len, 0, NULL);
    long long n = 0;
    json_t *cfg = json_object_get(j, "config");
    if (cfg)
        n = size_add(n, json_integer_value(json_object_get(cfg, "size")));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(j, "layers"), i, l)
        n = size_add(n, json_integer_value(json_object_get(l, "size")));
    json_decref(j);
    return n ? n : len;
}

void op_describe_images(struct api *x)
{
    const char *name = api_repo_name(x, true);
    long long limit, offset;
    if (x->err_type || !api_registry_id(x) || !api_page(x, 1000, &limit, &offset) ||
        !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    json_t *want = json_object_get(x->in, "imageIds");
    if (want && (!json_is_array(want) || json_array_size(want) < 1 || json_array_size(want) > 100)) {
        api_fail(x, "InvalidParameterException", "imageIds must list 1 to 100 images");
        return;
    }
    const char *status = "ANY";
    json_t *filter = json_object_get(x->in, "filter");
    if (filter) {
        status = json_string_value(json_object_get(filter, "tagStatus"));
        if (!status || (strcmp(status, "TAGGED") && strcmp(status, "UNTAGGED") && strcmp(status, "ANY"))) {
            api_fail(x, "InvalidParameterException", "filter.tagStatus must be TAGGED, UNTAGGED or ANY");
            return;
        }
    }
    json_t *details = json_array();
    struct perr e;
    size_t nwant = json_is_array(want) ? json_array_size(want) : 1;
    for (size_t k = 0; k < nwant && !x->err_type; k++) {
        const char *digest = NULL;
        if (json_is_array(want)) {
            const char *code, *reason;
            digest = resolve(x, name, json_array_get(want, k), &code, &reason);
            if (!digest) {
                api_fail(x, !strcmp(code, "ImageNotFound") ? "ImageNotFoundException" : "InvalidParameterException",
                         "%s", reason);
                break;
            }
        }
        char l[24], o[24];
        snprintf(l, sizeof l, "%lld", digest ? 1 : limit + 1);
        snprintf(o, sizeof o, "%lld", digest ? 0 : offset);
        struct db_param p[5] = {{.value = name}, {.value = digest}, {.value = l}, {.value = o},
                                {.value = digest ? "ANY" : status}};
        PGresult *res = db_execp(x->c->db, x->c->a, &st_images, p, false, &e);
        if (!res) {
            api_perr(x, &e, NULL, NULL);
            break;
        }
        if (digest && PQntuples(res) == 0) {
            api_fail(x, "ImageNotFoundException", "The image with imageId {imageDigest:'%s'} does not exist "
                     "within the repository with name '%s'", digest, name);
            break;
        }
        int rows = PQntuples(res);
        for (int i = 0; i < rows && (digest || i < limit); i++) {
            /* bytea comes hex-encoded in text results */
            size_t blen = 0;
            unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 6), &blen);
            json_t *d = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:s}", "registryId",
                                  x->c->cfg->account_id, "repositoryName", name, "imageDigest",
                                  PQgetvalue(res, i, 0), "imageTags",
                                  json_loads(PQgetvalue(res, i, 7), 0, NULL), "imageSizeInBytes",
                                  (json_int_t)(body ? image_size((const char *)body, (long long)blen) : 0),
                                  "imagePushedAt", (json_int_t)db_int(res, i, 4),
                                  "imageManifestMediaType", PQgetvalue(res, i, 1));
            PQfreemem(body);
            if (!PQgetisnull(res, i, 2))
                json_object_set_new(d, "artifactMediaType", json_string(PQgetvalue(res, i, 2)));
            if (db_int(res, i, 5))
                json_object_set_new(d, "lastRecordedPullTime", json_integer(db_int(res, i, 5)));
            if (json_array_size(json_object_get(d, "imageTags")) == 0)
                json_object_del(d, "imageTags");
            json_array_append_new(details, d);
        }
        if (!digest)
            api_next(x, offset, limit, rows > limit);
    }
    json_object_set_new(x->out, "imageDetails", details);
}

void op_batch_get_image(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    json_t *ids = json_object_get(x->in, "imageIds");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        api_fail(x, "InvalidParameterException", "imageIds must list 1 to 100 images");
        return;
    }
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
    json_t *images = json_array(), *failures = json_array();
    json_array_foreach(ids, i, v) {
        const char *code, *reason;
        const char *digest = resolve(x, name, v, &code, &reason);
        if (!digest) {
            json_array_append_new(failures, failure(v, code, reason));
            continue;
        }
        struct stored_manifest sm;
        struct perr e;
        if (repo_manifest_get(x->c, name, digest, true, &sm, &e) != PIER_OK) {
            json_array_append_new(failures, failure(v, "ImageNotFound", "Requested image not found"));
            continue;
        }
        if (accept[0] && !manifest_accepts(accept, sm.media_type)) {
            json_array_append_new(failures, failure(v, "UnsupportedImageType",
                                                    "The image's media type is not among acceptedMediaTypes"));
            continue;
        }
        json_t *id = json_pack("{s:s}", "imageDigest", sm.digest);
        const char *tag = json_string_value(json_object_get(v, "imageTag"));
        if (tag)
            json_object_set_new(id, "imageTag", json_string(tag));
        json_array_append_new(images, json_pack("{s:s, s:s, s:o, s:s%, s:s}", "registryId",
                                                x->c->cfg->account_id, "repositoryName", name,
                                                "imageId", id, "imageManifest", sm.body,
                                                (size_t)sm.size, "imageManifestMediaType",
                                                sm.media_type));
    }
    json_object_set_new(x->out, "images", images);
    json_object_set_new(x->out, "failures", failures);
}

void op_batch_delete_image(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    json_t *ids = json_object_get(x->in, "imageIds");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        api_fail(x, "InvalidParameterException", "imageIds must list 1 to 100 images");
        return;
    }
    json_t *done = json_array(), *failures = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        const char *code, *reason;
        const char *digest = resolve(x, name, v, &code, &reason);
        if (!digest) {
            json_array_append_new(failures, failure(v, code, reason));
            continue;
        }
        const char *tag = json_string_value(json_object_get(v, "imageTag"));
        struct perr e;
        pier_err rc = repo_manifest_delete(x->c, name, tag ? tag : digest, &e);
        if (rc == PIER_E_DENIED) {
            api_fail(x, "InvalidParameterException", "%s", e.msg);
            break;
        }
        if (rc) {
            json_array_append_new(failures, failure(v, "ImageNotFound", "Requested image not found"));
            continue;
        }
        /* ECR semantics: an image whose last tag goes is deleted with it. */
        if (tag) {
            PGresult *left = db_exec(x->c->db, x->c->a, &st_tags_left, &e, name, digest);
            if (left && db_int(left, 0, 0) == 0 &&
                repo_manifest_delete(x->c, name, digest, &e) != PIER_OK)
                log_warn("BatchDeleteImage %s@%s: the untagged image stays: %s", name, digest, e.msg);
        }
        json_t *id = json_pack("{s:s}", "imageDigest", digest);
        if (tag)
            json_object_set_new(id, "imageTag", json_string(tag));
        json_array_append_new(done, id);
    }
    json_object_set_new(x->out, "imageIds", done);
    json_object_set_new(x->out, "failures", failures);
}

void op_put_image_tag_mutability(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *mut = api_str(x, "imageTagMutability", true, 16);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !repo_exists(x, name, NULL))
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

/* ---- repository creation templates ---- */

static void template_out(struct api *x, const char *prefix)
{
    json_t *t;
    struct perr e;
    if (templates_get(x->c, prefix, &t, &e) != PIER_OK) {
        api_perr(x, &e, "TemplateNotFoundException", NULL);
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
            api_perr(x, &e, "TemplateNotFoundException", NULL);
            return;
        }
        json_object_update_missing(t, old);
        json_decref(old);
    }
    if (templates_put(x->c, prefix, t, create, &e) != PIER_OK) {
        json_decref(t);
        api_perr(x, &e, "TemplateNotFoundException", "TemplateAlreadyExistsException");
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
        api_perr(x, &e, "TemplateNotFoundException", NULL);
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
                api_fail(x, "TemplateNotFoundException", "no repository creation template with prefix %s",
                         json_is_string(p) ? json_string_value(p) : "?");
                break;
            }
            json_array_append_new(out, t);
        }
    } else {
        json_t *all = json_array();
        if (templates_list(x->c, all, &e) != PIER_OK) {
            api_perr(x, &e, NULL, NULL);
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

/* ---- resource tags ---- */

/* The repository behind a repository ARN of this registry, or NULL. */
static const char *arn_repo(struct api *x, const char *arn)
{
    const char *prefix = arena_printf(x->r->a, "arn:aws:ecr:%s:%s:repository/", x->c->cfg->region,
                                      x->c->cfg->account_id);
    if (!arn || strncmp(arn, prefix, strlen(prefix)) != 0) {
        api_fail(x, "InvalidParameterException", "resourceArn must be a repository ARN of this registry (%s...)",
                 prefix);
        return NULL;
    }
    const char *name = arn + strlen(prefix);
    struct perr e;
    if (grammar_name(name, &e) != PIER_OK) {
        api_fail(x, "InvalidParameterException", "resourceArn: %s", e.msg);
        return NULL;
    }
    return name;
}

void op_list_tags_for_resource(struct api *x)
{
    const char *arn = api_str(x, "resourceArn", true, 1024);
    const char *name = x->err_type ? NULL : arn_repo(x, arn);
    if (!name || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    struct perr e;
    PGresult *res = db_exec(x->c->db, x->c->a, &st_tags_list, &e, arn);
    if (!res) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    json_t *tags = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(tags, json_pack("{s:s, s:s}", "Key", PQgetvalue(res, i, 0), "Value",
                                              PQgetvalue(res, i, 1)));
    json_object_set_new(x->out, "tags", tags);
}

void op_tag_resource(struct api *x)
{
    const char *arn = api_str(x, "resourceArn", true, 1024);
    const char *name = x->err_type ? NULL : arn_repo(x, arn);
    if (!name || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    json_t *tags = json_object_get(x->in, "tags");
    if (!json_is_array(tags)) {
        api_fail(x, "InvalidParameterException", "tags is required");
        return;
    }
    struct perr e;
    if (db_begin(x->c->db, &e) != PIER_OK) {
        api_perr(x, &e, NULL, NULL);
        return;
    }
    if (!put_tags(x, arn, tags) || db_commit(x->c->db, &e) != PIER_OK) {
        db_rollback(x->c->db);
        if (!x->err_type)
            api_perr(x, &e, NULL, NULL);
    }
}

void op_untag_resource(struct api *x)
{
    const char *arn = api_str(x, "resourceArn", true, 1024);
    const char *name = x->err_type ? NULL : arn_repo(x, arn);
    if (!name || !api_authorize(x, name) || !repo_exists(x, name, NULL))
        return;
    json_t *keys = json_object_get(x->in, "tagKeys");
    if (!json_is_array(keys)) {
        api_fail(x, "InvalidParameterException", "tagKeys is required");
        return;
    }
    size_t i;
    json_t *k;
    struct perr e;
    json_array_foreach(keys, i, k) {
        if (!json_is_string(k)) {
            api_fail(x, "InvalidParameterException", "tagKeys[%zu] must be a string", i);
            return;
        }
        if (!db_exec(x->c->db, x->c->a, &st_tag_del, &e, arn, json_string_value(k))) {
            api_perr(x, &e, NULL, NULL);
            return;
        }
    }
}
