/* handlers: one function per OCI endpoint family; each answers every method
 * the dispatcher lets through for its route. */
#ifndef PIER_HANDLERS_H
#define PIER_HANDLERS_H

#include "http/request.h"
#include "registry/route.h"
#include "server/ctx.h"

void h_blob(struct ctx *c, struct req *r, const struct route *rt);
void h_upload_start(struct ctx *c, struct req *r, const struct route *rt);
void h_upload(struct ctx *c, struct req *r, const struct route *rt);
void h_manifest(struct ctx *c, struct req *r, const struct route *rt);
void h_tags(struct ctx *c, struct req *r, const struct route *rt);
void h_catalog(struct ctx *c, struct req *r, const struct route *rt);
void h_referrers(struct ctx *c, struct req *r, const struct route *rt);

#endif
