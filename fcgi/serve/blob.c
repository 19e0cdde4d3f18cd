/* serve/blob: the local store first, then the cache. Published bytes are
 * never copied through the worker: the answer is headers plus X-Sendfile,
 * and Apache streams the file (with Range support) itself. */
#include "serve/blob.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cache/cache.h"
#include "cache/stats.h"
#include "store/blobstore.h"
#include "store/repo.h"

/* A single byte range the blob cannot satisfy (RFC 9110 14.1.2: a first
 * byte at or beyond the end, a suffix of 0 bytes; and, as the distribution
 * spec asks, a last byte before the first) is answered here with 416 and
 * Content-Range: bytes (star)/size. Any other Range (none, several, syntax
 * Apache ignores) goes to Apache with the file. */
static pier_err check_range(struct req *r, long long size, struct perr *e)
{
    const char *h = req_header(r, "Range");
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return PIER_OK;
    const char *p = h + 6, *dash = strchr(p, '-');
    if (!dash)
        return PIER_OK;
    char *end;
    bool unsatisfiable = false;
    if (dash == p) { /* bytes=-N: the last N bytes */
        long long n = strtoll(dash + 1, &end, 10);
        unsatisfiable = end != dash + 1 && !*end && n == 0;
    } else {
        long long first = strtoll(p, &end, 10);
        if (end != dash || first < 0)
            return PIER_OK;
        if (dash[1]) {
            long long last = strtoll(dash + 1, &end, 10);
            if (*end)
                return PIER_OK;
            unsatisfiable = last < first || first >= size;
        } else {
            unsatisfiable = first >= size;
        }
    }
    if (!unsatisfiable)
        return PIER_OK;
    resp_header(r, "Content-Range", "bytes */%lld", size);
    return perr_set(e, PIER_E_RANGE_UNSATISFIABLE,
                    "Range '%.64s' is not satisfiable: the blob has %lld bytes", h, size);
}

/* Answer with a published blob of size bytes (-1: unknown here) through
 * X-Sendfile; a HEAD, and an empty blob, are answered here with their
 * Content-Length. */
static pier_err send_published(struct ctx *c, struct req *r, const char *digest, long long size,
                               const char *cache_state, struct perr *e)
{
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, digest, path);
    if (size < 0 && !blobstore_stat(c->bs, digest, &size))
        size = -1;
    pier_err rc = size >= 0 && !r->head ? check_range(r, size, e) : PIER_OK;
    if (rc)
        return rc;
    resp_status(r, 200);
    resp_header(r, "Content-Type", "application/octet-stream");
    resp_header(r, "Docker-Content-Digest", "%s", digest);
    resp_header(r, "ETag", "\"%s\"", digest);
    resp_header(r, "Accept-Ranges", "bytes");
    resp_header(r, "Cache-Control", "max-age=31536000, immutable");
    if (cache_state)
        resp_header(r, "X-Pier-Cache", "%s", cache_state);
    /* Apache drops "Content-Length: 0" from every HEAD answer (its header
     * filter takes it for a handler that skipped the body); the spec wants
     * it on a HEAD of an empty blob, and "00" is the same length in HTTP's
     * grammar (1*DIGIT) that the filter leaves alone. */
    if (size == 0 && r->head)
        resp_header(r, "Content-Length", "00");
    else if (size >= 0 && (r->head || size == 0))
        resp_header(r, "Content-Length", "%lld", size);
    else
        resp_header(r, "X-Sendfile", "%s", path);
    resp_end(r);
    return PIER_OK;
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
        return send_published(c, r, digest, size, rule_id ? "hit" : NULL, e);
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
        return send_published(c, r, digest, -1, ans.state, e);
    return PIER_OK;
}
