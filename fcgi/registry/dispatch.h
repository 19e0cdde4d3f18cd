/* dispatch: route a /v2/ request to its handler, after the method check,
 * and answer every failure of a registry request (the one writer of OCI
 * error responses besides the worker's before-routing errors). */
#ifndef PIER_DISPATCH_H
#define PIER_DISPATCH_H

#include "http/request.h"
#include "lib/ctx.h"

struct authn_cache;
/* Answer one registry API request completely (success or OCI error):
 * authenticate, authorize the route's action, run the handler. */
void registry_handle(struct ctx *c, struct authn_cache *ac, struct req *r);
/* Answer GET /token (the bearer token service) completely. */
void registry_token(struct ctx *c, struct authn_cache *ac, struct req *r);

#endif
