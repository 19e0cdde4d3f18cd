/* handlers: one function per OCI endpoint family; each answers every method
 * the dispatcher lets through for its route.
 *
 * A handler answers success itself and returns PIER_OK. On failure it
 * returns the code with e filled in and writes nothing more: the dispatcher
 * alone refuses the rest of the body, adds the login challenge, writes the
 * OCI error body, or breaks off a response that had begun. Headers a handler
 * added before failing (e.g. an upload's Range) are kept. */
#ifndef PIER_HANDLERS_H
#define PIER_HANDLERS_H

#include "http/request.h"
#include "lib/ctx.h"
#include "lib/err.h"
#include "registry/route.h"

typedef pier_err handler_fn(struct ctx *c, struct req *r, const struct route *rt,
                            struct perr *e);

handler_fn h_blob, h_upload_start, h_upload, h_manifest, h_tags, h_catalog, h_referrers;

#endif
