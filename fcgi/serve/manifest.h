/* serve/manifest: GET/HEAD of a manifest — from the local store, else (or
 * for a cached tag due for a check) through the pull-through cache. */
#ifndef PIER_SERVE_MANIFEST_H
#define PIER_SERVE_MANIFEST_H

#include "http/request.h"
#include "lib/ctx.h"
#include "lib/contract.h"
#include "lib/err.h"

/* Answer r with manifest ref (tag or digest) of repository name; by tag
 * the Accept header is honoured. On failure nothing was sent. */
PIER_MUST_USE
pier_err serve_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                        struct perr *e);

#endif
