/* handlers: one function per OCI endpoint family; each answers every method
 * the dispatcher lets through for its route. */
#ifndef PIER_HANDLERS_H
#define PIER_HANDLERS_H

#include "http/request.h"
#include "registry/route.h"
#include "lib/ctx.h"

void h_blob(struct ctx *c, struct req *r, const struct route *rt);
void h_upload_start(struct ctx *c, struct req *r, const struct route *rt);
void h_upload(struct ctx *c, struct req *r, const struct route *rt);
void h_manifest(struct ctx *c, struct req *r, const struct route *rt);
void h_tags(struct ctx *c, struct req *r, const struct route *rt);
void h_catalog(struct ctx *c, struct req *r, const struct route *rt);
void h_referrers(struct ctx *c, struct req *r, const struct route *rt);

struct stored_manifest;
/* Answer with a stored manifest (Accept negotiation by tag; HEAD without
 * body). cache_state, when not NULL, goes into X-Pier-Cache. */
void h_manifest_send(struct ctx *c, struct req *r, const char *name, const char *ref,
                     const struct stored_manifest *sm, const char *cache_state);
/* Answer with a published blob through X-Sendfile. */
void h_blob_send(struct ctx *c, struct req *r, const char *digest, const char *cache_state);

#endif
