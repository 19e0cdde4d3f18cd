/* h_uploads: POST /v2/<name>/blobs/uploads/ (session, monolithic, mount) and
 * GET/PATCH/PUT/DELETE /v2/<name>/blobs/uploads/<id>. */
#include "registry/handlers.h"

#include <string.h>
#include "auth/authz.h"
#include "db/db.h"
#include "lib/grammar.h"
#include "store/repo.h"
#include "store/uploads.h"

static void created(struct req *r, const char *name, const char *digest)
{
    resp_status(r, 201);
    resp_header(r, "Location", "/v2/%s/blobs/%s", name, digest);
    resp_header(r, "Docker-Content-Digest", "%s", digest);
    resp_end(r);
}

static void session_headers(struct req *r, const char *name, const struct upload *u)
{
    char range[48];
    upload_range(u, range);
    resp_header(r, "Location", "/v2/%s/blobs/uploads/%s", name, u->id);
    resp_header(r, "Range", "%s", range);
    resp_header(r, "Docker-Upload-UUID", "%s", u->id);
}

/* Try a cross-repository mount: *answered when it was (201). */
static pier_err try_mount(struct ctx *c, struct req *r, const struct route *rt,
                          const char *digest, bool *answered, struct perr *e)
{
    *answered = false;
    pier_err rc = grammar_digest(digest, NULL, e);
    if (rc)
        return rc;
    char from[NAME_MAX_LEN + 2];
    int have_from = req_query(r, "from", from, sizeof from);
    if (have_from < 0)
        return perr_set(e, PIER_E_NAME_INVALID, "invalid repository name in from=");
    if (have_from > 0 && (rc = grammar_name(from, e)) != PIER_OK)
        return rc;
    long long size;
    /* The caller must be able to read the blob where it comes from; if not,
     * answer as if it were unknown (a regular upload), revealing nothing. */
    rc = have_from ? (authz_allowed(c, "ecr:GetDownloadUrlForLayer", from)
                          ? repo_blob_get(c, from, digest, &size, NULL, e)
                          : PIER_E_BLOB_UNKNOWN)
                   : repo_blob_readable(c, digest, &size, e);
    if (rc == PIER_E_BLOB_UNKNOWN)
        return PIER_OK; /* the spec says: fall back to a regular upload session */
    if (rc == PIER_OK)
        rc = repo_blob_link(c, rt->name, digest, size, 0, e);
    if (rc == PIER_E_BLOB_UNKNOWN)
        return PIER_OK; /* collected meanwhile: an upload brings it back */
    if (rc)
        return rc;
    created(r, rt->name, digest);
    *answered = true;
    return PIER_OK;
}

pier_err registry_may_push(struct ctx *c, const char *name, struct perr *e)
{
    bool exists = true;
    pier_err rc = repo_check_push(c, name, &exists, e);
    if (rc)
        return rc;
    return authz_create_or_import(c, name, exists, false, e);
}

pier_err h_upload_start(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    /* Decided before any byte is accepted. */
    pier_err rc = registry_may_push(c, rt->name, e);
    if (rc)
        return rc;
    char digest[DIGEST_MAX_LEN + 2];
    int have = req_query(r, "mount", digest, sizeof digest);
    if (have < 0)
        return perr_set(e, PIER_E_DIGEST_INVALID, "invalid digest in mount=");
    if (have > 0) {
        bool answered;
        if ((rc = try_mount(c, r, rt, digest, &answered, e)) != PIER_OK)
            return rc;
        if (answered) {
            req_refuse_body(r);
            return PIER_OK;
        }
    }
    have = req_query(r, "digest", digest, sizeof digest);
    if (have != 0) {
        long long size;
        if (have < 0)
            return perr_set(e, PIER_E_DIGEST_INVALID, "invalid digest in digest=");
        if ((rc = upload_monolithic(c, r, rt->name, digest, &size, e)) != PIER_OK)
            return rc;
        created(r, rt->name, digest);
        return PIER_OK;
    }
    req_refuse_body(r);
    struct upload u;
    if ((rc = upload_create(c, rt->name, &u, e)) != PIER_OK)
        return rc;
    resp_status(r, 202);
    session_headers(r, rt->name, &u);
    resp_end(r);
    return PIER_OK;
}

/* Content-Range of the request, if any: *start = -1 when absent. */
static pier_err chunk_range(struct req *r, long long *start, long long *end, struct perr *e)
{
    const char *cr = req_header(r, "Content-Range");
    *start = *end = -1;
    if (!cr || !*cr)
        return PIER_OK;
    return grammar_content_range(cr, start, end, e);
}

static pier_err patch(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    struct upload u;
    long long start, end;
    pier_err rc = db_tx_begin(c->db, e);
    if (rc)
        return rc;
    rc = upload_lock(c, rt->name, rt->ref, &u, e);
    if (rc)
        return db_tx_end(c->db, rc, e);
    rc = chunk_range(r, &start, &end, e);
    if (!rc)
        rc = upload_append(c, r, &u, start, end, e);
    if (!rc)
        rc = upload_save(c, &u, e);
    if ((rc = db_tx_end(c->db, rc, e)) != PIER_OK) {
        if (rc == PIER_E_RANGE_INVALID)
            session_headers(r, rt->name, &u);
        return rc;
    }
    resp_status(r, 202);
    session_headers(r, rt->name, &u);
    resp_end(r);
    return PIER_OK;
}

static pier_err finish(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    char digest[DIGEST_MAX_LEN + 2];
    int have = req_query(r, "digest", digest, sizeof digest);
    if (have <= 0)
        return perr_set(e, PIER_E_DIGEST_INVALID,
                        have < 0 ? "invalid digest in digest="
                                 : "the digest query parameter is required to complete an upload");
    pier_err rc = grammar_digest(digest, NULL, e);
    if (rc)
        return rc;
    struct upload u;
    long long start, end;
    bool locked = false;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    locked = (rc = upload_lock(c, rt->name, rt->ref, &u, e)) == PIER_OK;
    if (!rc)
        rc = chunk_range(r, &start, &end, e);
    if (!rc)
        rc = upload_append(c, r, &u, start, end, e);
    if (!rc)
        rc = upload_finish(c, rt->name, &u, digest, e);
    if (rc == PIER_E_DIGEST_INVALID) {
        /* A mismatch discarded the session; that must stick too, and the
         * answer stays the mismatch. */
        struct perr ce;
        (void)db_tx_end(c->db, PIER_OK, &ce);
    } else {
        rc = db_tx_end(c->db, rc, e);
    }
    if (rc) {
        if (rc == PIER_E_RANGE_INVALID && locked)
            session_headers(r, rt->name, &u);
        return rc;
    }
    created(r, rt->name, digest);
    return PIER_OK;
}

pier_err h_upload(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    if (strcmp(r->method, "PATCH") == 0)
        return patch(c, r, rt, e);
    if (strcmp(r->method, "PUT") == 0)
        return finish(c, r, rt, e);
    struct upload u;
    pier_err rc = upload_get(c, rt->name, rt->ref, &u, e);
    if (rc)
        return rc;
    if (strcmp(r->method, "DELETE") == 0) {
        if ((rc = upload_delete(c, u.id, e)) != PIER_OK)
            return rc;
        resp_status(r, 204);
        resp_end(r);
        return PIER_OK;
    }
    resp_status(r, 204);
    session_headers(r, rt->name, &u);
    resp_end(r);
    return PIER_OK;
}
