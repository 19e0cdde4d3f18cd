/* ops_images: images of a repository — ListImages, DescribeImages,
 * BatchGetImage, BatchDeleteImage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cache/upstream.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"
#include "serve/manifest.h"
#include "store/manifest.h"
#include "store/repo.h"
#include "store/rules.h"

/* The filter of ListImages and DescribeImages: filter.tagStatus (TAGGED,
 * UNTAGGED or ANY, the default) is returned; filter.imageStatus (ACTIVE, the
 * default, ARCHIVED, ACTIVATING or ANY) sets *none when it selects nothing:
 * Pier archives no image, so every image is ACTIVE. Either member may be
 * left out. NULL when malformed (x holds the error). */
static const char *read_filter(struct api *x, bool *none)
{
    *none = false;
    json_t *filter = json_object_get(x->in, "filter");
    if (!filter || json_is_null(filter))
        return "ANY";
    if (!json_is_object(filter)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "filter must be an object");
        return NULL;
    }
    json_t *t = json_object_get(filter, "tagStatus");
    json_t *i = json_object_get(filter, "imageStatus");
    const char *tag = t && !json_is_null(t) ? json_string_value(t) : "ANY";
    const char *image = i && !json_is_null(i) ? json_string_value(i) : "ACTIVE";
    if (!tag || (strcmp(tag, "TAGGED") && strcmp(tag, "UNTAGGED") && strcmp(tag, "ANY"))) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "filter.tagStatus must be TAGGED, UNTAGGED or ANY");
        return NULL;
    }
    if (!image || (strcmp(image, "ACTIVE") && strcmp(image, "ARCHIVED") &&
                   strcmp(image, "ACTIVATING") && strcmp(image, "ANY"))) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "filter.imageStatus must be ACTIVE, ARCHIVED, ACTIVATING or ANY");
        return NULL;
    }
    *none = strcmp(image, "ARCHIVED") == 0 || strcmp(image, "ACTIVATING") == 0;
    return tag;
}

const char *api_tag_status(struct api *x)
{
    bool none;
    return read_filter(x, &none);
}

void op_list_images(struct api *x)
{
    const char *name = api_repo_name(x, true);
    long long limit, offset;
    if (x->err_type || !api_registry_id(x) || !api_page(x, 1000, &limit, &offset) ||
        !api_authorize(x, name) || !api_repo_exists(x, name, NULL))
        return;
    bool none;
    const char *status = read_filter(x, &none);
    if (!status)
        return;
    struct perr e;
    struct repo_image_id *found;
    int rows = 0;
    if (!none &&
        repo_image_ids(x->c, name, status, limit + 1, offset, &found, &rows, &e) != PIER_OK) {
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

/* The digest (*d) and tag (*t) of an imageId, either may be NULL but not
 * both, checked against the grammars; false with *code (one of the model's
 * ImageFailureCode values) and *reason set when they are not usable. */
static bool check_id(json_t *id, const char **d, const char **t, const char **code,
                     const char **reason)
{
    *d = json_string_value(json_object_get(id, "imageDigest"));
    *t = json_string_value(json_object_get(id, "imageTag"));
    struct perr e;
    if (!*d && !*t) {
        *code = "MissingDigestAndTag";
        *reason = "Requested image needs a digest or a tag";
        return false;
    }
    if (*d && grammar_digest(*d, NULL, &e) != PIER_OK) {
        *code = "InvalidImageDigest";
        *reason = "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'";
        return false;
    }
    if (*t && grammar_tag(*t, &e) != PIER_OK) {
        *code = "InvalidImageTag";
        *reason = "Invalid request parameters: image tag should satisfy the OCI tag grammar";
        return false;
    }
    return true;
}

/* Digest named by an imageId ({imageDigest} or {imageTag}) in the local
 * store; NULL with *code set when it cannot be resolved. */
static const char *resolve(struct api *x, const char *name, json_t *id, const char **code,
                           const char **reason)
{
    const char *d, *t;
    struct perr e;
    if (!check_id(id, &d, &t, code, reason))
        return NULL;
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

/* imageSizeInBytes as ECR reports it: for an image the sizes of its
 * manifest's descriptors (config and layers); for an index ("a manifest
 * list") the largest of the images it lists, of those the repository holds
 * (a cache repository fetches the others on demand: until then they do not
 * count, and an index none of whose images is here has size 0). */
static long long image_size(const struct repo_image *m)
{
    if (!m->body)
        return 0;
    json_t *j = json_loadb(m->body, m->body_len, 0, NULL);
    long long n = 0;
    if (json_is_array(json_object_get(j, "manifests"))) {
        json_decref(j);
        return m->largest_child;
    }
    json_t *cfg = json_object_get(j, "config");
    if (cfg)
        n = size_add(n, json_integer_value(json_object_get(cfg, "size")));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(j, "layers"), i, l)
        n = size_add(n, json_integer_value(json_object_get(l, "size")));
    json_decref(j);
    return n ? n : (long long)m->body_len;
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
    bool none;
    const char *status = read_filter(x, &none);
    if (!status)
        return;
    json_t *details = json_array();
    struct perr e;
    /* imageStatus selecting nothing lists nothing; named images are
     * described whatever the filter says, as tagStatus has always been. */
    size_t nwant = json_is_array(want) ? json_array_size(want) : none ? 0 : 1;
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
            json_t *d = json_pack("{s:s, s:s, s:s, s:o, s:I, s:o, s:s, s:s}", "registryId",
                                  x->c->cfg->account_id, "repositoryName", name, "imageDigest",
                                  m->digest, "imageTags", json_loads(m->tags_json, 0, NULL),
                                  "imageSizeInBytes", (json_int_t)image_size(m), "imagePushedAt",
                                  api_time(m->pushed_ms), "imageManifestMediaType", m->media_type,
                                  "imageStatus", "ACTIVE");
            if (m->artifact_type)
                json_object_set_new(d, "artifactMediaType", json_string(m->artifact_type));
            if (m->last_pulled_ms)
                json_object_set_new(d, "lastRecordedPullTime", api_time(m->last_pulled_ms));
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
 * checks every batch makes first; NULL when one failed (x holds the error).
 * pull: a repository that does not exist yet is fine in the namespace of a
 * pull-through cache rule (pulling creates it, as docker pull does). */
static json_t *batch_ids(struct api *x, const char **name, bool pull)
{
    *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, *name))
        return NULL;
    struct perr e;
    bool exists = false, under = false;
    struct cache_rule rule;
    if (repo_exists_named(x->c, *name, &exists, &e) != PIER_OK ||
        (!exists && pull && rules_match(x->c, *name, &rule, &under, &e) != PIER_OK)) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return NULL;
    }
    if (!exists && !under && !api_repo_exists(x, *name, NULL))
        return NULL;
    json_t *ids = json_object_get(x->in, "imageIds");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageIds must list 1 to 100 images");
        return NULL;
    }
    return ids;
}

/* A pull that failed for one image: its ImageFailureCode and reason (true),
 * or false when the whole call fails (the caller's permissions, the
 * server's faults). */
static bool pull_failure(const struct perr *e, const char **code, const char **reason)
{
    *reason = e->msg;
    switch (e->code) {
    case PIER_E_NAME_UNKNOWN:
    case PIER_E_MANIFEST_UNKNOWN:
        *code = "ImageNotFound";
        *reason = "Requested image not found";
        return true;
    case PIER_E_TOOMANYREQUESTS:
        *code = "UpstreamTooManyRequests";
        return true;
    case PIER_E_UPSTREAM:
    case PIER_E_UPSTREAM_TIMEOUT:
        *code = strcmp(e->detail, upstream_failure_name(UPF_AUTH)) == 0 ? "UpstreamAccessDenied"
                                                                        : "UpstreamUnavailable";
        return true;
    default:
        return false;
    }
}

void op_batch_get_image(struct api *x)
{
    const char *name;
    json_t *ids = batch_ids(x, &name, true);
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
        const char *code, *reason, *digest, *tag;
        if (!check_id(v, &digest, &tag, &code, &reason)) {
            json_array_append_new(failures, failure(v, code, reason));
            continue;
        }
        /* As a pull: the local store, else (a cache repository) the
         * upstream, which may create the repository. */
        struct stored_manifest sm;
        const char *state;
        struct perr e;
        if (serve_manifest_find(x->c, x->r, name, tag ? tag : digest, &sm, &state, &e) != PIER_OK) {
            if (!pull_failure(&e, &code, &reason)) {
                api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
                break;
            }
            json_array_append_new(failures, failure(v, code, reason));
            continue;
        }
        if (tag && digest && strcmp(digest, sm.digest) != 0) {
            json_array_append_new(failures,
                                  failure(v, "ImageTagDoesNotMatchDigest",
                                          "Invalid request parameters: the image tag does "
                                          "not match the digest"));
            continue;
        }
        if (accept[0] && !manifest_accepts(accept, sm.media_type)) {
            /* The model has no code of its own for it: no image of an
             * accepted type is found (Pier converts no manifest). */
            json_array_append_new(failures, failure(v, "ImageNotFound",
                                                    arena_printf(x->r->a,
                                                                 "Requested image not found in an "
                                                                 "accepted media type (it is %s)",
                                                                 sm.media_type)));
            continue;
        }
        json_t *id = json_pack("{s:s}", "imageDigest", sm.digest);
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
    json_t *ids = batch_ids(x, &name, false);
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
