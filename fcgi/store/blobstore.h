/* blobstore: the shared blob root. Published blobs live at
 * blobs/<alg>/<first 2 hex>/<hex>; uploads and downloads in progress live under
 * tmp/ on the same filesystem, so publishing is one atomic rename(). */
#ifndef PIER_BLOBSTORE_H
#define PIER_BLOBSTORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "lib/err.h"

/* The root is shorter than PATH_MAX by room for "/blobs/sha512/xx/<128 hex>". */
#define BLOBSTORE_ROOT_MAX (PATH_MAX - 256)

struct blobstore {
    char root[BLOBSTORE_ROOT_MAX];
};

/* Remember root and create blobs/sha256, blobs/sha512, tmp/uploads and
 * tmp/fetch if missing. */
PIER_MUST_USE
pier_err blobstore_init(struct blobstore *bs, const char *root, struct perr *e);

/* Path of a published blob. digest must have passed grammar_digest(). */
void blobstore_blob_path(const struct blobstore *bs, const char *digest, char out[PATH_MAX]);
/* Path of an upload's temporary file. id must be a valid UUID. */
void blobstore_upload_path(const struct blobstore *bs, const char *id, char out[PATH_MAX]);
/* Path of a download's temporary file (a pull-through fetch in progress).
 * id must be a valid UUID, fresh for each download. */
void blobstore_fetch_path(const struct blobstore *bs, const char *id, char out[PATH_MAX]);

/* The directories that hold temporary files, for whoever creates them
 * (blobstore_init does; the fetch holder again before each download) and for
 * the maintenance sweep that removes what nobody owns. */
enum blobstore_tmp {
    BLOBSTORE_TMP_UPLOADS, /* tmp/uploads: blobstore_upload_path() files */
    BLOBSTORE_TMP_FETCH,   /* tmp/fetch: blobstore_fetch_path() files */
};
void blobstore_tmp_dir(const struct blobstore *bs, enum blobstore_tmp kind, char out[PATH_MAX]);

/* Size of a published blob; false if it is not there. */
bool blobstore_stat(const struct blobstore *bs, const char *digest, long long *size);

/* Make a verified temporary file visible as digest: fsync it, make it
 * read-only for the web server's group, rename it into place (creating the
 * fan-out directory) and fsync the directory. If the blob is already
 * published the rename replaces it with the same bytes (same digest), so
 * concurrent publishers of one blob are safe. On failure the temporary file
 * is removed and nothing is published; a temporary file that is already gone
 * is PIER_E_INTERNAL. */
PIER_MUST_USE
pier_err blobstore_publish(const struct blobstore *bs, const char *tmp_path, const char *digest,
                           struct perr *e);

/* pwrite() all of buf at off, retrying short writes. */
PIER_MUST_USE
pier_err blobstore_pwrite_all(int fd, const void *buf, size_t len, off_t off, struct perr *e);
/* Is there room for bytes more, with keep_free bytes left over? Otherwise
 * PIER_E_STORAGE_FULL (what is free, needed and kept). Answers PIER_OK when
 * the file system cannot tell. */
PIER_MUST_USE
pier_err blobstore_reserve(const struct blobstore *bs, long long bytes, long long keep_free,
                           struct perr *e);

#endif
