/* supervisor: an optional parent above the master (pierd -s) that starts it
 * again when it dies abnormally, as a service manager's Restart=on-failure
 * would. Without it a master killed by SIGKILL (or the OOM killer) leaves the
 * node down: its workers die with it. Under systemd, run pierd without -s. */
#ifndef PIER_SUPERVISOR_H
#define PIER_SUPERVISOR_H

#include <stdbool.h>
#include "lib/config.h"

/* Become the supervisor of the master that serves listen_fd, an open
 * listening socket whose pool is not yet running.
 *
 * Returns only in a child process, which is to run a master:
 *   false  the first master: serve listen_fd as it is;
 *   true   a restart: listen_fd is closed; start again from the
 *          configuration file (it may have changed) and open the socket anew.
 *
 * The supervisor itself never returns. It writes cfg->supervisor_pid_file
 * (if set), passes SIGHUP to the master, and on SIGTERM/SIGINT/SIGQUIT
 * passes the signal on, waits for the master and exits with its status. A
 * master that exits with status 0 (stopped by a signal sent to it directly)
 * ends the supervisor as well. A master that is killed by a signal or exits
 * with another status is started again after a delay that starts at one
 * second and doubles, up to 30 s, while masters keep dying within a minute.
 * It keeps no socket open between masters, so Apache sees the pool as gone
 * (and answers 503) until the next master listens. */
bool supervisor_run(const struct config *cfg, int listen_fd);

#endif
