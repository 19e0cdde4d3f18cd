/* ops_referrers: ListImageReferrers — the artifacts (signatures, SBOMs,
 * attestations) whose subject is an image, from the same lists as the OCI
 * referrers API (serve/referrers.c): the local store, or in a cache
 * namespace what the upstream reports. */
#include <stdio.h>
#include <string.h>
#include "auth/authz.h"
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "serve/referrers.h"

#define MAX_ARTIFACT_TYPES 5

/* filter.artifactTypes (at most 5) into types, *ntypes; filter.artifactStatus
 * into *status ("ACTIVE" when absent). false when malformed (x holds why). */
static bool read_filter(struct api *x, const char *types[MAX_ARTIFACT_TYPES], size_t *ntypes,
                        const char **status)
{
    *ntypes = 0;
    *status = "ACTIVE";
    json_t *f = json_object_get(x->in, "filter");
    if (!f || json_is_null(f))
        return true;
    if (!json_is_object(f))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "filter must be an object");
    json_t *at = json_object_get(f, "artifactTypes");
    if (at && !json_is_null(at)) {
        if (!json_is_array(at) || json_array_size(at) > MAX_ARTIFACT_TYPES)
            return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                            "filter.artifactTypes must list at most %d artifact types",
                            MAX_ARTIFACT_TYPES);
        size_t i;
        json_t *v;
        json_array_foreach(at, i, v) {
            const char *t = json_string_value(v);
            if (!t || !*t || strlen(t) > 255)
                return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                                "filter.artifactTypes[%zu] must be 1 to 255 characters", i);
            types[(*ntypes)++] = t;
        }
    }
    json_t *st = json_object_get(f, "artifactStatus");
    if (st && !json_is_null(st)) {
        const char *s = json_string_value(st);
        if (!s || (strcmp(s, "ACTIVE") && strcmp(s, "ARCHIVED") && strcmp(s, "ACTIVATING") &&
                   strcmp(s, "ANY")))
            return api_fail(x, ECR_EXC_INVALID_PARAMETER,
                            "filter.artifactStatus must be ACTIVE, ARCHIVED, ACTIVATING or ANY");
        *status = s;
    }
    return true;
}

static bool type_wanted(const char *const *types, size_t ntypes, json_t *d)
{
    if (ntypes == 0)
        return true;
    const char *at = json_string_value(json_object_get(d, "artifactType"));
    for (size_t i = 0; at && i < ntypes; i++)
        if (strcmp(types[i], at) == 0)
            return true;
    return false;
}

/* One referrer as the model's ImageReferrer. */
static json_t *referrer_json(json_t *d)
{
    const char *digest = json_string_value(json_object_get(d, "digest"));
    const char *mt = json_string_value(json_object_get(d, "mediaType"));
    json_t *size = json_object_get(d, "size");
    if (!digest || !mt || !json_is_integer(size))
        return NULL; /* not a descriptor (an upstream's list may hold anything) */
    json_t *r = json_pack("{s:s, s:s, s:O, s:s}", "digest", digest, "mediaType", mt, "size", size,
                          "artifactStatus", "ACTIVE");
    const char *at = json_string_value(json_object_get(d, "artifactType"));
    if (at)
        json_object_set_new(r, "artifactType", json_string(at));
    json_t *ann = json_object_get(d, "annotations");
    if (json_is_object(ann) && json_object_size(ann) > 0) {
        json_t *keep = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(ann, k, v) {
            if (json_is_string(v))
                json_object_set(keep, k, v);
        }
        json_object_set_new(r, "annotations", keep);
    }
    return r;
}

void op_list_image_referrers(struct api *x)
{
    const char *name = api_repo_name(x, true);
    long long limit, offset;
    if (x->err_type || !api_registry_id(x) || !api_page(x, 50, &limit, &offset))
        return;
    json_t *subject = json_object_get(x->in, "subjectId");
    const char *digest = json_string_value(json_object_get(subject, "imageDigest"));
    struct perr e;
    if (!json_is_object(subject) || !digest) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "subjectId.imageDigest is required");
        return;
    }
    if (grammar_digest(digest, NULL, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "subjectId.imageDigest: %s", e.msg);
        return;
    }
    const char *types[MAX_ARTIFACT_TYPES];
    size_t ntypes;
    const char *status;
    if (!read_filter(x, types, &ntypes, &status))
        return;
    /* ECR asks for the pull permission: what the OCI referrers API needs too. */
    if (authz_check(x->c, "ecr:BatchGetImage", name, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    if (!api_repo_exists(x, name, NULL))
        return;
    json_t *list = NULL;
    const char *state;
    pier_err rc = serve_referrers_list(x->c, name, digest, NULL, &list, &state, &e);
    if (rc == PIER_E_UPSTREAM || rc == PIER_E_UPSTREAM_TIMEOUT || rc == PIER_E_TOOMANYREQUESTS) {
        api_fail(x, ECR_EXC_UNABLE_TO_LIST_UPSTREAM_REFERRERS, "%s", e.msg);
        return;
    }
    if (rc) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    /* Pier archives nothing: every artifact is ACTIVE. */
    bool none = strcmp(status, "ACTIVE") != 0 && strcmp(status, "ANY") != 0;
    json_t *out = json_array();
    long long seen = 0;
    bool more = false;
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        if (none || !json_is_object(d) || !type_wanted(types, ntypes, d))
            continue;
        json_t *r = referrer_json(d);
        if (!r)
            continue;
        if (seen >= offset && seen < offset + limit) {
            json_array_append_new(out, r);
        } else {
            json_decref(r);
            if (seen >= offset + limit)
                more = true;
        }
        seen++;
    }
    json_decref(list);
    json_object_set_new(x->out, "referrers", out);
    api_next(x, offset, limit, more);
}
