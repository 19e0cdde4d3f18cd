/* worker: one FastCGI worker process — accept a request, answer it, repeat. */
#ifndef PIER_WORKER_H
#define PIER_WORKER_H

#include "lib/config.h"

/* Serve requests from listen_fd until SIGTERM (the request in flight is
 * finished first) or max_requests. Returns the process exit status. */
int worker_run(const struct config *cfg, int listen_fd);

#endif
