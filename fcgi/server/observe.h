/* observe: what load balancers and Prometheus ask of a node — /healthz,
 * /readyz and /metrics — and the one call that counts every request in the
 * node's shared metrics (lib/metrics.h). */
#ifndef PIER_OBSERVE_H
#define PIER_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>
#include "auth/authn.h"
#include "http/request.h"
#include "lib/ctx.h"

/* The action a principal needs to read /metrics with its credentials (on the
 * registry's ARN): Pier's own, matched by "ecr:*" (administrators) and
 * grantable alone to a monitoring user. */
#define OBSERVE_METRICS_ACTION "ecr:GetMetrics"
/* The most /metrics writes; a node with more series answers 500. */
#define OBSERVE_METRICS_MAX (8u << 20)

/* Is path one of /healthz, /readyz, /metrics? */
bool observe_path(const char *path);

/* Answer a request observe_path() accepted:
 *   /healthz  200 "ok": the node's Apache and a worker answer; nothing else
 *             is asked (no database), so it stays cheap and never flaps with it.
 *   /readyz   200 or 503 with JSON naming each check: the database answers,
 *             every migration this binary knows is applied, the blob root
 *             takes a new file. No secrets, no authentication.
 *   /metrics  the Prometheus text format, for clients whose address is in
 *             metrics_allow or who authenticate (Basic, as the registry takes
 *             it) as a principal allowed OBSERVE_METRICS_ACTION; others get
 *             401 (with a Basic challenge) or 403. */
void observe_handle(struct ctx *c, struct authn_cache *ac, struct req *r);

/* Worker: a request was accepted; marks the worker busy. Returns the start
 * time to give observe_end(). */
int64_t observe_begin(void);
/* Worker: the request is answered; counts it by route kind and status with
 * its duration, and marks the worker idle. Call it before req_finish(): the
 * request's path belongs to libfcgi and is freed there. */
void observe_end(const struct req *r, int64_t started);

#endif
