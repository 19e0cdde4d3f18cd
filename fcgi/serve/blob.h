/* serve/blob: GET/HEAD of a blob — from the local store, else through the
 * pull-through cache when the repository is in a cache namespace. */
#ifndef PIER_SERVE_BLOB_H
#define PIER_SERVE_BLOB_H

#include "http/request.h"
#include "lib/ctx.h"
#include "lib/contract.h"
#include "lib/err.h"

/* Answer r with blob digest of repository name. On failure nothing was
 * sent, or a streamed download was begun (r->sent) and must be broken off. */
PIER_MUST_USE
pier_err serve_blob(struct ctx *c, struct req *r, const char *name, const char *digest,
                    struct perr *e);

#endif
