/* h_manifests: GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>. */
#include "registry/handlers.h"

#include <string.h>
#include "lib/grammar.h"
#include "serve/manifest.h"
#include "store/digest.h"
#include "store/manifest.h"
#include "store/repo.h"

static pier_err put(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    char *body;
    size_t len;
    pier_err rc = req_read_body(r, (size_t)c->cfg->max_manifest_size, &body, &len, e);
    if (rc == PIER_E_TOO_LARGE)
        perr_set(e, PIER_E_TOO_LARGE, "manifest exceeds the limit of %lld bytes "
                 "(max_manifest_size)", c->cfg->max_manifest_size);
    if (rc)
        return rc;
    enum digest_alg alg = DIGEST_SHA256;
    bool by_digest = grammar_is_digest(rt->ref);
    if (by_digest)
        (void)grammar_digest(rt->ref, &alg, NULL); /* a digest: it parses */
    char digest[DIGEST_STR_MAX];
    digest_buffer(alg, body, len, digest);
    if (by_digest && strcmp(digest, rt->ref) != 0) {
        perr_set(e, PIER_E_DIGEST_INVALID, "the manifest's digest is %s, not %s", digest,
                 rt->ref);
        perr_detail(e, "%s", digest);
        return e->code;
    }
    struct manifest m;
    if ((rc = manifest_parse(body, len, req_header(r, "Content-Type"), &m, e)) != PIER_OK)
        return rc;
    if ((rc = registry_may_push(c, rt->name, e)) == PIER_OK)
        rc = repo_manifest_put(c, rt->name, by_digest ? NULL : rt->ref, digest, &m, body, len, 0,
                               e);
    if (rc) {
        manifest_free(&m);
        return rc;
    }
    resp_status(r, 201);
    resp_header(r, "Location", "/v2/%s/manifests/%s", rt->name, digest);
    resp_header(r, "Docker-Content-Digest", "%s", digest);
    if (m.has_subject)
        resp_header(r, "OCI-Subject", "%s", m.subject.digest);
    manifest_free(&m);
    resp_end(r);
    return PIER_OK;
}

static pier_err del(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    if (!c->cfg->allow_delete)
        return perr_set(e, PIER_E_METHOD, "deleting manifests is disabled on this registry");
    pier_err rc = repo_manifest_delete(c, rt->name, rt->ref, e);
    if (rc)
        return rc;
    resp_status(r, 202);
    resp_end(r);
    return PIER_OK;
}

pier_err h_manifest(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    if (strcmp(r->method, "PUT") == 0)
        return put(c, r, rt, e);
    if (strcmp(r->method, "DELETE") == 0)
        return del(c, r, rt, e);
    return serve_manifest(c, r, rt->name, rt->ref, e);
}
