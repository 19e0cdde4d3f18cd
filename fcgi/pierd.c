/* pierd: the Pier FastCGI pool. Reads the configuration, applies database
 * migrations (or, with auto_migrate off, checks that they were applied),
 * prepares the blob root, opens the socket and runs the master. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "db/db.h"
#include "db/migrate.h"
#include "auth/bootstrap.h"
#include "lib/secretbox.h"
#include "lib/ctx.h"
#include "lib/config.h"
#include "lib/log.h"
#include "server/master.h"
#include "server/supervisor.h"
#include "store/blobstore.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pierd [-c FILE] [-d] [-s] [-t]\n"
            "  -c FILE  configuration file (default $PIER_CONFIG, else built-in defaults)\n"
            "  -d       detach from the terminal (daemon)\n"
            "  -s       supervise: start the master again when it dies abnormally\n"
            "           (for running without a service manager; under systemd use\n"
            "           Restart=on-failure instead)\n"
            "  -t       check the configuration and exit\n"
            "Every key can be overridden by PIER_<KEY> in the environment.\n");
}

static int redirect_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "pierd: cannot open log file %s: %s\n", path, strerror(errno));
        return -1;
    }
    dup2(fd, STDERR_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    return 0;
}

static void daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid > 0)
        _exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
}

/* Read the configuration (the file, then PIER_* overrides), point stderr at
 * log_file and set up logging. Returns the exit status to fail with, or 0. */
static int load(struct config *cfg, const char *config_path)
{
    struct perr e;
    config_defaults(cfg);
    if (config_load(cfg, config_path, &e) != PIER_OK) {
        fprintf(stderr, "pierd: %s\n", e.msg);
        return 2;
    }
    if (cfg->log_file[0] && redirect_log(cfg->log_file) < 0)
        return 1;
    log_setup((enum log_level)log_level_parse(cfg->log_level), "pier-master");
    return 0;
}

/* Everything before the pool runs: blob root, migrations, server key, first
 * administrator, socket. Returns the listening socket, or -1 (logged). */
static int prepare(const struct config *cfg, const char *config_path)
{
    struct perr e;
    log_info("pierd %s starting", PACKAGE_VERSION);
    if (!cfg->public_url[0] && !cfg->registry_host[0])
        log_warn("neither public_url nor registry_host is set: the login challenge and "
                 "proxyEndpoint follow each client's Host header; set public_url in production");

    struct blobstore bs;
    if (blobstore_init(&bs, cfg->blob_root, &e) != PIER_OK) {
        log_error("%s", e.msg);
        return -1;
    }
    struct db *db = db_open(cfg->database, &e);
    if (!db) {
        log_error("cannot start: %s", e.msg);
        return -1;
    }
    if (cfg->auto_migrate) {
        int applied = 0;
        if (migrate_run(db, &applied, &e) != PIER_OK) {
            log_error("cannot start: %s", e.msg);
            db_close(db);
            return -1;
        }
        if (applied)
            log_info("database schema upgraded (%d migrations)", applied);
    } else {
        /* Packaged installations upgrade the schema as a step of their own:
         * a node started on an older schema says which step. */
        int pending = 0;
        if (migrate_check(db, &pending, &e) != PIER_OK) {
            log_error("cannot start: %s", e.msg);
            db_close(db);
            return -1;
        }
        if (pending) {
            log_error("cannot start: the database schema lacks %d migration%s this pierd needs "
                      "(up to version %d) and auto_migrate is off: run \"pierctl%s%s migrate\" "
                      "first",
                      pending, pending == 1 ? "" : "s", migrate_newest(), config_path ? " -c " : "",
                      config_path ? config_path : "");
            db_close(db);
            return -1;
        }
    }
    struct secretbox sb;
    memset(&sb, 0, sizeof sb);
    if (!cfg->server_key_file[0] || secretbox_load(&sb, cfg->server_key_file, &e) != PIER_OK) {
        log_error("cannot start: %s", cfg->server_key_file[0] ? e.msg
                                                             : "server_key_file is not set");
        db_close(db);
        return -1;
    }
    struct arena *a = arena_new();
    struct ctx boot = {.cfg = cfg, .db = db, .a = a, .sb = &sb};
    bool created;
    if (bootstrap_admin(&boot, &created, &e) != PIER_OK) {
        log_error("cannot create the first administrator: %s", e.msg);
        arena_free(a);
        secretbox_wipe(&sb);
        db_close(db);
        return -1;
    }
    arena_free(a);
    secretbox_wipe(&sb);
    db_close(db);
    return master_listen(cfg);
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("PIER_CONFIG");
    bool detach = false, check_only = false, supervise = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:dsth")) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'd': detach = true; break;
        case 's': supervise = true; break;
        case 't': check_only = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    struct config cfg;
    if (check_only) {
        struct perr e;
        config_defaults(&cfg);
        if (config_load(&cfg, config_path, &e) != PIER_OK) {
            fprintf(stderr, "pierd: %s\n", e.msg);
            return 2;
        }
        printf("configuration OK\n");
        return 0;
    }
    int rc = load(&cfg, config_path);
    if (rc != 0)
        return rc;
    /* The first start happens in the foreground, so that its failure is this
     * command's exit status; only then do we detach and supervise. */
    int fd = prepare(&cfg, config_path);
    if (fd < 0)
        return 1;
    if (detach)
        daemonize();
    if (supervise && supervisor_run(&cfg, fd)) {
        /* A restart after the previous master died. */
        rc = load(&cfg, config_path);
        if (rc != 0)
            return rc;
        fd = prepare(&cfg, config_path);
        if (fd < 0)
            return 1;
    }
    return master_run(&cfg, config_path, fd);
}
