/* h_blobs: GET/HEAD/DELETE /v2/<name>/blobs/<digest>. Bytes are never copied
 * through the worker: the answer is headers plus X-Sendfile, and Apache
 * streams the file (with Range support) itself. */
#include "registry/handlers.h"

#include <string.h>
#include "registry/errors.h"
#include "registry/repo.h"

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
    long long size;
    if (repo_blob_get(c, rt->name, rt->ref, &size, &e) != PIER_OK) {
        oci_error(r, &e);
        return;
    }
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, rt->ref, path);
    resp_status(r, 200);
    resp_header(r, "Content-Type", "application/octet-stream");
    resp_header(r, "Docker-Content-Digest", "%s", rt->ref);
    resp_header(r, "ETag", "\"%s\"", rt->ref);
    resp_header(r, "Accept-Ranges", "bytes");
    resp_header(r, "Cache-Control", "max-age=31536000, immutable");
    resp_header(r, "X-Sendfile", "%s", path);
    resp_end(r);
}
