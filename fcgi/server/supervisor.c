/* supervisor: restarts a master that died abnormally, with backoff. Like the
 * master it waits for signals with sigtimedwait(); nothing runs in handlers. */
#include "server/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lib/log.h"
#include "lib/util.h"

#define RESTART_DELAY_MIN_MS 1000
#define RESTART_DELAY_MAX_MS 30000
/* A master that ran this long was healthy: the next death restarts it after
 * the shortest delay again. */
#define HEALTHY_RUN_MS 60000

static void write_pid(const char *path)
{
    if (!path[0])
        return;
    FILE *f = fopen(path, "w");
    if (!f) {
        log_warn("cannot write supervisor pid file %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

static _Noreturn void finish(const struct config *cfg, int status)
{
    if (cfg->supervisor_pid_file[0])
        unlink(cfg->supervisor_pid_file);
    exit(status);
}

/* Wait for a signal in set for at most ms milliseconds (-1: no limit).
 * Returns the signal, or 0 when the time ran out. */
static int wait_signal(const sigset_t *set, int64_t ms)
{
    for (;;) {
        int sig;
        if (ms < 0) {
            sig = sigwaitinfo(set, NULL);
        } else {
            struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
            sig = sigtimedwait(set, NULL, &ts);
            if (sig < 0 && errno == EAGAIN)
                return 0;
        }
        if (sig > 0)
            return sig;
        /* EINTR: a signal outside the set (none is expected); wait again. */
    }
}

static void describe(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

bool supervisor_run(const struct config *cfg, int listen_fd)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    write_pid(cfg->supervisor_pid_file);
    log_setup((enum log_level)log_level_parse(cfg->log_level), "pier-supervisor");

    int64_t delay = RESTART_DELAY_MIN_MS;
    bool restart = false;
    for (;;) {
        int64_t started = now_ms();
        pid_t master = fork();
        if (master == 0) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            log_setup((enum log_level)log_level_parse(cfg->log_level), "pier-master");
            return restart;
        }
        if (!restart)
            close(listen_fd); /* the master has it; a restart opens the socket anew */
        restart = true;
        if (master < 0) {
            log_error("cannot start a master: fork: %s", strerror(errno));
        } else {
            log_info("supervising master %d", (int)master);
            bool stopping = false;
            int status = 0;
            for (;;) {
                int sig = wait_signal(&set, -1);
                if (sig == SIGCHLD) {
                    pid_t pid = waitpid(master, &status, WNOHANG);
                    if (pid == master)
                        break;
                    continue;
                }
                if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
                    stopping = true;
                kill(master, sig);
            }
            char what[96];
            describe(status, what, sizeof what);
            if (stopping) {
                log_info("master %d %s; supervisor stopped", (int)master, what);
                finish(cfg, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                log_info("master %d stopped; supervisor stops too", (int)master);
                finish(cfg, 0);
            }
            if (now_ms() - started >= HEALTHY_RUN_MS)
                delay = RESTART_DELAY_MIN_MS;
            log_error("master %d %s; starting a new one in %lld ms", (int)master, what,
                      (long long)delay);
        }
        /* The backoff: a stop request ends it and the supervisor. */
        int64_t until = now_ms() + delay;
        for (int64_t left = delay; left > 0; left = until - now_ms()) {
            int sig = wait_signal(&set, left);
            if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
                log_info("stopped while waiting to restart the master");
                finish(cfg, 0);
            }
        }
        delay = delay * 2 > RESTART_DELAY_MAX_MS ? RESTART_DELAY_MAX_MS : delay * 2;
    }
}
