/* serve/manifest: GET/HEAD of a manifest — from the local store, else (or
 * for a cached tag due for a check) through the pull-through cache. */
#ifndef PIER_SERVE_MANIFEST_H
#define PIER_SERVE_MANIFEST_H

#include "http/request.h"
#include "lib/ctx.h"
#include "lib/contract.h"
#include "lib/err.h"

#include "store/repo.h"

/* Manifest ref (tag or digest) of repository name as a pull sees it: from
 * the local store, else — a miss, or a cached tag due for a check — through
 * the pull-through cache, which may import it (and create the repository;
 * authorized there). The body comes with it unless r is a HEAD. *state is
 * NULL for a pushed repository, else the X-Pier-Cache value ("hit", "miss",
 * "revalidated", "stale"). Failures as cache_manifest: PIER_E_NAME_UNKNOWN
 * or PIER_E_MANIFEST_UNKNOWN, the caller's PIER_E_DENIED, an upstream's
 * PIER_E_UPSTREAM / _UPSTREAM_TIMEOUT / _TOOMANYREQUESTS (a refusal of the
 * rule's credentials has the detail cache_manifest() gives it). Nothing is
 * sent. */
PIER_MUST_USE
pier_err serve_manifest_find(struct ctx *c, struct req *r, const char *name, const char *ref,
                             struct stored_manifest *out, const char **state, struct perr *e);

/* Answer r with manifest ref (tag or digest) of repository name; by tag
 * the Accept header is honoured. On failure nothing was sent. */
PIER_MUST_USE
pier_err serve_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                        struct perr *e);

#endif
