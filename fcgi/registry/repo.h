/* repo: the registry's metadata store — repositories, blob links, manifests,
 * tags and the listings built from them. Every statement is parameterized;
 * every name and digest passed in has already passed the grammar checks. */
#ifndef PIER_REPO_H
#define PIER_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "lib/err.h"
#include "registry/manifest.h"
#include "server/ctx.h"

/* Size of a blob linked to repository name: PIER_OK, or PIER_E_BLOB_UNKNOWN. */
pier_err repo_blob_get(struct ctx *c, const char *name, const char *digest, long long *size,
                       struct perr *e);
/* Size of a blob known to the registry in any repository. */
pier_err repo_blob_any(struct ctx *c, const char *digest, long long *size, struct perr *e);
/* Link a published blob (its file already exists) into repository name,
 * creating the repository. Joins the caller's transaction when one is open,
 * else runs in its own. PIER_E_DENIED for cache repositories. */
pier_err repo_blob_link(struct ctx *c, const char *name, const char *digest, long long size,
                        struct perr *e);
/* Remove the link (the file stays until garbage collection). */
pier_err repo_blob_unlink(struct ctx *c, const char *name, const char *digest, struct perr *e);

struct stored_manifest {
    const char *digest;
    const char *media_type;
    const char *body;   /* NULL when not requested */
    long long size;
};

/* Manifest by tag or digest. PIER_E_MANIFEST_UNKNOWN, or PIER_E_NAME_UNKNOWN
 * when the repository itself does not exist. */
pier_err repo_manifest_get(struct ctx *c, const char *name, const char *ref, bool with_body,
                           struct stored_manifest *out, struct perr *e);
/* Store a parsed, digest-checked manifest and move tag (may be NULL) to it,
 * after checking that every referenced blob and child manifest is present in
 * this repository (PIER_E_MANIFEST_BLOB_UNKNOWN names the first missing one).
 * All or nothing. */
pier_err repo_manifest_put(struct ctx *c, const char *name, const char *tag, const char *digest,
                           const struct manifest *m, const char *body, size_t len,
                           struct perr *e);
/* Delete a manifest by digest (its tags go with it) or a tag by name. */
pier_err repo_manifest_delete(struct ctx *c, const char *name, const char *ref, struct perr *e);

/* Up to n tags after last (NULL: from the start), lexically ordered, appended
 * to the JSON array out; *more tells whether another page exists. */
pier_err repo_tags(struct ctx *c, const char *name, const char *last, int n, json_t *out,
                   bool *more, struct perr *e);
pier_err repo_catalog(struct ctx *c, const char *last, int n, json_t *out, bool *more,
                      struct perr *e);
/* Descriptors of the manifests in name whose subject is digest, optionally
 * only those of artifact_type, appended to out. */
pier_err repo_referrers(struct ctx *c, const char *name, const char *digest,
                        const char *artifact_type, json_t *out, struct perr *e);

#endif
