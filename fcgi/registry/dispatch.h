/* dispatch: route a /v2/ request to its handler, after the method check. */
#ifndef PIER_DISPATCH_H
#define PIER_DISPATCH_H

#include "http/request.h"
#include "server/ctx.h"

/* Answer one registry API request completely (success or OCI error). */
void registry_handle(struct ctx *c, struct req *r);

#endif
