/* ops_images: images of a repository — ListImages, DescribeImages,
 * BatchGetImage, BatchDeleteImage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/manifest.h"
#include "store/repo.h"

const char *api_tag_status(struct api *x)
{
    json_t *filter = json_object_get(x->in, "filter");
    if (!filter)
        return "ANY";
    const char *status = json_string_value(json_object_get(filter, "tagStatus"));
    if (!status || (strcmp(status, "TAGGED") && strcmp(status, "UNTAGGED") && strcmp(status, "ANY"))) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "filter.tagStatus must be TAGGED, UNTAGGED or ANY");
        return NULL;
    }
    return status;
}

void op_list_images(struct api *x)
{
    const char *name = api_repo_name(x, true);
    long long limit, offset;
    if (x->err_type || !api_registry_id(x) || !api_page(x, 1000, &limit, &offset) ||
        !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    const char *status = api_tag_status(x);
    if (!status)
        return;
    struct perr e;
    struct repo_image_id *found;
    int rows;
    if (repo_image_ids(x->c, name, status, limit + 1, offset, &found, &rows, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_t *ids = json_array();
    for (int i = 0; i < rows && i < limit; i++) {
        json_t *id = json_pack("{s:s}", "imageDigest", found[i].digest);
        if (found[i].tag)
            json_object_set_new(id, "imageTag", json_string(found[i].tag));
        json_array_append_new(ids, id);
    }
    api_next(x, offset, limit, rows > limit);
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
    const char *got;
    if (repo_tag_digest(x->c, name, t, &got, &e) != PIER_OK) {
        *code = "ImageNotFound";
        *reason = "Requested image not found";
        return NULL;
    }
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
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds must list 1 to 100 images");
        return;
    }
    const char *status = api_tag_status(x);
    if (!status)
        return;
    json_t *details = json_array();
    struct perr e;
    size_t nwant = json_is_array(want) ? json_array_size(want) : 1;
    for (size_t k = 0; k < nwant && !x->err_type; k++) {
        const char *digest = NULL;
        if (json_is_array(want)) {
            const char *code, *reason;
            digest = resolve(x, name, json_array_get(want, k), &code, &reason);
            if (!digest) {
                api_fail(x, !strcmp(code, "ImageNotFound") ? ECR_EXC_IMAGE_NOT_FOUND : ECR_EXC_INVALID_PARAMETER,
                         "%s", reason);
                break;
            }
        }
        struct repo_image *imgs;
        int rows;
        if (repo_images(x->c, name, digest, digest ? "ANY" : status, digest ? 1 : limit + 1,
                        digest ? 0 : offset, &imgs, &rows, &e) != PIER_OK) {
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
            break;
        }
        if (digest && rows == 0) {
            api_fail(x, ECR_EXC_IMAGE_NOT_FOUND, "The image with imageId {imageDigest:'%s'} does not exist "
                     "within the repository with name '%s'", digest, name);
            break;
        }
        for (int i = 0; i < rows && (digest || i < limit); i++) {
            const struct repo_image *m = &imgs[i];
            json_int_t size = m->body ? image_size(m->body, (long long)m->body_len) : 0;
            json_t *d = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:s}", "registryId",
                                  x->c->cfg->account_id, "repositoryName", name, "imageDigest",
                                  m->digest, "imageTags", json_loads(m->tags_json, 0, NULL),
                                  "imageSizeInBytes", size, "imagePushedAt",
                                  (json_int_t)m->pushed_at, "imageManifestMediaType",
                                  m->media_type);
            if (m->artifact_type)
                json_object_set_new(d, "artifactMediaType", json_string(m->artifact_type));
            if (m->last_pulled_at)
                json_object_set_new(d, "lastRecordedPullTime", json_integer(m->last_pulled_at));
            if (json_array_size(json_object_get(d, "imageTags")) == 0)
                json_object_del(d, "imageTags");
            json_array_append_new(details, d);
        }
        if (!digest)
            api_next(x, offset, limit, rows > limit);
    }
    json_object_set_new(x->out, "imageDetails", details);
}

/* The repository and the imageIds (1 to 100) of a batch operation, after the
 * checks every batch makes first; NULL when one failed (x holds the error). */
static json_t *batch_ids(struct api *x, const char **name)
{
    *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, *name) ||
        !api_repo_exists(x, *name, NULL))
        return NULL;
    json_t *ids = json_object_get(x->in, "imageIds");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds must list 1 to 100 images");
        return NULL;
    }
    return ids;
}

void op_batch_get_image(struct api *x)
{
    const char *name;
    json_t *ids = batch_ids(x, &name);
    if (!ids)
        return;
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
    const char *name;
    json_t *ids = batch_ids(x, &name);
    if (!ids)
        return;
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
        /* ECR semantics: a tag goes alone unless it is the image's last; an
         * image goes with all its tags. Cache repositories too: the next pull
         * fetches it again. */
        long long tags = 0;
        pier_err rc = tag ? repo_tags_on(x->c, name, digest, &tags, &e) : PIER_OK;
        if (rc == PIER_OK)
            rc = tag && tags > 1 ? repo_tag_delete(x->c, name, tag, &e)
                                 : repo_image_delete(x->c, name, digest, &e);
        if (rc == PIER_E_CONFLICT) {
            json_array_append_new(failures, failure(v, "ImageReferencedByManifestList", e.msg));
            continue;
        }
        if (rc == PIER_E_MANIFEST_UNKNOWN || rc == PIER_E_NAME_UNKNOWN) {
            json_array_append_new(failures, failure(v, "ImageNotFound", "Requested image not found"));
            continue;
        }
        if (rc) {
            api_perr(x, &e, ECR_EXC_IMAGE_NOT_FOUND, ECR_EXC_INVALID_PARAMETER);
            break;
        }
        json_t *id = json_pack("{s:s}", "imageDigest", digest);
        if (tag)
            json_object_set_new(id, "imageTag", json_string(tag));
        json_array_append_new(done, id);
    }
    json_object_set_new(x->out, "imageIds", done);
    json_object_set_new(x->out, "failures", failures);
}
