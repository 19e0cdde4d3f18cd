/* h_blobs: GET/HEAD/DELETE /v2/<name>/blobs/<digest>. */
#include "registry/handlers.h"

#include <string.h>
#include "serve/blob.h"
#include "store/repo.h"

pier_err h_blob(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    if (strcmp(r->method, "DELETE") != 0)
        return serve_blob(c, r, rt->name, rt->ref, e);
    if (!c->cfg->allow_delete)
        return perr_set(e, PIER_E_METHOD, "deleting blobs is disabled on this registry");
    pier_err rc = repo_blob_unlink(c, rt->name, rt->ref, e);
    if (rc)
        return rc;
    resp_status(r, 202);
    resp_header(r, "Docker-Content-Digest", "%s", rt->ref);
    resp_end(r);
    return PIER_OK;
}
