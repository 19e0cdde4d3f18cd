/* serve/push: what a push does, whichever API it comes through — the
 * registry's uploads and manifest PUT, or the control plane's layer upload
 * and PutImage: the decision before any byte is accepted, and storing a
 * manifest. */
#ifndef PIER_SERVE_PUSH_H
#define PIER_SERVE_PUSH_H

#include <stddef.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"
#include "store/digest.h"
#include "store/manifest.h"

/* May the caller push to repository name? Refused (PIER_E_DENIED, with the
 * reason) in a cache namespace; a push that would create the repository
 * needs ecr:CreateRepository. One lookup of the repository. */
PIER_MUST_USE
pier_err push_check(struct ctx *c, const char *name, struct perr *e);

/* Store the manifest body (len bytes) in repository name and move tag (NULL:
 * none) to it, after push_check(). want (NULL: none) is the digest the
 * client says the body has; its algorithm is the one computed (else sha256)
 * and a mismatch is PIER_E_DIGEST_INVALID with the computed digest in
 * e->detail. media_type (NULL: none) is what the client says the body is
 * (manifest_parse()'s content_type). On success digest holds the manifest's
 * digest and *m (the caller frees it with manifest_free) the parsed
 * manifest; on failure nothing is stored and nothing is left to free, but
 * m->kind still says whether the body was an image or an index (an image
 * when it did not parse).
 * Errors: those of manifest_parse(), push_check() and repo_manifest_put(). */
PIER_MUST_USE
pier_err push_manifest(struct ctx *c, const char *name, const char *tag, const char *want,
                       const char *body, size_t len, const char *media_type,
                       char digest[DIGEST_STR_MAX], struct manifest *m, struct perr *e);

#endif
