/* h_blobs: GET/HEAD/DELETE /v2/<name>/blobs/<digest>. Bytes are never copied
 * through the worker: the answer is headers plus X-Sendfile, and Apache
 * streams the file (with Range support) itself. */
#include "registry/handlers.h"

#include <string.h>
#include "cache/cache.h"
#include "cache/stats.h"
#include "registry/errors.h"
#include "store/blobstore.h"
#include "store/repo.h"

void h_blob(struct ctx *c, struct req *r, const struct route *rt)
{
    struct perr e;
    if (strcmp(r->method, "DELETE") == 0) {
        if (!c->cfg->allow_delete) {
            perr_set(&e, PIER_E_METHOD, "deleting blobs is disabled on this registry");
            oci_error(r, &e);
            return;
        }
        if (repo_blob_unlink(c, rt->name, rt->ref, &e) != PIER_OK) {
            oci_error(r, &e);
            return;
        }
        resp_status(r, 202);
        resp_header(r, "Docker-Content-Digest", "%s", rt->ref);
        resp_end(r);
        return;
    }
    long long size, rule_id = 0;
    pier_err rc = repo_blob_get(c, rt->name, rt->ref, &size, &rule_id, &e);
    if (rc == PIER_OK) {
        if (rule_id) {
            stats_add(c->stats, rule_id, STAT_HIT, 1);
            if (!r->head)
                stats_add(c->stats, rule_id, STAT_SERVED_BYTES, size);
        }
        h_blob_send(c, r, rt->ref, rule_id ? "hit" : NULL);
        return;
    }
    if (rc == PIER_E_BLOB_UNKNOWN) {
        struct cache_rule rule;
        bool cached = false;
        struct perr e2;
        if (cache_rule_for(c, rt->name, 0, &rule, &cached, &e2) != PIER_OK) {
            oci_error(r, &e2);
            return;
        }
        if (cached) {
            cache_blob(c, r, rt->name, rt->ref, &rule);
            return;
        }
    }
    oci_error(r, &e);
}

void h_blob_send(struct ctx *c, struct req *r, const char *digest, const char *cache_state)
{
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, digest, path);
    resp_status(r, 200);
    resp_header(r, "Content-Type", "application/octet-stream");
    resp_header(r, "Docker-Content-Digest", "%s", digest);
    resp_header(r, "ETag", "\"%s\"", digest);
    resp_header(r, "Accept-Ranges", "bytes");
    resp_header(r, "Cache-Control", "max-age=31536000, immutable");
    if (cache_state)
        resp_header(r, "X-Pier-Cache", "%s", cache_state);
    resp_header(r, "X-Sendfile", "%s", path);
    resp_end(r);
}
