/* h_manifests: GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>. */
#include "registry/handlers.h"

#include <string.h>
#include "lib/grammar.h"
#include "cache/cache.h"
#include "cache/stats.h"
#include "registry/errors.h"
#include "store/manifest.h"
#include "store/repo.h"
#include "store/digest.h"

void h_manifest_send(struct ctx *c, struct req *r, const char *name, const char *ref,
                     const struct stored_manifest *sm, const char *cache_state)
{
    /* By digest the client asked for exact bytes; by tag it negotiates. */
    const char *accept = req_header(r, "Accept");
    if (!grammar_is_digest(ref) && !manifest_accepts(accept, sm->media_type)) {
        struct perr e;
        perr_set(&e, PIER_E_MANIFEST_UNKNOWN,
                 "tag %s points to a manifest of type %s, which the Accept header does not "
                 "include", ref, sm->media_type);
        oci_error(r, &e);
        return;
    }
    resp_status(r, 200);
    resp_header(r, "Docker-Content-Digest", "%s", sm->digest);
    resp_header(r, "ETag", "\"%s\"", sm->digest);
    if (cache_state)
        resp_header(r, "X-Pier-Cache", "%s", cache_state);
    if (r->head || !sm->body) {
        resp_header(r, "Content-Type", "%s", sm->media_type);
        resp_header(r, "Content-Length", "%lld", sm->size);
        resp_end(r);
        return;
    }
    stats_pulled(c->stats, name, sm->digest);
    resp_send(r, sm->media_type, sm->body, (size_t)sm->size);
}

static void get(struct ctx *c, struct req *r, const struct route *rt)
{
    struct perr e;
    struct stored_manifest sm;
    memset(&sm, 0, sizeof sm);
    pier_err rc = repo_manifest_get(c, rt->name, rt->ref, !r->head, &sm, &e);
    if (rc == PIER_OK && (!sm.cache || sm.fresh || grammar_is_digest(rt->ref))) {
        if (sm.cache) {
            stats_add(c->stats, sm.rule_id, STAT_HIT, 1);
            if (!r->head)
                stats_add(c->stats, sm.rule_id, STAT_SERVED_BYTES, sm.size);
        }
        h_manifest_send(c, r, rt->name, rt->ref, &sm, sm.cache ? "hit" : NULL);
        return;
    }
    if (rc != PIER_OK && rc != PIER_E_NAME_UNKNOWN && rc != PIER_E_MANIFEST_UNKNOWN) {
        oci_error(r, &e);
        return;
    }
    /* A miss, or a cached tag due for a check: the cache layer decides. */
    struct cache_rule rule;
    bool cached = false;
    struct perr e2;
    if (cache_rule_for(c, rt->name, rc == PIER_OK ? sm.rule_id : 0, &rule, &cached, &e2) != PIER_OK) {
        oci_error(r, &e2);
        return;
    }
    if (!cached) {
        if (rc == PIER_OK) /* a cache repository whose rule is gone: serve what it has */
            h_manifest_send(c, r, rt->name, rt->ref, &sm, "hit");
        else
            oci_error(r, &e);
        return;
    }
    cache_manifest(c, r, rt->name, rt->ref, &rule, rc == PIER_OK ? &sm : NULL);
}

static void put(struct ctx *c, struct req *r, const struct route *rt)
{
    struct perr e;
    char *body;
    size_t len;
    pier_err rc = req_read_body(r, (size_t)c->cfg->max_manifest_size, &body, &len, &e);
    if (rc == PIER_E_TOO_LARGE)
        perr_set(&e, PIER_E_TOO_LARGE, "manifest exceeds the limit of %lld bytes "
                 "(max_manifest_size)", c->cfg->max_manifest_size);
    if (rc) {
        oci_error(r, &e);
        return;
    }
    enum digest_alg alg = DIGEST_SHA256;
    bool by_digest = grammar_is_digest(rt->ref);
    if (by_digest)
        (void)grammar_digest(rt->ref, &alg, NULL); /* a digest: it parses */
    char digest[DIGEST_STR_MAX];
    digest_buffer(alg, body, len, digest);
    if (by_digest && strcmp(digest, rt->ref) != 0) {
        perr_set(&e, PIER_E_DIGEST_INVALID, "the manifest's digest is %s, not %s", digest,
                 rt->ref);
        perr_detail(&e, "%s", digest);
        oci_error(r, &e);
        return;
    }
    struct manifest m;
    if (manifest_parse(body, len, req_header(r, "Content-Type"), &m, &e) != PIER_OK) {
        oci_error(r, &e);
        return;
    }
    rc = repo_manifest_put(c, rt->name, by_digest ? NULL : rt->ref, digest, &m, body, len, 0, &e);
    if (rc) {
        manifest_free(&m);
        oci_error(r, &e);
        return;
    }
    resp_status(r, 201);
    resp_header(r, "Location", "/v2/%s/manifests/%s", rt->name, digest);
    resp_header(r, "Docker-Content-Digest", "%s", digest);
    if (m.has_subject)
        resp_header(r, "OCI-Subject", "%s", m.subject.digest);
    manifest_free(&m);
    resp_end(r);
}

static void del(struct ctx *c, struct req *r, const struct route *rt)
{
    struct perr e;
    if (!c->cfg->allow_delete) {
        perr_set(&e, PIER_E_METHOD, "deleting manifests is disabled on this registry");
        oci_error(r, &e);
        return;
    }
    if (repo_manifest_delete(c, rt->name, rt->ref, &e) != PIER_OK) {
        oci_error(r, &e);
        return;
    }
    resp_status(r, 202);
    resp_end(r);
}

void h_manifest(struct ctx *c, struct req *r, const struct route *rt)
{
    if (strcmp(r->method, "PUT") == 0)
        put(c, r, rt);
    else if (strcmp(r->method, "DELETE") == 0)
        del(c, r, rt);
    else
        get(c, r, rt);
}
