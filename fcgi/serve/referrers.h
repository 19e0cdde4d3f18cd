/* serve/referrers: GET of the referrers of a manifest — from the local
 * store, or from the upstream's list in a cache namespace. */
#ifndef PIER_SERVE_REFERRERS_H
#define PIER_SERVE_REFERRERS_H

#include "http/request.h"
#include "lib/ctx.h"
#include "lib/contract.h"
#include "lib/err.h"

/* Answer r with the image index of the manifests referring to digest in
 * repository name, filtered by artifact_type (NULL: all). */
PIER_MUST_USE
pier_err serve_referrers(struct ctx *c, struct req *r, const char *name, const char *digest,
                         const char *artifact_type, struct perr *e);

#endif
