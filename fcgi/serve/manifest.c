/* serve/manifest: the local store first; the cache for misses and for
 * cached tags older than their rule's refresh interval. */
#include "serve/manifest.h"

#include <string.h>
#include "auth/authz.h"
#include "cache/cache.h"
#include "cache/stats.h"
#include "lib/grammar.h"
#include "store/manifest.h"
#include "store/repo.h"

/* Answer with a stored manifest (Accept negotiation by tag; HEAD without
 * body). cache_state, when not NULL, goes into X-Pier-Cache. */
static pier_err send_stored(struct ctx *c, struct req *r, const char *name, const char *ref,
                            const struct stored_manifest *sm, const char *cache_state,
                            struct perr *e)
{
    /* By digest the client asked for exact bytes; by tag it negotiates. */
    const char *accept = req_header(r, "Accept");
    if (!grammar_is_digest(ref) && !manifest_accepts(accept, sm->media_type))
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN,
                        "tag %s points to a manifest of type %s, which the Accept header does "
                        "not include", ref, sm->media_type);
    resp_status(r, 200);
    resp_header(r, "Docker-Content-Digest", "%s", sm->digest);
    resp_header(r, "ETag", "\"%s\"", sm->digest);
    if (cache_state)
        resp_header(r, "X-Pier-Cache", "%s", cache_state);
    if (cache_state && strcmp(cache_state, "stale") == 0)
        resp_header(r, "Warning", "110 pier \"Response is stale: upstream unavailable\"");
    if (r->head || !sm->body) {
        resp_header(r, "Content-Type", "%s", sm->media_type);
        resp_header(r, "Content-Length", "%lld", sm->size);
        resp_end(r);
        return PIER_OK;
    }
    stats_pulled(c->stats, name, sm->digest,
                 c->who && c->who->authenticated ? c->who->p.arn : NULL);
    resp_send(r, sm->media_type, sm->body, (size_t)sm->size);
    return PIER_OK;
}

pier_err serve_manifest_find(struct ctx *c, struct req *r, const char *name, const char *ref,
                             struct stored_manifest *out, const char **state, struct perr *e)
{
    struct stored_manifest sm;
    memset(&sm, 0, sizeof sm);
    *state = NULL;
    pier_err rc = repo_manifest_get(c, name, ref, !r->head, &sm, e);
    if (rc == PIER_OK && (!sm.cache || sm.fresh || grammar_is_digest(ref))) {
        if (sm.cache) {
            stats_add(c->stats, sm.rule_id, STAT_HIT, 1);
            if (!r->head)
                stats_add(c->stats, sm.rule_id, STAT_SERVED_BYTES, sm.size);
            *state = "hit";
        }
        *out = sm;
        return PIER_OK;
    }
    if (rc != PIER_OK && rc != PIER_E_NAME_UNKNOWN && rc != PIER_E_MANIFEST_UNKNOWN)
        return rc;
    /* A miss, or a cached tag due for a check: the cache layer decides. */
    struct cache_rule rule;
    bool cached = false;
    struct perr e2;
    if (rules_for_repository(c, name, rc == PIER_OK ? sm.rule_id : 0, &rule, &cached, &e2) !=
        PIER_OK) {
        *e = e2;
        return e->code;
    }
    if (!cached) {
        if (rc != PIER_OK)
            return rc;
        *out = sm; /* a cache repository whose rule is gone: serve what it has */
        *state = "hit";
        return PIER_OK;
    }
    struct cache_answer ans;
    if ((rc = cache_manifest(c, r, name, ref, &rule, rc == PIER_OK ? &sm : NULL, &ans, e)) !=
        PIER_OK)
        return rc;
    *out = ans.manifest;
    *state = ans.state;
    return PIER_OK;
}

pier_err serve_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                        struct perr *e)
{
    struct stored_manifest sm;
    const char *state;
    pier_err rc = serve_manifest_find(c, r, name, ref, &sm, &state, e);
    if (rc)
        return rc;
    return send_stored(c, r, name, ref, &sm, state, e);
}
