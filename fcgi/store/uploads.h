/* uploads: blob upload sessions. The session row (offset and running hash)
 * lives in the database and the bytes in tmp/uploads/<id> on the shared blob
 * root, so consecutive chunks may arrive at different nodes. The only module
 * with SQL on the uploads table. */
#ifndef PIER_UPLOADS_H
#define PIER_UPLOADS_H

#include <stdbool.h>
#include "http/request.h"
#include "lib/contract.h"
#include "lib/util.h"
#include "store/digest.h"
#include "lib/ctx.h"

struct upload {
    char id[UUID_STR_LEN];
    long long size;            /* bytes received so far */
    bool have_state;           /* hs is valid for the first size bytes */
    struct hashstate hs;
};

/* Open a new session for repository name: a row and an empty file. */
PIER_MUST_USE
pier_err upload_create(struct ctx *c, const char *name, struct upload *u, struct perr *e);
/* Read the session without locking it (status requests). */
PIER_MUST_USE
pier_err upload_get(struct ctx *c, const char *name, const char *id, struct upload *u,
                    struct perr *e);
/* Inside a transaction: lock the session row for this request. Errors:
 * PIER_E_BLOB_UPLOAD_UNKNOWN (no such session in this repository),
 * PIER_E_RANGE_INVALID (another request is writing to it right now). */
PIER_MUST_USE
pier_err upload_lock(struct ctx *c, const char *name, const char *id, struct upload *u,
                     struct perr *e);
/* Append the request body at u->size, hashing as it goes. When start >= 0
 * (a Content-Range was given) it must equal u->size. Enforces max_chunk_size
 * and max_blob_size. On failure the file is cut back to u->size and u is
 * unchanged. */
PIER_MUST_USE
pier_err upload_append(struct ctx *c, struct req *r, struct upload *u, long long start,
                       long long end, struct perr *e);
/* Persist u->size and the hash state (inside the caller's transaction). */
PIER_MUST_USE
pier_err upload_save(struct ctx *c, const struct upload *u, struct perr *e);
/* Verify the received bytes against digest and publish them as that blob,
 * linking it into name and removing the session, all inside the caller's
 * transaction. On a digest mismatch the session is discarded (row and file)
 * and PIER_E_DIGEST_INVALID returned. */
PIER_MUST_USE
pier_err upload_finish(struct ctx *c, const char *name, struct upload *u, const char *digest,
                       struct perr *e);
/* Remove the session row and its file. */
PIER_MUST_USE
pier_err upload_delete(struct ctx *c, const char *id, struct perr *e);

/* Monolithic upload (POST ?digest= with a body): stream the body to a fresh
 * temporary file, verify, publish and link. *size receives the blob size. */
PIER_MUST_USE
pier_err upload_monolithic(struct ctx *c, struct req *r, const char *name, const char *digest,
                           long long *size, struct perr *e);

/* "0-<last byte>" as the Range header of upload responses ("0-0" when empty,
 * as docker registry does). */
void upload_range(const struct upload *u, char out[48]);

/* ---- housekeeping ---- */
/* Remove the sessions idle for more than ttl seconds, and their files;
 * *sessions and *files count what went. */
PIER_MUST_USE
pier_err upload_expire(struct ctx *c, int ttl, int *sessions, int *files, struct perr *e);
/* Does session id (a UUID) exist? */
PIER_MUST_USE
pier_err upload_exists(struct ctx *c, const char *id, bool *exists, struct perr *e);
/* How many sessions are open. */
PIER_MUST_USE
pier_err upload_count(struct ctx *c, long long *n, struct perr *e);

#endif
