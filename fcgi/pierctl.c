/* pierctl: the operator's command — migrations, status, cleanup. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include "config.h"
#include "db/db.h"
#include "db/migrate.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/blobstore.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pierctl [-c FILE] COMMAND\n"
            "commands:\n"
            "  migrate         apply database migrations (safe while nodes run)\n"
            "  status          schema version, object counts, blob root usage, pool state\n"
            "  cleanup         remove upload sessions idle longer than upload_ttl and\n"
            "                  orphaned temporary files of the same age\n"
            "  check-config    validate the configuration and print it\n"
            "  version         print the version\n");
}

static struct db *connect_or_die(const struct config *cfg)
{
    struct perr e;
    struct db *db = db_open(cfg->database, &e);
    if (!db) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        exit(1);
    }
    return db;
}

static int cmd_migrate(const struct config *cfg)
{
    struct db *db = connect_or_die(cfg);
    struct perr e;
    int applied = 0;
    pier_err rc = migrate_run(db, &applied, &e);
    if (rc)
        fprintf(stderr, "pierctl: %s\n", e.msg);
    else
        printf("schema at version %d (%d migration%s applied)\n", migrate_version(db, &e),
               applied, applied == 1 ? "" : "s");
    db_close(db);
    return rc ? 1 : 0;
}

static const struct db_stmt st_counts = {
    "ctl_counts",
    "SELECT (SELECT count(*) FROM repositories), (SELECT count(*) FROM blobs),"
    " (SELECT coalesce(sum(size), 0) FROM blobs), (SELECT count(*) FROM manifests),"
    " (SELECT count(*) FROM tags), (SELECT count(*) FROM uploads)", 0};

static int cmd_status(const struct config *cfg)
{
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct arena *a = arena_new();
    int version = migrate_version(db, &e);
    int newest = pier_migrations_count ? pier_migrations[pier_migrations_count - 1].version : 0;
    printf("version          %s\n", PACKAGE_VERSION);
    printf("schema           %d (this build: %d)\n", version, newest);
    PGresult *res = version >= 1 ? db_exec(db, a, &st_counts, &e) : NULL;
    if (res) {
        printf("repositories     %lld\n", db_int(res, 0, 0));
        printf("blobs            %lld (%lld bytes)\n", db_int(res, 0, 1), db_int(res, 0, 2));
        printf("manifests        %lld\n", db_int(res, 0, 3));
        printf("tags             %lld\n", db_int(res, 0, 4));
        printf("uploads          %lld in progress\n", db_int(res, 0, 5));
    }
    struct statvfs vfs;
    if (statvfs(cfg->blob_root, &vfs) == 0)
        printf("blob root        %s (%llu MiB free)\n", cfg->blob_root,
               (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20);
    else
        printf("blob root        %s (unreachable: %s)\n", cfg->blob_root, strerror(errno));
    int pid = 0;
    FILE *f = cfg->pid_file[0] ? fopen(cfg->pid_file, "r") : NULL;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid > 0 && kill(pid, 0) == 0)
        printf("pool             running (master pid %d, %d workers configured)\n", pid,
               cfg->workers);
    else
        printf("pool             not running on this node\n");
    arena_free(a);
    db_close(db);
    return res || version < 1 ? 0 : 1;
}

static const struct db_stmt st_stale_uploads = {
    "ctl_stale_uploads",
    "DELETE FROM uploads WHERE updated_at < now() - make_interval(secs => $1::int)"
    " RETURNING id::text", 1};
static const struct db_stmt st_upload_exists = {
    "ctl_upload_exists", "SELECT 1 FROM uploads WHERE id = $1::uuid", 1};

static int cmd_cleanup(const struct config *cfg)
{
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct arena *a = arena_new();
    struct blobstore bs;
    if (blobstore_init(&bs, cfg->blob_root, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 1;
    }
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", cfg->upload_ttl);
    PGresult *res = db_exec(db, a, &st_stale_uploads, &e, ttl);
    if (!res) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 1;
    }
    int sessions = PQntuples(res), files = 0;
    for (int i = 0; i < sessions; i++) {
        char path[PATH_MAX];
        blobstore_upload_path(&bs, PQgetvalue(res, i, 0), path);
        if (unlink(path) == 0)
            files++;
    }
    /* Temporary files without a session (monolithic uploads cut off by a
     * crash) are removed once they are older than the same TTL. */
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/tmp/uploads", cfg->blob_root);
    DIR *d = opendir(dir);
    time_t now = time(NULL);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[PATH_MAX + 16 + 260];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            struct stat st;
            if (stat(path, &st) < 0 || now - st.st_mtime < cfg->upload_ttl)
                continue;
            if (uuid_valid(de->d_name)) {
                PGresult *x = db_exec(db, a, &st_upload_exists, &e, de->d_name);
                if (!x || PQntuples(x) > 0)
                    continue;
            }
            if (unlink(path) == 0)
                files++;
        }
        closedir(d);
    }
    printf("removed %d expired upload session%s and %d temporary file%s\n", sessions,
           sessions == 1 ? "" : "s", files, files == 1 ? "" : "s");
    arena_free(a);
    db_close(db);
    return 0;
}

static int cmd_check_config(const struct config *cfg)
{
    printf("database         %s\n", cfg->database);
    printf("blob_root        %s\n", cfg->blob_root);
    printf("socket           %s (mode %03o)\n", cfg->socket, cfg->socket_mode);
    printf("workers          %d\n", cfg->workers);
    printf("max_manifest_size %lld\n", cfg->max_manifest_size);
    printf("max_blob_size    %lld\n", cfg->max_blob_size);
    printf("max_chunk_size   %lld\n", cfg->max_chunk_size);
    printf("max_page         %d\n", cfg->max_page);
    printf("upload_ttl       %d\n", cfg->upload_ttl);
    printf("allow_delete     %s\n", cfg->allow_delete ? "true" : "false");
    printf("log_file         %s\n", cfg->log_file[0] ? cfg->log_file : "(stderr)");
    printf("configuration OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("PIER_CONFIG");
    int opt;
    while ((opt = getopt(argc, argv, "+c:h")) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "version") == 0) {
        printf("pierctl %s\n", PACKAGE_VERSION);
        return 0;
    }
    struct config cfg;
    struct perr e;
    config_defaults(&cfg);
    if (config_load(&cfg, config_path, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 2;
    }
    log_setup(LOG_WARN, "pierctl");
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(&cfg);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&cfg);
    if (strcmp(cmd, "cleanup") == 0)
        return cmd_cleanup(&cfg);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(&cfg);
    fprintf(stderr, "pierctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
