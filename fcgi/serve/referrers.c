/* serve/referrers: pushed repositories list what the store links to the
 * subject; cache namespaces list what the upstream reports (cache layer). */
#include "serve/referrers.h"

#include <string.h>
#include "cache/cache.h"
#include "store/manifest.h"
#include "store/repo.h"

static void send_index(struct req *r, json_t *list, const char *artifact_type,
                       const char *cache_state)
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
    json_t *body = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
                             "manifests", keep);
    if (artifact_type)
        resp_header(r, "OCI-Filters-Applied", "artifactType");
    if (cache_state)
        resp_header(r, "X-Pier-Cache", "%s", cache_state);
    resp_json(r, 200, MT_OCI_INDEX, body);
    json_decref(body);
}

pier_err serve_referrers(struct ctx *c, struct req *r, const char *name, const char *digest,
                         const char *artifact_type, struct perr *e)
{
    struct cache_rule rule;
    bool cached = false;
    pier_err rc = rules_for_repository(c, name, 0, &rule, &cached, e);
    if (rc)
        return rc;
    if (cached) {
        struct cache_answer ans;
        if ((rc = cache_referrers(c, name, digest, &rule, &ans, e)) != PIER_OK)
            return rc;
        send_index(r, ans.referrers, artifact_type, ans.state);
        json_decref(ans.referrers);
        return PIER_OK;
    }
    /* The store filters by artifact type itself. */
    json_t *list = json_array();
    if ((rc = repo_referrers(c, name, digest, artifact_type, list, e)) != PIER_OK) {
        json_decref(list);
        return rc;
    }
    send_index(r, list, artifact_type, NULL);
    json_decref(list);
    return PIER_OK;
}
