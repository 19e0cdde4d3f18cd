/* serve/referrers: pushed repositories list what the store links to the
 * subject; cache namespaces list what the upstream reports (cache layer). */
#include "serve/referrers.h"

#include <string.h>
#include "cache/cache.h"
#include "store/manifest.h"
#include "store/repo.h"

/* The descriptors of list whose artifactType is artifact_type (NULL: all),
 * as a new list. */
static json_t *only_type(json_t *list, const char *artifact_type)
{
    json_t *keep = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        if (!json_is_object(d))
            continue;
        const char *at = json_string_value(json_object_get(d, "artifactType"));
        if (artifact_type && (!at || strcmp(at, artifact_type) != 0))
            continue;
        json_array_append(keep, d);
    }
    return keep;
}

pier_err serve_referrers_list(struct ctx *c, const char *name, const char *digest,
                              const char *artifact_type, json_t **list, const char **cache_state,
                              struct perr *e)
{
    *list = NULL;
    *cache_state = NULL;
    struct cache_rule rule;
    bool cached = false;
    pier_err rc = rules_for_repository(c, name, 0, &rule, &cached, e);
    if (rc)
        return rc;
    if (cached) {
        struct cache_answer ans;
        if ((rc = cache_referrers(c, name, digest, &rule, &ans, e)) != PIER_OK)
            return rc;
        *list = only_type(ans.referrers, artifact_type);
        *cache_state = ans.state;
        json_decref(ans.referrers);
        return PIER_OK;
    }
    /* The store filters by artifact type itself. */
    json_t *found = json_array();
    if ((rc = repo_referrers(c, name, digest, artifact_type, found, e)) != PIER_OK) {
        json_decref(found);
        return rc;
    }
    *list = found;
    return PIER_OK;
}

pier_err serve_referrers(struct ctx *c, struct req *r, const char *name, const char *digest,
                         const char *artifact_type, struct perr *e)
{
    json_t *list;
    const char *state;
    pier_err rc = serve_referrers_list(c, name, digest, artifact_type, &list, &state, e);
    if (rc)
        return rc;
    json_t *body = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
                             "manifests", list);
    if (artifact_type)
        resp_header(r, "OCI-Filters-Applied", "artifactType");
    if (state)
        resp_header(r, "X-Pier-Cache", "%s", state);
    resp_json(r, 200, MT_OCI_INDEX, body);
    json_decref(body);
    return PIER_OK;
}
