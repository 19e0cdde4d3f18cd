/* pool: the little the workers of one node share with each other, in memory
 * the master maps before it forks them: how many workers are receiving a
 * request body right now. A body arrives as fast as its client sends it, so
 * a slow (or malicious) client holds a worker for as long as it takes; at
 * most body_workers workers may do that at once, and the rest stay free for
 * everything else (pulls, logins, the API). Nothing here is request state:
 * a node that restarts loses nothing. Also which workers are alive and busy,
 * for /metrics. */
#ifndef PIER_POOL_H
#define PIER_POOL_H

#include <stdbool.h>
#include "lib/config.h"

#define POOL_SLOTS 2048

/* Master, before the first fork: map the shared counters. false on failure
 * (the limit is then not enforced, and a warning is logged). */
bool pool_init(void);
/* Master: the worker in slot i is gone; give back what it held. */
void pool_slot_gone(int slot);
/* Worker, at start: this process is slot i of the master's table. */
void pool_worker_attach(int slot);

/* The limit for cfg: body_workers, or all but a quarter of the workers (at
 * least one kept free) when 0. */
int pool_body_limit(const struct config *cfg);
/* Worker: take one of the body slots before reading a body; false when all
 * are taken (answer 429 without reading it). Idempotent per request. */
bool pool_body_begin(const struct config *cfg);
/* Worker: the request is over (no effect when no slot was taken). */
void pool_body_end(void);

/* Worker: this worker is serving a request now (true) or waiting for one. */
void pool_busy(bool busy);
/* The node's workers that are alive, and how many of them serve a request
 * or receive a body now (for /metrics). Zeros when the table is not mapped. */
void pool_counts(int *alive, int *busy, int *bodies);

#endif
