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
    long long short_end;       /* where the first chunk shorter than the minimum
                                  upload_part() was given ended, -1 when none */
    bool have_state;           /* hs is valid for the first size bytes */
    struct hashstate hs;
};

/* Where a chunk's bytes come from: the request body (the registry API) or
 * bytes in memory (a layer part of the control plane, already decoded). */
struct upload_src {
    struct req *r;            /* the request body, when not NULL */
    const unsigned char *buf; /* else these len bytes */
    size_t len;
};

/* Open a new session for repository name: a row and an empty file. */
PIER_MUST_USE
pier_err upload_create(struct ctx *c, const char *name, struct upload *u, struct perr *e);
/* Read the session without locking it (status requests). */
PIER_MUST_USE
pier_err upload_get(struct ctx *c, const char *name, const char *id, struct upload *u,
                    struct perr *e);
/* Append one chunk to session id of repository name, in a transaction of its
 * own: lock the session row, append src, save the new offset and hash state.
 * start >= 0 (a Content-Range, a part's first byte) must equal the bytes
 * received so far and end - start + 1 the chunk's length; start -1 appends
 * wherever the session ends. min_part > 0 remembers in u->short_end the end
 * of the first chunk shorter than min_part. Enforces max_chunk_size and
 * max_blob_size; a chunk that fails half-way is cut off again. Errors:
 * PIER_E_BLOB_UPLOAD_UNKNOWN (no such session in this repository),
 * PIER_E_RANGE_INVALID (the chunk does not follow, or another request is
 * writing to the session right now), PIER_E_TOO_LARGE, body and storage
 * errors. *found says whether the session was locked; then u holds its state
 * (after the chunk on success, before it on failure). */
PIER_MUST_USE
pier_err upload_part(struct ctx *c, const char *name, const char *id, const struct upload_src *src,
                     long long start, long long end, long long min_part, struct upload *u,
                     bool *found, struct perr *e);

/* A last word on a locked session before it becomes a blob (e.g. the control
 * plane refusing an empty upload): an error refuses the completion and
 * leaves the session as it was. */
typedef pier_err upload_check_fn(struct ctx *c, const struct upload *u, void *arg, struct perr *e);
/* Complete session id of repository name as blob digest, in one
 * transaction: lock it, append src when not NULL (start, end as in
 * upload_part), let check (may be NULL) refuse, verify the bytes against
 * digest, publish them, link the blob into name (creating the repository as a
 * push does) and remove the session. A digest mismatch discards the session
 * (row and file; that sticks) and returns PIER_E_DIGEST_INVALID naming the
 * digest received (also in e->detail); any other failure leaves the session
 * as it was. *found and u as in upload_part. */
PIER_MUST_USE
pier_err upload_complete(struct ctx *c, const char *name, const char *id,
                         const struct upload_src *src, long long start, long long end,
                         const char *digest, upload_check_fn *check, void *arg, struct upload *u,
                         bool *found, struct perr *e);
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
