/* repo: the registry's metadata store — repositories, blob links, manifests,
 * tags and the listings built from them. Every statement is parameterized;
 * every name and digest passed in has already passed the grammar checks. */
#ifndef PIER_REPO_H
#define PIER_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "lib/err.h"
#include "store/manifest.h"
#include "lib/ctx.h"

/* Size of a blob linked to repository name: PIER_OK, or PIER_E_BLOB_UNKNOWN.
 * *rule_id (may be NULL) receives the repository's cache rule, 0 if none. */
PIER_MUST_USE
pier_err repo_blob_get(struct ctx *c, const char *name, const char *digest, long long *size,
                       long long *rule_id, struct perr *e);
/* Size of a blob known to the registry in any repository. */
PIER_MUST_USE
pier_err repo_blob_any(struct ctx *c, const char *digest, long long *size, struct perr *e);
/* Link a published blob (its file already exists) into repository name,
 * creating the repository. rule_id 0 is a push: refused (PIER_E_DENIED) for
 * cache repositories and for new names under a cache rule. rule_id > 0 links
 * into the cache repository of that rule. Joins the caller's transaction when
 * one is open, else runs in its own. */
PIER_MUST_USE
pier_err repo_blob_link(struct ctx *c, const char *name, const char *digest, long long size,
                        long long rule_id, struct perr *e);
/* Publish a verified temporary file as blob digest and link it into
 * repository name (as repo_blob_link), in one transaction that holds the
 * digest's lock, so that repo_blob_drop_orphan never removes a file between
 * its publication and its row. If tmp_path is gone but the blob is already
 * published with this size, that file is linked. */
PIER_MUST_USE
pier_err repo_blob_publish(struct ctx *c, const char *name, const char *tmp_path,
                           const char *digest, long long size, long long rule_id, struct perr *e);
/* Remove the blob file at path if no blobs row names digest and the file is
 * at least min_age seconds old, under the digest's lock. */
PIER_MUST_USE
pier_err repo_blob_drop_orphan(struct ctx *c, const char *digest, const char *path, int min_age,
                               bool *removed, struct perr *e);
/* Does repository name exist? */
PIER_MUST_USE
pier_err repo_exists_named(struct ctx *c, const char *name, bool *exists, struct perr *e);
/* Like repo_blob_any, but only if the caller may read the blob from at least
 * one repository holding it (mount without from=). */
PIER_MUST_USE
pier_err repo_blob_readable(struct ctx *c, const char *digest, long long *size, struct perr *e);
/* May clients push to name? PIER_E_DENIED (with the reason) for cache
 * repositories and names under a pull-through cache rule. */
PIER_MUST_USE
pier_err repo_check_push(struct ctx *c, const char *name, struct perr *e);
/* The size the manifests of repository name declare for blob digest, or -1
 * when no manifest there references it (or none recorded a size). */
PIER_MUST_USE
pier_err repo_blob_declared_size(struct ctx *c, const char *name, const char *digest,
                                 long long *size, struct perr *e);
/* Remove the link (the file stays until garbage collection). */
PIER_MUST_USE
pier_err repo_blob_unlink(struct ctx *c, const char *name, const char *digest, struct perr *e);

struct stored_manifest {
    const char *digest;
    const char *media_type;
    const char *body;   /* NULL when not requested */
    long long size;
    long long rule_id;  /* cache rule of the repository, 0 for pushed repositories */
    bool cache;         /* the repository is a pull-through cache repository */
    bool fresh;         /* by tag in a cache repository: checked within the refresh interval */
};

/* Manifest by tag or digest. PIER_E_MANIFEST_UNKNOWN, or PIER_E_NAME_UNKNOWN
 * when the repository itself does not exist. */
PIER_MUST_USE
pier_err repo_manifest_get(struct ctx *c, const char *name, const char *ref, bool with_body,
                           struct stored_manifest *out, struct perr *e);
/* Store a parsed, digest-checked manifest and move tag (may be NULL) to it.
 * A push (rule_id 0) first checks that every referenced blob and child
 * manifest is present in this repository (PIER_E_MANIFEST_BLOB_UNKNOWN names
 * the first missing one). A cache import (rule_id > 0) stores what the
 * upstream sent (blobs and children are fetched on demand) and marks the tag
 * as just checked. All or nothing. */
PIER_MUST_USE
pier_err repo_manifest_put(struct ctx *c, const char *name, const char *tag, const char *digest,
                           const struct manifest *m, const char *body, size_t len,
                           long long rule_id, struct perr *e);
/* The upstream confirmed that tag still points to the stored manifest. */
PIER_MUST_USE
pier_err repo_tag_checked(struct ctx *c, const char *name, const char *tag, struct perr *e);
/* Delete a manifest by digest (its tags go with it) or a tag by name.
 * PIER_E_DENIED in cache repositories. */
PIER_MUST_USE
pier_err repo_manifest_delete(struct ctx *c, const char *name, const char *ref, struct perr *e);

/* Up to n tags after last (NULL: from the start), lexically ordered, appended
 * to the JSON array out; *more tells whether another page exists. */
PIER_MUST_USE
pier_err repo_tags(struct ctx *c, const char *name, const char *last, int n, json_t *out,
                   bool *more, struct perr *e);
PIER_MUST_USE
pier_err repo_catalog(struct ctx *c, const char *last, int n, json_t *out, bool *more,
                      struct perr *e);
/* Descriptors of the manifests in name whose subject is digest, optionally
 * only those of artifact_type, appended to out. */
PIER_MUST_USE
pier_err repo_referrers(struct ctx *c, const char *name, const char *digest,
                        const char *artifact_type, json_t *out, struct perr *e);

#endif
