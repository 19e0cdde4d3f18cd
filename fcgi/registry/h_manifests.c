/* h_manifests: GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>. */
#include "registry/handlers.h"

#include <string.h>
#include "lib/grammar.h"
#include "serve/manifest.h"
#include "serve/push.h"
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
    bool by_digest = grammar_is_digest(rt->ref);
    char digest[DIGEST_STR_MAX];
    struct manifest m;
    if ((rc = push_manifest(c, rt->name, by_digest ? NULL : rt->ref, by_digest ? rt->ref : NULL,
                            body, len, req_header(r, "Content-Type"), digest, &m, e)) != PIER_OK)
        return rc;
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
