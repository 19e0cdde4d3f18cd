/* manifest: JSON structure checks for the manifest formats we store. */
#include "store/manifest.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "lib/arena.h"
#include "lib/grammar.h"

bool manifest_type_known(const char *mt)
{
    return mt && (!strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_OCI_INDEX) ||
                  !strcmp(mt, MT_DOCKER_MANIFEST) || !strcmp(mt, MT_DOCKER_LIST));
}

static bool is_index_type(const char *mt)
{
    return !strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST);
}

/* Media type without parameters or surrounding spaces, into buf. */
static const char *bare_type(const char *ct, char *buf, size_t n)
{
    if (!ct)
        return NULL;
    while (*ct == ' ')
        ct++;
    size_t len = strcspn(ct, "; ");
    if (len == 0)
        return NULL;
    if (len >= n)
        return "application/x-overlong-content-type";
    memcpy(buf, ct, len);
    buf[len] = '\0';
    return buf;
}

static pier_err descriptor(json_t *j, const char *path, struct descriptor *d, struct perr *e)
{
    if (!json_is_object(j))
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s: descriptor must be an object", path);
    json_t *mt = json_object_get(j, "mediaType");
    json_t *dg = json_object_get(j, "digest");
    json_t *sz = json_object_get(j, "size");
    if (!json_is_string(mt) || !grammar_media_type(json_string_value(mt)))
        return perr_set(e, PIER_E_MANIFEST_INVALID,
                        "%s.mediaType: required, must be a media type like type/subtype", path);
    if (!json_is_string(dg))
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s.digest: required string", path);
    struct perr sub;
    if (grammar_digest(json_string_value(dg), NULL, &sub) != PIER_OK)
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s.digest: %s", path, sub.msg);
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return perr_set(e, PIER_E_MANIFEST_INVALID,
                        "%s.size: required, must be a non-negative integer", path);
    json_t *urls = json_object_get(j, "urls");
    if (urls && !json_is_array(urls))
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s.urls: must be an array of strings", path);
    json_t *at = json_object_get(j, "artifactType");
    if (at && !(json_is_string(at) && grammar_media_type(json_string_value(at))))
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s.artifactType: must be a media type",
                        path);
    json_t *ann = json_object_get(j, "annotations");
    if (ann && !json_is_object(ann))
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s.annotations: must be an object", path);
    d->media_type = json_string_value(mt);
    d->digest = json_string_value(dg);
    d->size = json_integer_value(sz);
    d->external = urls && json_array_size(urls) > 0;
    return PIER_OK;
}

static pier_err descriptor_list(json_t *arr, const char *field, struct manifest *m,
                                struct perr *e)
{
    if (!json_is_array(arr))
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s: required array of descriptors", field);
    size_t n = json_array_size(arr);
    if (n > MANIFEST_MAX_DESCRIPTORS)
        return perr_set(e, PIER_E_MANIFEST_INVALID, "%s: %zu entries, the limit is %d", field, n,
                        MANIFEST_MAX_DESCRIPTORS);
    m->refs = xcalloc(n ? n : 1, sizeof *m->refs);
    m->nrefs = n;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s[%zu]", field, i);
        pier_err rc = descriptor(json_array_get(arr, i), path, &m->refs[i], e);
        if (rc)
            return rc;
    }
    return PIER_OK;
}

static const char *infer_type(json_t *root)
{
    if (json_object_get(root, "manifests"))
        return MT_OCI_INDEX;
    if (json_object_get(root, "config") || json_object_get(root, "layers"))
        return MT_OCI_MANIFEST;
    return NULL;
}

pier_err manifest_parse(const char *body, size_t len, const char *content_type,
                        struct manifest *m, struct perr *e)
{
    memset(m, 0, sizeof *m);
    json_error_t jerr;
    m->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!m->root)
        return perr_set(e, PIER_E_MANIFEST_INVALID, "manifest is not valid JSON: %s at line %d",
                        jerr.text, jerr.line);
    pier_err rc;
    if (!json_is_object(m->root)) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID, "manifest must be a JSON object");
        goto fail;
    }
    json_t *sv = json_object_get(m->root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                      "schemaVersion: must be 2 (schema 1 manifests are not supported)");
        goto fail;
    }
    char ctbuf[256];
    const char *ct = bare_type(content_type, ctbuf, sizeof ctbuf);
    json_t *mtj = json_object_get(m->root, "mediaType");
    if (mtj && !json_is_string(mtj)) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID, "mediaType: must be a string");
        goto fail;
    }
    const char *body_mt = json_string_value(mtj);
    if (manifest_type_known(ct)) {
        if (body_mt && strcmp(body_mt, ct) != 0) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                          "Content-Type %s does not match the manifest's mediaType %s", ct,
                          body_mt);
            goto fail;
        }
        /* point into stable storage: the constants */
        m->media_type = !strcmp(ct, MT_OCI_MANIFEST)      ? MT_OCI_MANIFEST
                        : !strcmp(ct, MT_OCI_INDEX)       ? MT_OCI_INDEX
                        : !strcmp(ct, MT_DOCKER_MANIFEST) ? MT_DOCKER_MANIFEST
                                                          : MT_DOCKER_LIST;
    } else if (body_mt) {
        if (!manifest_type_known(body_mt)) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                          "unsupported manifest media type %s (supported: " MT_OCI_MANIFEST
                          ", " MT_OCI_INDEX ", " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST ")",
                          body_mt);
            goto fail;
        }
        if (ct && strcasecmp(ct, "application/json") != 0 &&
            strcasecmp(ct, "application/octet-stream") != 0) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                          "Content-Type %s does not match the manifest's mediaType %s", ct,
                          body_mt);
            goto fail;
        }
        m->media_type = body_mt;
    } else if (!ct || !strcasecmp(ct, "application/json") ||
               !strcasecmp(ct, "application/octet-stream")) {
        m->media_type = infer_type(m->root);
        if (!m->media_type) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                          "cannot tell the manifest type: no mediaType, no known Content-Type, "
                          "and neither config/layers nor manifests fields");
            goto fail;
        }
    } else {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                      "unsupported manifest media type %s (supported: " MT_OCI_MANIFEST
                      ", " MT_OCI_INDEX ", " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST ")",
                      ct);
        goto fail;
    }
    bool docker = !strcmp(m->media_type, MT_DOCKER_MANIFEST) || !strcmp(m->media_type, MT_DOCKER_LIST);
    if (docker && !body_mt) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                      "mediaType: required in Docker schema 2 manifests");
        goto fail;
    }
    json_t *at = json_object_get(m->root, "artifactType");
    if (at && !(json_is_string(at) && grammar_media_type(json_string_value(at)))) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID, "artifactType: must be a media type");
        goto fail;
    }
    json_t *ann = json_object_get(m->root, "annotations");
    if (ann && !json_is_object(ann)) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID, "annotations: must be an object");
        goto fail;
    }
    if (ann) {
        const char *k;
        json_t *v;
        json_object_foreach(ann, k, v) {
            if (!json_is_string(v)) {
                rc = perr_set(e, PIER_E_MANIFEST_INVALID, "annotations.%.64s: must be a string",
                              k);
                goto fail;
            }
        }
    }
    m->annotations = ann;
    if (is_index_type(m->media_type)) {
        m->kind = MANIFEST_INDEX;
        if (json_object_get(m->root, "layers") || json_object_get(m->root, "config")) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                          "an index must not have config or layers");
            goto fail;
        }
        if ((rc = descriptor_list(json_object_get(m->root, "manifests"), "manifests", m, e)))
            goto fail;
        m->artifact_type = json_string_value(at);
    } else {
        m->kind = MANIFEST_IMAGE;
        if (json_object_get(m->root, "manifests")) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                          "an image manifest must not have a manifests field");
            goto fail;
        }
        json_t *cfg = json_object_get(m->root, "config");
        if (!cfg) {
            rc = perr_set(e, PIER_E_MANIFEST_INVALID, "config: required descriptor");
            goto fail;
        }
        if ((rc = descriptor(cfg, "config", &m->config, e)))
            goto fail;
        if ((rc = descriptor_list(json_object_get(m->root, "layers"), "layers", m, e)))
            goto fail;
        /* Referrers API: artifactType, else the config's media type. */
        m->artifact_type = at ? json_string_value(at) : m->config.media_type;
    }
    json_t *subj = json_object_get(m->root, "subject");
    if (subj) {
        if ((rc = descriptor(subj, "subject", &m->subject, e)))
            goto fail;
        m->has_subject = true;
    }
    return PIER_OK;
fail:
    manifest_free(m);
    return rc;
}

void manifest_free(struct manifest *m)
{
    free(m->refs);
    m->refs = NULL;
    m->nrefs = 0;
    if (m->root)
        json_decref(m->root);
    m->root = NULL;
}

bool manifest_accepts(const char *accept, const char *media_type)
{
    if (!accept || !*accept)
        return true;
    const char *slash = strchr(media_type, '/');
    size_t major = slash ? (size_t)(slash - media_type) : strlen(media_type);
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        size_t tlen = strcspn(p, ";,");
        while (tlen && p[tlen - 1] == ' ')
            tlen--;
        if (tlen == 3 && !memcmp(p, "*/*", 3))
            return true;
        if (tlen == strlen(media_type) && !strncasecmp(p, media_type, tlen))
            return true;
        if (tlen == major + 2 && !strncasecmp(p, media_type, major) && !memcmp(p + major, "/*", 2))
            return true;
        p += len;
    }
    return false;
}
