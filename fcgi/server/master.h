/* master: the process Apache never talks to. It owns the FastCGI socket,
 * preforks the workers, replaces any that die, reloads on SIGHUP (new workers
 * with the new configuration, old ones finish their requests) and stops on
 * SIGTERM after the requests in flight are answered. */
#ifndef PIER_MASTER_H
#define PIER_MASTER_H

#include "lib/config.h"

/* Open the unix socket at cfg->socket; refuses when another live process
 * listens there. Returns the listening fd or -1 (logged). */
int master_listen(const struct config *cfg);
/* Run until stopped. config_path is re-read on SIGHUP (may be NULL).
 * Returns the process exit status. */
int master_run(struct config *cfg, const char *config_path, int listen_fd);

#endif
