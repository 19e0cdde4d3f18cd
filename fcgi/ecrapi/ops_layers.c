/* ops_layers: ECR's layer and image API — BatchCheckLayerAvailability,
 * InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage and
 * GetDownloadUrlForLayer — over the registry's own upload sessions, store and
 * push rules (store/uploads.c, serve/push.c): a layer started here may be
 * continued on any node, and what is pushed here is pulled through /v2. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include "auth/authn.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "serve/push.h"
#include "store/digest.h"
#include "store/manifest.h"
#include "store/repo.h"
#include "store/uploads.h"

/* The model's bounds: a layer part holds at most 20 MiB; every part but the
 * last at least 5 MiB (LayerPartTooSmallException); a manifest at most 4 MiB
 * characters. InitiateLayerUpload suggests parts of 10 MiB. */
#define LAYER_PART_MAX 20971520LL
#define LAYER_PART_MIN (5LL << 20)
#define LAYER_PART_SIZE (10LL << 20)
#define IMAGE_MANIFEST_MAX 4194304
/* Request bodies: a part travels as base64 in JSON, a manifest as a JSON
 * string (escaped quotes and newlines); 64 KiB for everything else. */
#define PART_B64_MAX (4 * ((LAYER_PART_MAX + 2) / 3))
#define BODY_SLACK (64 << 10)

size_t layers_body_limit(const char *op)
{
    if (strcmp(op, "UploadLayerPart") == 0)
        return (size_t)PART_B64_MAX + BODY_SLACK;
    if (strcmp(op, "PutImage") == 0)
        return 2 * (size_t)IMAGE_MANIFEST_MAX + BODY_SLACK;
    return 0;
}

/* ---- parameters ---- */

/* A digest parameter (layerDigest and the like); NULL when absent or
 * malformed (x holds the error). */
static const char *digest_param(struct api *x, const char *field, const char *value)
{
    struct perr e;
    if (!value)
        return NULL;
    if (grammar_digest(value, NULL, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "Invalid parameter at '%s' failed to satisfy constraint: 'must be a digest "
                 "<algorithm>:<hex>': %s",
                 field, e.msg);
        return NULL;
    }
    return value;
}

/* uploadId: the UUID InitiateLayerUpload answered. The model's pattern also
 * allows upper-case hex; sessions are named in lower case. */
static const char *upload_id(struct api *x)
{
    const char *s = api_str(x, "uploadId", true, 36);
    if (!s)
        return NULL;
    char *id = arena_strdup(x->c->a, s);
    for (char *p = id; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!uuid_valid(id)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "Invalid parameter at 'uploadId' failed to satisfy constraint: 'must be the "
                 "upload id InitiateLayerUpload returned (a UUID)'");
        return NULL;
    }
    return id;
}

/* A required non-negative integer (partFirstByte, partLastByte). */
static bool required_offset(struct api *x, const char *field, long long *out)
{
    json_t *v = json_object_get(x->in, field);
    if (!v || json_is_null(v))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s is required", field);
    return api_int(x, field, 0, GRAMMAR_OFFSET_MAX, out);
}

/* Standard base64 with padding, as the SDKs send blobs, into arena memory. */
static bool decode_base64(struct api *x, const char *in, size_t n, unsigned char **out, size_t *len)
{
    if (n % 4 != 0)
        return false;
    unsigned char *buf = arena_alloc(x->c->a, n / 4 * 3 + 1);
    int got = n ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n) : 0;
    if (got < 0)
        return false;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    size_t pad = n >= 1 && in[n - 1] == '=' ? (n >= 2 && in[n - 2] == '=' ? 2 : 1) : 0;
    *out = buf;
    *len = (size_t)got - pad;
    return true;
}

static const char *uploads_not_found(struct api *x, const char *id, const char *name)
{
    api_fail(x, ECR_EXC_UPLOAD_NOT_FOUND,
             "The upload with id '%s' does not exist in the repository with name '%s' in the "
             "registry with id '%s' (completed, expired, or started for another repository)",
             id, name, x->c->cfg->account_id);
    return NULL;
}

/* InvalidLayerPartException, which says how far the upload got: received
 * bytes, so the last valid one is received - 1 (-1 when none arrived yet). */
static void part_refused(struct api *x, const char *name, const char *id, long long received,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void part_refused(struct api *x, const char *name, const char *id, long long received,
                         const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *fields = json_pack("{s:s, s:s, s:s, s:I}", "registryId", x->c->cfg->account_id,
                               "repositoryName", name, "uploadId", id, "lastValidByteReceived",
                               (json_int_t)(received - 1));
    api_fail_fields(x, fields, ECR_EXC_INVALID_LAYER_PART, "%s", msg);
}

/* A part refused before it reached the session: say where the session
 * stands (or that there is none). */
static void part_invalid(struct api *x, const char *name, const char *id, const char *why)
{
    struct upload u;
    struct perr e;
    pier_err rc = upload_get(x->c, name, id, &u, &e);
    if (rc == PIER_E_BLOB_UPLOAD_UNKNOWN)
        uploads_not_found(x, id, name);
    else if (rc)
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
    else
        part_refused(x, name, id, u.size, "%s", why);
}

/* ---- operations ---- */

void op_batch_check_layer_availability(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) ||
        !api_repo_exists(x, name, NULL))
        return;
    json_t *digests = json_object_get(x->in, "layerDigests");
    if (!json_is_array(digests) || json_array_size(digests) < 1 || json_array_size(digests) > 100) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "layerDigests must list 1 to 100 digests");
        return;
    }
    json_t *layers = json_array(), *failures = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(digests, i, v) {
        const char *d = json_string_value(v);
        struct perr e;
        if (!d || strlen(d) > 1000 || grammar_digest(d, NULL, &e) != PIER_OK) {
            json_array_append_new(failures, json_pack("{s:s, s:s, s:s}", "layerDigest", d ? d : "",
                                                      "failureCode", "InvalidLayerDigest",
                                                      "failureReason", "Invalid layer digest"));
            continue;
        }
        long long size;
        pier_err rc = repo_blob_get(x->c, name, d, &size, NULL, &e);
        if (rc == PIER_E_BLOB_UNKNOWN) {
            json_array_append_new(failures, json_pack("{s:s, s:s, s:s}", "layerDigest", d,
                                                      "failureCode", "MissingLayerDigest",
                                                      "failureReason", "Could not find layer"));
            continue;
        }
        if (rc) {
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
            break;
        }
        json_array_append_new(layers,
                              json_pack("{s:s, s:s, s:I}", "layerDigest", d, "layerAvailability",
                                        "AVAILABLE", "layerSize", (json_int_t)size));
    }
    json_object_set_new(x->out, "layers", layers);
    json_object_set_new(x->out, "failures", failures);
}

void op_initiate_layer_upload(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name))
        return;
    /* The push rules of the registry: not into a cache namespace, and a
     * repository that does not exist yet is created when the layer is
     * complete, if the caller may ecr:CreateRepository. */
    struct perr e;
    struct upload u;
    if (push_check(x->c, name, &e) != PIER_OK || upload_create(x->c, name, &u, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_REPOSITORY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    long long part = LAYER_PART_SIZE < x->c->cfg->max_chunk_size ? LAYER_PART_SIZE
                                                                 : x->c->cfg->max_chunk_size;
    json_object_set_new(x->out, "uploadId", json_string(u.id));
    json_object_set_new(x->out, "partSize", json_integer(part));
}

void op_upload_layer_part(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x))
        return;
    const char *id = upload_id(x);
    long long first = 0, last = 0;
    if (!id || !required_offset(x, "partFirstByte", &first) ||
        !required_offset(x, "partLastByte", &last))
        return;
    json_t *blob = json_object_get(x->in, "layerPartBlob");
    if (!json_is_string(blob)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "layerPartBlob is required (base64)");
        return;
    }
    if (!api_authorize(x, name))
        return;
    unsigned char *data;
    size_t len;
    if (json_string_length(blob) > (size_t)PART_B64_MAX) {
        part_invalid(x, name, id, "a layer part holds at most 20971520 bytes");
        return;
    }
    if (!decode_base64(x, json_string_value(blob), json_string_length(blob), &data, &len)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "layerPartBlob is not base64");
        return;
    }
    if (len == 0 || (long long)len > LAYER_PART_MAX) {
        part_invalid(x, name, id,
                     len ? "a layer part holds at most 20971520 bytes"
                         : "a layer part holds at least one byte");
        return;
    }
    if (last < first || last - first + 1 != (long long)len) {
        char why[160];
        snprintf(why, sizeof why,
                 "partFirstByte %lld to partLastByte %lld is not the %zu bytes of layerPartBlob",
                 first, last, len);
        part_invalid(x, name, id, why);
        return;
    }
    long long min_part = LAYER_PART_MIN < x->c->cfg->max_chunk_size ? LAYER_PART_MIN
                                                                    : x->c->cfg->max_chunk_size;
    struct upload_src src = {.buf = data, .len = len};
    struct upload u;
    struct perr e;
    bool found;
    pier_err rc = upload_part(x->c, name, id, &src, first, last, min_part, &u, &found, &e);
    if (rc == PIER_E_BLOB_UPLOAD_UNKNOWN) {
        uploads_not_found(x, id, name);
        return;
    }
    if (rc == PIER_E_RANGE_INVALID) {
        if (found)
            part_refused(x, name, id, u.size, "%s", e.msg);
        else
            part_invalid(x, name, id, e.msg); /* another part is being written */
        return;
    }
    if (rc == PIER_E_TOO_LARGE) {
        api_fail(x, ECR_EXC_LIMIT_EXCEEDED, "%s", e.msg);
        return;
    }
    if (rc) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "uploadId", json_string(id));
    json_object_set_new(x->out, "lastByteReceived", json_integer(u.size - 1));
}

/* What CompleteLayerUpload refuses before the bytes become a blob, and
 * which exception says so. */
struct completion {
    const char *name, *digest;
    enum ecr_exc refused;
};

static pier_err check_completion(struct ctx *c, const struct upload *u, void *arg, struct perr *e)
{
    struct completion *k = arg;
    if (u->size == 0) {
        k->refused = ECR_EXC_EMPTY_UPLOAD;
        return perr_set(e, PIER_E_SIZE_INVALID, "upload %s holds no layer parts", u->id);
    }
    if (u->short_end >= 0 && u->short_end < u->size) {
        k->refused = ECR_EXC_LAYER_PART_TOO_SMALL;
        return perr_set(e, PIER_E_SIZE_INVALID,
                        "the part of upload %s that ended at byte %lld is not the last and holds "
                        "less than 5 MiB; every part but the last must hold at least 5242880 "
                        "bytes",
                        u->id, u->short_end - 1);
    }
    long long size;
    pier_err rc = repo_blob_get(c, k->name, k->digest, &size, NULL, e);
    if (rc == PIER_OK) {
        k->refused = ECR_EXC_LAYER_ALREADY_EXISTS;
        return perr_set(e, PIER_E_CONFLICT,
                        "The layer '%s' already exists in the repository with name '%s'; the "
                        "upload %s was discarded",
                        k->digest, k->name, u->id);
    }
    return rc == PIER_E_BLOB_UNKNOWN ? PIER_OK : rc;
}

void op_complete_layer_upload(struct api *x)
{
    const char *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x))
        return;
    const char *id = upload_id(x);
    if (!id || !api_authorize(x, name))
        return;
    json_t *digests = json_object_get(x->in, "layerDigests");
    if (!json_is_array(digests) || json_array_size(digests) != 1) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "layerDigests must name the digest of the one layer the upload holds");
        return;
    }
    const char *digest = digest_param(x, "layerDigests",
                                      json_string_value(json_array_get(digests, 0)));
    if (!digest) {
        if (!x->err_type)
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "layerDigests must list digests (strings)");
        return;
    }
    struct completion k = {.name = name, .digest = digest, .refused = ECR_EXC_NONE};
    struct upload u;
    struct perr e;
    bool found;
    pier_err rc = upload_complete(x->c, name, id, NULL, -1, -1, digest, check_completion, &k, &u,
                                  &found, &e);
    if (rc && k.refused) {
        if (k.refused == ECR_EXC_LAYER_ALREADY_EXISTS) {
            struct perr ignore;
            (void)upload_delete(x->c, id, &ignore); /* its bytes are stored already */
        }
        api_fail(x, k.refused, "%s", e.msg);
        return;
    }
    if (rc == PIER_E_BLOB_UPLOAD_UNKNOWN) {
        uploads_not_found(x, id, name);
        return;
    }
    if (rc == PIER_E_DIGEST_INVALID) {
        api_fail(x, ECR_EXC_INVALID_LAYER, "%s", e.msg);
        return;
    }
    if (rc) {
        api_perr(x, &e, ECR_EXC_REPOSITORY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "uploadId", json_string(id));
    json_object_set_new(x->out, "layerDigest", json_string(digest));
}

/* Is the image already stored with nothing to change: its manifest, and
 * the tag (if any) pointing to it? */
static bool image_unchanged(struct api *x, const char *name, const char *tag, const char *digest)
{
    struct stored_manifest sm;
    struct perr e;
    pier_err rc = repo_manifest_get(x->c, name, digest, false, &sm, &e);
    if (rc == PIER_E_MANIFEST_UNKNOWN || rc == PIER_E_NAME_UNKNOWN)
        return false;
    if (rc) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return false;
    }
    if (!tag)
        return true;
    const char *current;
    return repo_tag_digest(x->c, name, tag, &current, &e) == PIER_OK &&
           strcmp(current, digest) == 0;
}

void op_put_image(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *body = api_str(x, "imageManifest", true, IMAGE_MANIFEST_MAX);
    const char *media = api_str(x, "imageManifestMediaType", false, 255);
    const char *tag = api_str(x, "imageTag", false, 300);
    const char *want = api_str(x, "imageDigest", false, DIGEST_MAX_LEN);
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name))
        return;
    struct perr e;
    if (tag && grammar_tag(tag, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "Invalid parameter at 'imageTag' failed to satisfy constraint: %s", e.msg);
        return;
    }
    if (want && !digest_param(x, "imageDigest", want))
        return;
    if (media && !*media)
        media = NULL;
    size_t len = json_string_length(json_object_get(x->in, "imageManifest"));
    if ((long long)len > x->c->cfg->max_manifest_size) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "imageManifest holds %zu bytes; this registry takes manifests up to %lld "
                 "(max_manifest_size)",
                 len, x->c->cfg->max_manifest_size);
        return;
    }
    /* The digest ECR compares imageDigest with, in its algorithm. */
    enum digest_alg alg = DIGEST_SHA256;
    if (want)
        (void)grammar_digest(want, &alg, NULL);
    char digest[DIGEST_STR_MAX];
    digest_buffer(alg, body, len, digest);
    if (want && strcmp(want, digest) != 0) {
        api_fail(x, ECR_EXC_IMAGE_DIGEST_DOES_NOT_MATCH,
                 "The image digest %s does not match the digest of the manifest, %s", want, digest);
        return;
    }
    if (image_unchanged(x, name, tag, digest)) {
        api_fail(x, ECR_EXC_IMAGE_ALREADY_EXISTS,
                 "Image with digest '%s'%s%s%s already exists in the repository with name '%s' "
                 "in the registry with id '%s'",
                 digest, tag ? " and tag '" : "", tag ? tag : "", tag ? "'" : "", name,
                 x->c->cfg->account_id);
        return;
    }
    if (x->err_type)
        return;
    struct manifest m;
    char stored[DIGEST_STR_MAX];
    pier_err rc = push_manifest(x->c, name, tag, digest, body, len, media, stored, &m, &e);
    if (rc == PIER_E_MANIFEST_BLOB_UNKNOWN) {
        api_fail(x,
                 m.kind == MANIFEST_INDEX ? ECR_EXC_REFERENCED_IMAGES_NOT_FOUND
                                          : ECR_EXC_LAYERS_NOT_FOUND,
                 "%s", e.msg);
        return;
    }
    if (rc == PIER_E_DENIED && tag) {
        /* Refused after the push rules let it through: the tag is immutable. */
        struct perr pe;
        if (push_check(x->c, name, &pe) == PIER_OK)
            api_fail(x, ECR_EXC_IMAGE_TAG_ALREADY_EXISTS, "%s", e.msg);
        else
            api_perr(x, &pe, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    if (rc) {
        api_perr(x, &e, ECR_EXC_REPOSITORY_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    json_t *image_id = json_pack("{s:s}", "imageDigest", digest);
    if (tag)
        json_object_set_new(image_id, "imageTag", json_string(tag));
    json_object_set_new(x->out, "image",
                        json_pack("{s:s, s:s, s:o, s:s%, s:s}", "registryId", x->c->cfg->account_id,
                                  "repositoryName", name, "imageId", image_id, "imageManifest",
                                  body, len, "imageManifestMediaType", m.media_type));
    manifest_free(&m);
}

void op_get_download_url_for_layer(struct api *x)
{
    const char *name = api_repo_name(x, true);
    const char *digest = api_str(x, "layerDigest", true, DIGEST_MAX_LEN);
    struct repo_record rec;
    if (x->err_type || !api_registry_id(x) || !api_authorize(x, name) ||
        !api_repo_exists(x, name, &rec) || !digest_param(x, "layerDigest", digest))
        return;
    struct perr e;
    long long size, declared = -1;
    pier_err rc = repo_blob_get(x->c, name, digest, &size, NULL, &e);
    if ((rc == PIER_OK || rc == PIER_E_BLOB_UNKNOWN) &&
        repo_blob_declared_size(x->c, name, digest, &declared, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    /* In a cache repository a layer its images list but nobody pulled yet is
     * fetched from the upstream by the first GET of the URL. */
    if (rc == PIER_E_BLOB_UNKNOWN && !(rec.cache && declared >= 0)) {
        api_fail(x, ECR_EXC_LAYERS_NOT_FOUND,
                 "The layer with digest '%s' does not exist within the repository with name "
                 "'%s' in the registry with id '%s'",
                 digest, name, x->c->cfg->account_id);
        return;
    }
    if (rc && rc != PIER_E_BLOB_UNKNOWN) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    if (declared < 0) {
        api_fail(x, ECR_EXC_LAYER_INACCESSIBLE,
                 "The layer with digest '%s' is in the repository with name '%s' but no image "
                 "there references it; layers no image references are collected",
                 digest, name);
        return;
    }
    char *tok = authn_download_token(x->c, name, digest, x->c->cfg->download_url_ttl);
    if (!tok) {
        api_fail(x, ECR_EXC_SERVER, "cannot sign download URLs (no server key, or no caller)");
        return;
    }
    json_object_set_new(
        x->out, "downloadUrl",
        json_string(arena_printf(x->c->a, "%s/v2/%s/blobs/%s?%s=%s", authn_public_url(x->c, x->r),
                                 name, digest, AUTHN_DOWNLOAD_PARAM, tok)));
    json_object_set_new(x->out, "layerDigest", json_string(digest));
}
