/* cache: the pull-through layer in front of the local store. The serving
 * modules (serve/) answer from the local store and call in here only when a
 * repository in a cache namespace misses (blob not linked, manifest unknown)
 * or when a tag is older than its rule's refresh interval.
 *
 * The cache answers a request itself only when the bytes come from the
 * upstream as they arrive (a download streamed to its client, a HEAD the
 * upstream answered); otherwise it says what the serving module sends. On
 * failure nothing was sent, or the response was begun (req.sent) and the
 * caller breaks it off: the dispatcher handles both. */
#ifndef PIER_CACHE_H
#define PIER_CACHE_H

#include <stdbool.h>
#include <jansson.h>
#include "store/rules.h"
#include "http/request.h"
#include "lib/contract.h"
#include "lib/ctx.h"
#include "store/repo.h"

enum cache_outcome {
    CACHE_ANSWERED,    /* the response was written */
    CACHE_SEND,        /* send what the answer holds (blob: it is published and linked) */
};

struct cache_answer {
    enum cache_outcome outcome;
    const char *state;               /* X-Pier-Cache: "hit", "miss", "revalidated", "stale" */
    struct stored_manifest manifest; /* cache_manifest: what to send */
    json_t *referrers;               /* cache_referrers: the list; the caller decrefs it */
    const char *why;                 /* state "stale": why the upstream's answer is not used */
};

/* GET/HEAD of a blob not linked in cache repository name: streams it from
 * the upstream (one download cluster-wide; other requests follow it),
 * verifies, publishes, links. Fetching is an import, authorized here
 * (authz_create_or_import) before any upstream traffic. */
PIER_MUST_USE
pier_err cache_blob(struct ctx *c, struct req *r, const char *name, const char *digest,
                    const struct cache_rule *rule, struct cache_answer *out, struct perr *e);

/* GET/HEAD of a manifest in a cache namespace: stored is what the local
 * store has (NULL when nothing). Imports, revalidates or serves stale as the
 * rule and the upstream allow; never answers itself (out->manifest). When
 * the upstream refused the rule's credentials and nothing is cached, the
 * PIER_E_UPSTREAM has upstream_failure_name(UPF_AUTH) as its detail (when
 * this request asked the upstream itself). */
PIER_MUST_USE
pier_err cache_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                        const struct cache_rule *rule, const struct stored_manifest *stored,
                        struct cache_answer *out, struct perr *e);

/* The referrers of digest in a cache namespace: the upstream's list
 * (referrers API, else the tag fallback), kept for the rule's refresh
 * interval, served stale when the upstream fails (out->referrers). */
PIER_MUST_USE
pier_err cache_referrers(struct ctx *c, const char *name, const char *digest,
                         const struct cache_rule *rule, struct cache_answer *out,
                         struct perr *e);

/* What asking the upstream about a tag found: the digest cached before
 * ("" when none) and after; error is set when the upstream failed or its
 * answer could not be used (what is cached stayed). */
struct cache_check {
    const char *before;
    const char *after;
    const char *error;
};

/* Ask the upstream about tag of cache repository name now, whatever the
 * rule's refresh interval says (a HEAD; the manifest is fetched when it
 * moved), under the same lease as pulls. PIER_OK with out->error set when the
 * upstream failed and a cached image stayed; an error (out->error: its
 * message) when nothing is cached and the upstream failed or does not have
 * the tag. The caller authorized an import. */
PIER_MUST_USE
pier_err cache_check_tag(struct ctx *c, struct req *r, const char *name, const char *tag,
                         const struct cache_rule *rule, struct cache_check *out, struct perr *e);

/* pier_err for an upstream failure class (502, 504 or 429). */
pier_err cache_upstream_error(int failure);

#endif
