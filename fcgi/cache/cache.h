/* cache: the pull-through layer in front of the local store. The registry
 * handlers answer from the local store as usual and call in here only when a
 * repository in a cache namespace misses (blob not linked, manifest unknown)
 * or when a tag is older than its rule's refresh interval. */
#ifndef PIER_CACHE_H
#define PIER_CACHE_H

#include <stdbool.h>
#include "cache/rules.h"
#include "http/request.h"
#include "store/repo.h"
#include "lib/ctx.h"

/* The rule governing repository name: rule_id when the repository exists
 * (0: pushed, no rule), else the longest matching prefix. */
pier_err cache_rule_for(struct ctx *c, const char *name, long long rule_id, struct cache_rule *rule,
                        bool *found, struct perr *e);

/* GET/HEAD of a blob not linked in cache repository name. Answers the
 * request completely: streams from the upstream (one download cluster-wide,
 * other requests follow it), verifies, publishes, links. */
void cache_blob(struct ctx *c, struct req *r, const char *name, const char *digest,
                const struct cache_rule *rule);

/* GET/HEAD of a manifest in a cache namespace: stored is what the local
 * store has (NULL when nothing). Imports, revalidates or serves stale as the
 * rule and the upstream allow. Answers the request completely. */
void cache_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                    const struct cache_rule *rule, const struct stored_manifest *stored);

/* GET of the referrers of digest in a cache namespace: the upstream's list
 * (referrers API, else the tag fallback), kept for the rule's refresh
 * interval, served stale when the upstream fails. artifact_type may be NULL. */
void cache_referrers(struct ctx *c, struct req *r, const char *name, const char *digest,
                     const struct cache_rule *rule, const char *artifact_type);

/* pier_err for an upstream failure class (502, 504 or 429). */
pier_err cache_upstream_error(int failure);

#endif
