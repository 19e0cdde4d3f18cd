/* serve/referrers: GET of the referrers of a manifest — from the local
 * store, or from the upstream's list in a cache namespace. */
#ifndef PIER_SERVE_REFERRERS_H
#define PIER_SERVE_REFERRERS_H

#include <jansson.h>
#include "http/request.h"
#include "lib/ctx.h"
#include "lib/contract.h"
#include "lib/err.h"

/* The descriptors of the manifests referring to digest in repository name
 * whose artifactType is artifact_type (NULL: all): *list (the caller
 * decrefs it), and in a cache namespace *cache_state ("hit", "miss",
 * "stale"; NULL otherwise). Asking the upstream is an import, authorized
 * by the cache layer; upstream failures with nothing cached are
 * PIER_E_UPSTREAM, PIER_E_UPSTREAM_TIMEOUT or PIER_E_TOOMANYREQUESTS. */
PIER_MUST_USE
pier_err serve_referrers_list(struct ctx *c, const char *name, const char *digest,
                              const char *artifact_type, json_t **list, const char **cache_state,
                              struct perr *e);
/* Answer r with the image index of the manifests referring to digest in
 * repository name, filtered by artifact_type (NULL: all). */
PIER_MUST_USE
pier_err serve_referrers(struct ctx *c, struct req *r, const char *name, const char *digest,
                         const char *artifact_type, struct perr *e);

#endif
