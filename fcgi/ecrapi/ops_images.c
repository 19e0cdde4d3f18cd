/* ops_images: images of a repository — ListImages, DescribeImages,
 * BatchGetImage, BatchDeleteImage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db/db.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "lib/util.h"
#include "store/manifest.h"
#include "store/repo.h"

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

void op_list_images(struct api *x)
{
    const char *name = api_repo_name(x, true);
    long long limit, offset;
    if (x->err_type || !api_registry_id(x) || !api_page(x, 1000, &limit, &offset) ||
        !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
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
        !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
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
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
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
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
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
            if (left && db_int(left, 0, 0) == 0)
                repo_manifest_delete(x->c, name, digest, &e);
        }
        json_t *id = json_pack("{s:s}", "imageDigest", digest);
        if (tag)
            json_object_set_new(id, "imageTag", json_string(tag));
        json_array_append_new(done, id);
    }
    json_object_set_new(x->out, "imageIds", done);
    json_object_set_new(x->out, "failures", failures);
}
