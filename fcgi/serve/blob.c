/* serve/blob: the local store first, then the cache. Published bytes are
 * never copied through the worker: the answer is headers plus X-Sendfile,
 * and Apache streams the file (with Range support) itself. */
#include "serve/blob.h"

#include <limits.h>
#include "cache/cache.h"
#include "cache/stats.h"
#include "store/blobstore.h"
#include "store/repo.h"

/* Answer with a published blob through X-Sendfile. */
static void send_published(struct ctx *c, struct req *r, const char *digest,
                           const char *cache_state)
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

pier_err serve_blob(struct ctx *c, struct req *r, const char *name, const char *digest,
                    struct perr *e)
{
    long long size, rule_id = 0;
    pier_err rc = repo_blob_get(c, name, digest, &size, &rule_id, e);
    if (rc == PIER_OK) {
        if (rule_id) {
            stats_add(c->stats, rule_id, STAT_HIT, 1);
            if (!r->head)
                stats_add(c->stats, rule_id, STAT_SERVED_BYTES, size);
        }
        send_published(c, r, digest, rule_id ? "hit" : NULL);
        return PIER_OK;
    }
    if (rc != PIER_E_BLOB_UNKNOWN)
        return rc;
    struct cache_rule rule;
    bool cached = false;
    struct perr e2;
    if (rules_for_repository(c, name, 0, &rule, &cached, &e2) != PIER_OK) {
        *e = e2;
        return e->code;
    }
    if (!cached)
        return rc;
    struct cache_answer ans;
    if ((rc = cache_blob(c, r, name, digest, &rule, &ans, e)) != PIER_OK)
        return rc;
    if (ans.outcome == CACHE_SEND)
        send_published(c, r, digest, ans.state);
    return PIER_OK;
}
