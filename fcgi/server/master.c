/* master: prefork supervisor driven by sigtimedwait(); no work happens in
 * signal handlers. */
#include "server/master.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lib/arena.h"
#include "lib/log.h"
#include "lib/util.h"
#include "db/db.h"
#include "lib/contract.h"
#include "server/maintenance.h"
#include "lib/metrics.h"
#include "server/pool.h"
#include "server/worker.h"
#include "store/blobstore.h"
#include <sys/prctl.h>

#define MAX_WORKERS 1024
/* A worker that dies sooner than this after starting is crashing: back off. */
#define CRASH_WINDOW_MS 1000
#define RESPAWN_BACKOFF_MS 1000

struct slot {
    pid_t pid;
    int generation;
    int64_t started;
};

static struct slot slots[2 * MAX_WORKERS];
static int generation;
static int64_t respawn_after;
static pid_t maint_pid;

/* Housekeeping runs in a short-lived child so the master never blocks on the
 * database or the blob root. */
static void spawn_maintenance(const struct config *cfg, int listen_fd)
{
    if (maint_pid > 0)
        return;
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            maint_pid = pid;
        return;
    }
    close(listen_fd);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    log_setup((enum log_level)log_level_parse(cfg->log_level), "pier-maint");
    struct perr e;
    struct blobstore bs;
    /* Sweeps may take longer than a request's statement, but never forever. */
    struct db *db = db_new(cfg->database);
    db_set_timeout(db, cfg->db_timeout_ms > 0 ? 12 * cfg->db_timeout_ms : 0);
    struct maint_report m;
    if (db_ensure(db, &e) == PIER_OK && blobstore_init(&bs, cfg->blob_root, &e) == PIER_OK &&
        maintenance_run(cfg, db, &bs, false, &m, &e) == PIER_OK) {
        db_close(db);
        PIER_LEAK_CHECK();
        _exit(0);
    }
    log_warn("maintenance failed: %s", e.msg);
    db_close(db);
    PIER_LEAK_CHECK();
    _exit(1);
}

/* The group named by socket_group: a group name, or a number. */
static bool socket_gid(const char *name, gid_t *gid)
{
    if (strspn(name, "0123456789") == strlen(name)) {
        errno = 0;
        char *end;
        unsigned long v = strtoul(name, &end, 10);
        if (errno || *end || v >= (unsigned long)(gid_t)-1)
            return false;
        *gid = (gid_t)v;
        return true;
    }
    struct group *g = getgrnam(name);
    if (!g)
        return false;
    *gid = g->gr_gid;
    return true;
}

int master_listen(const struct config *cfg)
{
    gid_t gid = (gid_t)-1;
    if (cfg->socket_group[0] && !socket_gid(cfg->socket_group, &gid)) {
        log_error("socket_group: there is no group '%s' (give the group Apache runs as, e.g. "
                  "www-data)", cfg->socket_group);
        return -1;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(cfg->socket) >= sizeof sa.sun_path) {
        log_error("socket path %s is longer than %zu characters", cfg->socket,
                  sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, cfg->socket);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(probe);
        log_error("another process is already listening on %s", cfg->socket);
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(cfg->socket);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return -1;
    }
    /* Nobody may connect before the socket has its group and mode: bind it
     * without any permission, then chown and chmod. */
    mode_t old = umask(0777);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0) {
        log_error("cannot listen on %s: %s", cfg->socket, strerror(errno));
        close(fd);
        return -1;
    }
    if (gid != (gid_t)-1 && chown(cfg->socket, (uid_t)-1, gid) < 0) {
        log_error("cannot give %s to group %s: %s", cfg->socket, cfg->socket_group, strerror(errno));
        close(fd);
        unlink(cfg->socket);
        return -1;
    }
    if (chmod(cfg->socket, (mode_t)cfg->socket_mode) < 0 || listen(fd, 1024) < 0) {
        log_error("cannot listen on %s: %s", cfg->socket, strerror(errno));
        close(fd);
        unlink(cfg->socket);
        return -1;
    }
    /* Workers wait for connections in epoll and accept without blocking
     * (server/worker.c says why). */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        log_error("cannot make %s non-blocking: %s", cfg->socket, strerror(errno));
        close(fd);
        unlink(cfg->socket);
        return -1;
    }
    return fd;
}

static int live_workers(int gen)
{
    int n = 0;
    for (int i = 0; i < 2 * MAX_WORKERS; i++)
        if (slots[i].pid > 0 && (gen < 0 || slots[i].generation == gen))
            n++;
    return n;
}

static void spawn(const struct config *cfg, int listen_fd)
{
    int i;
    for (i = 0; i < 2 * MAX_WORKERS && slots[i].pid > 0; i++)
        ;
    if (i == 2 * MAX_WORKERS)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        respawn_after = now_ms() + RESPAWN_BACKOFF_MS;
        return;
    }
    if (pid == 0) {
        log_setup((enum log_level)log_level_parse(cfg->log_level), "pier-worker");
        pool_worker_attach(i);
        int rc = worker_run(cfg, listen_fd);
        PIER_LEAK_CHECK();
        _exit(rc);
    }
    slots[i].pid = pid;
    slots[i].generation = generation;
    slots[i].started = now_ms();
}

static void signal_generation(int gen_below, int sig)
{
    for (int i = 0; i < 2 * MAX_WORKERS; i++)
        if (slots[i].pid > 0 && slots[i].generation < gen_below)
            kill(slots[i].pid, sig);
}

static void reap(bool stopping)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        if (pid == maint_pid) {
            maint_pid = 0;
            continue;
        }
        for (int i = 0; i < 2 * MAX_WORKERS; i++) {
            if (slots[i].pid != pid)
                continue;
            bool current = slots[i].generation == generation;
            if (WIFSIGNALED(status))
                log_warn("worker %d killed by signal %d", (int)pid, WTERMSIG(status));
            else if (WEXITSTATUS(status) != 0)
                log_warn("worker %d exited with status %d", (int)pid, WEXITSTATUS(status));
            if (current && !stopping && now_ms() - slots[i].started < CRASH_WINDOW_MS &&
                (WIFSIGNALED(status) || WEXITSTATUS(status) != 0))
                respawn_after = now_ms() + RESPAWN_BACKOFF_MS;
            slots[i].pid = 0;
            pool_slot_gone(i); /* a body slot a dead worker held is free again */
            break;
        }
    }
}

static void write_pid(const char *path)
{
    if (!path[0])
        return;
    FILE *f = fopen(path, "w");
    if (!f) {
        log_warn("cannot write pid file %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

int master_run(struct config *cfg, const char *config_path, int listen_fd)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    write_pid(cfg->pid_file);
    pool_init();
    metrics_init(); /* shared by the workers forked below, and by their replacements */
    log_info("listening on %s with %d workers (at most %d receiving request bodies at once)",
             cfg->socket, cfg->workers, pool_body_limit(cfg));

    bool stopping = false;
    int64_t stop_deadline = 0, last_term = 0;
    int64_t next_maint = now_ms() + 10000;
    for (;;) {
        reap(stopping);
        int64_t now = now_ms();
        if (stopping) {
            if (live_workers(-1) == 0)
                break;
            if (now >= stop_deadline) {
                log_warn("shutdown timeout: killing %d workers", live_workers(-1));
                signal_generation(generation + 1, SIGKILL);
            } else if (now - last_term >= 200) {
                /* Repeat: a worker between requests may have missed the first. */
                signal_generation(generation + 1, SIGTERM);
                last_term = now;
            }
        } else {
            if (now >= respawn_after)
                while (live_workers(generation) < cfg->workers)
                    spawn(cfg, listen_fd);
            if (cfg->maintenance_interval > 0 && now >= next_maint) {
                spawn_maintenance(cfg, listen_fd);
                next_maint = now + (int64_t)cfg->maintenance_interval * 1000;
            }
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig < 0)
            continue;
        switch (sig) {
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            if (!stopping) {
                log_info("stopping: finishing requests in flight");
                stopping = true;
                stop_deadline = now_ms() + (int64_t)cfg->shutdown_timeout * 1000;
                signal_generation(generation + 1, SIGTERM);
                if (maint_pid > 0)
                    kill(maint_pid, SIGTERM);
                last_term = now_ms();
            }
            break;
        case SIGHUP: {
            if (stopping)
                break;
            struct config fresh;
            struct perr e;
            config_defaults(&fresh);
            if (config_load(&fresh, config_path, &e) != PIER_OK) {
                log_error("reload refused, keeping the running configuration: %s", e.msg);
                break;
            }
            if (strcmp(fresh.socket, cfg->socket) != 0 || fresh.socket_mode != cfg->socket_mode ||
                strcmp(fresh.socket_group, cfg->socket_group) != 0)
                log_warn("socket, socket_mode and socket_group changes need a restart; keeping %s",
                         cfg->socket);
            snprintf(fresh.socket, sizeof fresh.socket, "%s", cfg->socket);
            fresh.socket_mode = cfg->socket_mode;
            snprintf(fresh.socket_group, sizeof fresh.socket_group, "%s", cfg->socket_group);
            if (fresh.workers > MAX_WORKERS)
                fresh.workers = MAX_WORKERS;
            *cfg = fresh;
            log_setup((enum log_level)log_level_parse(cfg->log_level), "pier-master");
            generation++;
            log_info("reloading: starting %d new workers, retiring the old ones", cfg->workers);
            respawn_after = 0;
            while (live_workers(generation) < cfg->workers)
                spawn(cfg, listen_fd);
            signal_generation(generation, SIGTERM);
            break;
        }
        default:
            break; /* SIGCHLD: reaped at the top of the loop */
        }
    }
    close(listen_fd);
    unlink(cfg->socket);
    if (cfg->pid_file[0])
        unlink(cfg->pid_file);
    log_info("stopped");
    return 0;
}
