/* pierctl: the operator's command — migrations, status, cleanup, users,
 * policies, cache rules, lifecycle runs. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "config.h"
#include "auth/authz.h"
#include "auth/bootstrap.h"
#include "auth/principals.h"
#include "auth/policy.h"
#include "auth/token.h"
#include "cache/budget.h"
#include "cache/health.h"
#include "cache/rulechange.h"
#include "store/audit.h"
#include "store/rules.h"
#include "db/db.h"
#include "lib/secretbox.h"
#include "lib/ctx.h"
#include "server/maintenance.h"
#include "db/migrate.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/blobstore.h"
#include "store/fsck.h"
#include "store/gc.h"
#include "store/lifecycle_run.h"
#include "store/repo.h"
#include "store/uploads.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pierctl [-c FILE] COMMAND\n"
            "commands:\n"
            "  migrate         apply database migrations (safe while nodes run)\n"
            "  status          schema version, object counts, blob root usage, pool state\n"
            "  cleanup         remove upload sessions idle longer than upload_ttl, their\n"
            "                  files, abandoned download files and expired cache rows\n"
            "                  (pierd also does this every maintenance_interval seconds)\n"
            "  check-config    validate the configuration and print it\n"
            "  gc [--dry-run] [--grace SECONDS] [--duty PERCENT]   remove blobs no manifest\n"
            "                  references that nothing linked within the grace (default\n"
            "                  gc_grace), working PERCENT of the time (default gc_duty; 100:\n"
            "                  no pauses); pierd sweeps every gc_interval seconds\n"
            "  gc status       reclaimable bytes and the last sweeps\n"
            "  fsck [--verify-digests] [--repair [--force]] [--grace SECONDS] [--json]\n"
            "                  check the blob root against the database: rows without\n"
            "                  files, files without rows, sizes (and digests); --repair\n"
            "                  does what is safe (docs/operations.md). Exit status: 0 clean,\n"
            "                  1 all repaired, 4 problems left, 8 the check failed\n"
            "  user create NAME [--role] [--admin]   a principal and its first access key\n"
            "                  (printed once); --role makes it a role (arn:...:role/NAME)\n"
            "                  instead of a user; --admin attaches a policy allowing ecr:*\n"
            "  user list | user delete NAME   (users and roles alike)\n"
            "  key create USER | key list USER | key delete KEYID\n"
            "  login-password USER [--hours N]   a password for `login -u AWS` (default 12 h)\n"
            "  policy identity put USER NAME FILE|-  | policy identity delete USER NAME\n"
            "  policy identity list USER\n"
            "  policy registry put FILE|- | policy registry get | policy registry delete\n"
            "  policy repository put REPO FILE|- | get REPO | delete REPO\n"
            "  rule list [--json]\n"
            "  rule show PREFIX\n"
            "  rule create PREFIX URL [options]   add a pull-through cache rule\n"
            "  rule update PREFIX [options]       change a rule (unset options keep their value)\n"
            "  rule delete PREFIX\n"
            "      options: --registry KIND  --upstream-prefix P  --refresh SECONDS\n"
            "               --negative SECONDS  --ca-bundle FILE|none  --credential-arn ARN\n"
            "               --max-bytes SIZE|none (the rule's cache budget, e.g. 50G)\n"
            "               --username USER (the access token is read from stdin)\n"
            "               --url URL (update)  --no-credentials (update: remove them)\n"
            "               --mirrors REG[,REG...] (registries the rule mirrors, e.g.\n"
            "               docker.io; '' clears)  --default-mirror | --no-default-mirror\n"
            "               (answer unprefixed pulls without ns; one rule registry-wide)\n"
            "  budget status   per rule: bytes cached, budget, bytes reclaimed, oldest last pull\n"
            "  budget run      expire the least recently pulled cached images until every\n"
            "                  budget fits (pierd also does this every maintenance_interval)\n"
            "  lifecycle run [REPO]     run the lifecycle policy of REPO (default: of every\n"
            "                           repository that has one) now; prints each expiry\n"
            "  lifecycle preview REPO [FILE|-]   what the stored policy (or the one in FILE)\n"
            "                           would expire now; changes nothing\n"
            "  audit [--principal P] [--repository R] [--action A] [--since T] [--limit N]\n"
            "                  the audit trail, newest first, one JSON object a line; P is\n"
            "                  an ARN or a user or role name, A an action or a prefix\n"
            "                  ending in * (ecr:*), T unix seconds, an age (24h, 7d) or\n"
            "                  YYYY-MM-DD[THH:MM:SSZ]; N up to 1000 (default 100)\n"
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

static int cmd_status(const struct config *cfg)
{
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct arena *a = arena_new();
    int version = migrate_version(db, &e);
    int newest = pier_migrations_count ? pier_migrations[pier_migrations_count - 1].version : 0;
    printf("version          %s\n", PACKAGE_VERSION);
    printf("schema           %d (this build: %d)\n", version, newest);
    struct ctx c = {.cfg = cfg, .db = db, .a = a};
    struct repo_counts n;
    long long uploads;
    bool counted = version >= 1 && repo_counts(&c, &n, &e) == PIER_OK &&
                   upload_count(&c, &uploads, &e) == PIER_OK;
    if (counted) {
        printf("repositories     %lld\n", n.repositories);
        printf("blobs            %lld (%lld bytes)\n", n.blobs, n.blob_bytes);
        printf("manifests        %lld\n", n.manifests);
        printf("tags             %lld\n", n.tags);
        printf("uploads          %lld in progress\n", uploads);
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
    return counted || version < 1 ? 0 : 1;
}

static int cmd_cleanup(const struct config *cfg)
{
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct blobstore bs;
    if (blobstore_init(&bs, cfg->blob_root, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 1;
    }
    struct maint_report m;
    pier_err rc = maintenance_run(cfg, db, &bs, true, &m, &e);
    db_close(db);
    if (rc) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 1;
    }
    if (!m.ran) {
        printf("another node is running the cleanup right now; nothing done\n");
        return 0;
    }
    printf("removed %d expired upload session%s, %d temporary upload file%s, "
           "%d temporary download file%s, %d expired row%s and %d blob file%s without a row\n",
           m.sessions, m.sessions == 1 ? "" : "s", m.upload_files, m.upload_files == 1 ? "" : "s",
           m.fetch_files, m.fetch_files == 1 ? "" : "s", m.rows, m.rows == 1 ? "" : "s",
           m.orphan_blobs, m.orphan_blobs == 1 ? "" : "s");
    printf("lifecycle policies of %lld repositor%s ran: %lld image%s expired\n", m.lifecycle_repos,
           m.lifecycle_repos == 1 ? "y" : "ies", m.lifecycle_expired,
           m.lifecycle_expired == 1 ? "" : "s");
    if (m.gc_ran)
        printf("garbage collection (due after gc_interval) removed %lld blobs (%lld bytes)\n",
               m.gc_blobs, m.gc_bytes);
    return 0;
}

/* pierctl gc [--dry-run] [--grace SECONDS] [--duty PERCENT] | gc status */
static int cmd_gc(const struct config *cfg, int argc, char **argv)
{
    bool dry_run = false, status = false;
    int grace = -1, duty = 0;
    for (int i = 0; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else if (strcmp(argv[i], "status") == 0 && i == 0) {
            status = true;
        } else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 0 || v > 30L * 86400) {
                fprintf(stderr, "pierctl: --grace takes seconds from 0 to 2592000\n");
                return 2;
            }
            grace = (int)v;
        } else if (strcmp(argv[i], "--duty") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 1 || v > 100) {
                fprintf(stderr, "pierctl: --duty takes a percentage from 1 to 100\n");
                return 2;
            }
            duty = (int)v;
        } else {
            fprintf(stderr, "usage: pierctl gc [--dry-run] [--grace SECONDS] [--duty PERCENT] | "
                            "pierctl gc status\n");
            return 2;
        }
    }
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct blobstore bs;
    if (blobstore_init(&bs, cfg->blob_root, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        db_close(db);
        return 1;
    }
    struct arena *a = arena_new();
    struct ctx c = {.cfg = cfg, .db = db, .bs = &bs, .a = a};
    int ret = 0;
    if (status) {
        long long blobs, bytes;
        struct gc_run *runs;
        int n;
        if (repo_gc_reclaimable(&c, cfg->gc_grace, &blobs, &bytes, &e) != PIER_OK ||
            gc_history(&c, 10, &runs, &n, &e) != PIER_OK) {
            fprintf(stderr, "pierctl: %s\n", e.msg);
            ret = 1;
        } else {
            printf("reclaimable: %lld blobs (%lld bytes) unreferenced for more than %d s\n",
                   blobs, bytes, cfg->gc_grace);
            for (int i = 0; i < n; i++) {
                char when[32];
                time_t t = (time_t)runs[i].started_at;
                struct tm tm;
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
                printf("%s %s%s grace %d s: %lld blobs (%lld bytes), %lld links, %lld busy, "
                       "%lld finished, %lld ms%s%s\n", when, runs[i].node,
                       runs[i].dry_run ? " (dry run)" : "", runs[i].grace, runs[i].blobs,
                       runs[i].bytes, runs[i].links, runs[i].busy, runs[i].finished,
                       runs[i].seconds_ms, runs[i].error ? ": " : "",
                       runs[i].error ? runs[i].error : "");
            }
        }
    } else {
        struct gc_report g;
        pier_err rc = gc_sweep(&c, grace, duty, dry_run, &g, &e);
        if (rc == PIER_E_CONFLICT) {
            fprintf(stderr, "gc: another sweep is running\n");
            ret = 3;
        } else if (rc) {
            fprintf(stderr, "pierctl: %s\n", e.msg);
            ret = 1;
        } else if (dry_run) {
            printf("gc (dry run): would remove %lld blobs (%lld bytes) and %lld links; "
                   "%lld busy digests skipped; %lld ms (%lld ms paused)\n", g.blobs, g.bytes,
                   g.links, g.busy, g.seconds_ms, g.paused_ms);
        } else {
            printf("gc: removed %lld blobs (%lld bytes) and %lld links; %lld busy digests "
                   "skipped; %lld interrupted deletions finished; %lld ms (%lld ms paused)\n",
                   g.blobs, g.bytes, g.links, g.busy, g.finished, g.seconds_ms, g.paused_ms);
        }
    }
    arena_free(a);
    db_close(db);
    return ret;
}

static int cmd_audit(const struct config *cfg, int argc, char **argv)
{
    struct audit_filter f = {.limit = 100};
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (!val) {
            fprintf(stderr, "pierctl: %s needs a value\n", opt);
            return 2;
        }
        i++;
        if (strcmp(opt, "--principal") == 0) {
            f.principal = val;
        } else if (strcmp(opt, "--repository") == 0) {
            f.repository = val;
        } else if (strcmp(opt, "--action") == 0) {
            f.action = val;
        } else if (strcmp(opt, "--since") == 0) {
            if (!audit_parse_since(val, (long long)time(NULL), &f.since)) {
                fprintf(stderr, "pierctl: --since takes unix seconds, an age such as 24h or 7d, "
                                "or a date YYYY-MM-DD[THH:MM:SSZ]\n");
                return 2;
            }
        } else if (strcmp(opt, "--limit") == 0) {
            if (!grammar_uint(val, AUDIT_QUERY_MAX, &n) || n < 1) {
                fprintf(stderr, "pierctl: --limit takes a number from 1 to %d\n", AUDIT_QUERY_MAX);
                return 2;
            }
            f.limit = (int)n;
        } else {
            fprintf(stderr, "usage: pierctl audit [--principal P] [--repository R] [--action A] "
                            "[--since T] [--limit N]\n");
            return 2;
        }
    }
    struct db *db = connect_or_die(cfg);
    struct arena *a = arena_new();
    struct ctx c = {.cfg = cfg, .db = db, .a = a};
    struct perr e;
    json_t *events;
    int ret = 0;
    if (audit_query(&c, &f, &events, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        ret = 1;
    } else {
        size_t i;
        json_t *ev;
        json_array_foreach(events, i, ev)
        {
            json_object_del(ev, "cursor"); /* the lines look like the audit_log file's */
            char *line = json_dumps(ev, JSON_COMPACT);
            if (line)
                printf("%s\n", line);
            free(line);
        }
        json_decref(events);
    }
    arena_free(a);
    db_close(db);
    return ret;
}

/* pierctl fsck [--verify-digests] [--repair [--force]] [--grace SECONDS] [--json] */
static int cmd_fsck(const struct config *cfg, int argc, char **argv)
{
    struct fsck_options o = {.grace = cfg->gc_grace};
    bool json = false;
    for (int i = 0; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--verify-digests") == 0) {
            o.verify_digests = true;
        } else if (strcmp(argv[i], "--repair") == 0) {
            o.repair = true;
        } else if (strcmp(argv[i], "--force") == 0) {
            o.force = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 0 || v > 30L * 86400) {
                fprintf(stderr, "pierctl: --grace takes seconds from 0 to 2592000\n");
                return 2;
            }
            o.grace = (int)v;
        } else {
            fprintf(stderr, "usage: pierctl fsck [--verify-digests] [--repair [--force]] "
                            "[--grace SECONDS] [--json]\n");
            return 2;
        }
    }
    struct perr e;
    struct db *db = db_open(cfg->database, &e);
    if (!db) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 8;
    }
    /* Not blobstore_init(): it would create blobs/ under a root that is not mounted. */
    struct blobstore bs;
    if (strlen(cfg->blob_root) >= sizeof bs.root) {
        fprintf(stderr, "pierctl: blob_root path is too long\n");
        db_close(db);
        return 8;
    }
    memcpy(bs.root, cfg->blob_root, strlen(cfg->blob_root) + 1);
    struct arena *a = arena_new();
    struct ctx c = {.cfg = cfg, .db = db, .bs = &bs, .a = a};
    struct fsck_report r;
    int ret;
    if (fsck_run(&c, &o, &r, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: fsck: %s\n", e.msg);
        ret = 8;
    } else {
        if (json) {
            json_t *j = fsck_json(&r);
            json_dumpf(j, stdout, JSON_INDENT(2));
            printf("\n");
            json_decref(j);
        } else {
            printf("%s\n", fsck_summary(a, &r));
            for (size_t i = 0; i < r.nfindings; i++)
                printf("%s\n", fsck_line(a, &r.findings[i]));
        }
        ret = fsck_exit_status(&r);
    }
    arena_free(a);
    db_close(db);
    return ret;
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

/* ---- rules and their budgets ---- */

/* "1.5 GiB" (arena), for people; JSON output keeps exact numbers. */
static const char *human_bytes(struct arena *a, long long n)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    return u == 0 ? arena_printf(a, "%lld bytes", n) : arena_printf(a, "%.1f %s", v, units[u]);
}

static const char *utc_time(struct arena *a, long long t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return "-";
    return arena_strdup(a, buf);
}

static int cmd_budget(const struct config *cfg, int argc, char **argv)
{
    bool run = argc == 1 && strcmp(argv[0], "run") == 0;
    bool status = argc >= 1 && strcmp(argv[0], "status") == 0 &&
                  (argc == 1 || (argc == 2 && strcmp(argv[1], "--json") == 0));
    if (!run && !status) {
        usage(stderr);
        return 2;
    }
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct blobstore bs;
    if (blobstore_init(&bs, cfg->blob_root, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        db_close(db);
        return 1;
    }
    struct arena *a = arena_new();
    struct ctx c = {.cfg = cfg, .db = db, .bs = &bs, .a = a};
    pier_err rc;
    if (run) {
        /* Every expiry is logged at info: on standard error here. */
        log_setup(PIER_LOG_INFO, "pierctl");
        struct budget_report r;
        rc = budget_enforce(&c, &r, &e);
        if (!rc)
            printf("%d budget%s looked at: %lld image%s expired, %lld bytes removed from the blob "
                   "root, %lld image%s kept (being downloaded or listed by an index), %d budget%s "
                   "still exceeded\n",
                   r.budgets, r.budgets == 1 ? "" : "s", r.expired, r.expired == 1 ? "" : "s",
                   r.reclaimed, r.kept, r.kept == 1 ? "" : "s", r.over, r.over == 1 ? "" : "s");
    } else {
        struct rule_overview *o;
        int n;
        long long total = 0, oldest = 0;
        rc = rules_overview(&c, &o, &n, &e);
        if (!rc)
            rc = repo_cache_usage(&c, 0, &total, &oldest, &e);
        if (!rc && argc == 2) {
            json_t *list = json_array();
            for (int i = 0; i < n; i++) {
                json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "ecrRepositoryPrefix",
                                      o[i].prefix, "bytesCached", (json_int_t)o[i].bytes_cached,
                                      "bytesReclaimed", (json_int_t)o[i].budget_reclaimed,
                                      "imagesExpired", (json_int_t)o[i].budget_expired,
                                      "oldestLastPull", (json_int_t)o[i].oldest_last_pull,
                                      "lastExpiredAt", (json_int_t)o[i].budget_last_expired_at);
                if (o[i].max_bytes > 0)
                    json_object_set_new(j, "maxBytes", json_integer(o[i].max_bytes));
                json_array_append_new(list, j);
            }
            json_t *doc = json_pack("{s:o, s:I}", "rules", list, "bytesCached", (json_int_t)total);
            if (cfg->cache_max_bytes > 0)
                json_object_set_new(doc, "maxBytes", json_integer(cfg->cache_max_bytes));
            json_dumpf(doc, stdout, JSON_INDENT(2));
            printf("\n");
            json_decref(doc);
        } else if (!rc) {
            printf("%-30s %-12s %-12s %-12s %-8s %s\n", "PREFIX", "CACHED", "BUDGET", "RECLAIMED",
                   "EXPIRED", "OLDEST LAST PULL");
            for (int i = 0; i < n; i++)
                printf("%-30s %-12s %-12s %-12s %-8lld %s\n", o[i].prefix,
                       human_bytes(a, o[i].bytes_cached),
                       o[i].max_bytes > 0 ? human_bytes(a, o[i].max_bytes) : "none",
                       human_bytes(a, o[i].budget_reclaimed), o[i].budget_expired,
                       utc_time(a, o[i].oldest_last_pull));
            printf("all rules: %s cached (a layer several rules hold counted once), registry-wide "
                   "budget %s\n",
                   human_bytes(a, total),
                   cfg->cache_max_bytes > 0 ? human_bytes(a, cfg->cache_max_bytes) : "none");
        }
    }
    if (rc)
        fprintf(stderr, "pierctl: %s\n", e.msg);
    arena_free(a);
    db_close(db);
    return rc ? 1 : 0;
}

static char *read_file_text(const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = xmalloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static bool read_secret_stdin(char *out, size_t outsz)
{
    if (!fgets(out, (int)outsz, stdin))
        return false;
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return n > 0;
}

static int cmd_rule(const struct config *cfg, int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[0];
    struct db *db = connect_or_die(cfg);
    struct perr e;
    struct secretbox sb;
    memset(&sb, 0, sizeof sb);
    if (cfg->server_key_file[0] && secretbox_load(&sb, cfg->server_key_file, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        return 1;
    }
    struct arena *a = arena_new();
    struct ctx c = {.cfg = cfg, .db = db, .a = a, .sb = &sb};
    int status = 0;
    pier_err rc = PIER_OK;
    if (strcmp(sub, "list") == 0) {
        json_t *list = json_array();
        rc = rules_list(&c, list, &e);
        if (!rc && argc > 1 && strcmp(argv[1], "--json") == 0) {
            json_dumpf(list, stdout, JSON_INDENT(2));
            printf("\n");
        } else if (!rc) {
            /* BUDGET stays last: scripts read it from the end of the line. */
            printf("%-30s %-40s %-12s %-9s %-11s %-24s %s\n", "PREFIX", "UPSTREAM", "REGISTRY",
                   "REFRESH", "CREDENTIALS", "MIRRORS", "BUDGET");
            size_t i;
            json_t *r;
            json_array_foreach(list, i, r) {
                json_t *max = json_object_get(r, "maxBytes");
                char mirrors[1024] = "";
                size_t k;
                json_t *m;
                json_array_foreach(json_object_get(r, "mirrorRegistries"), k, m)
                {
                    size_t at = strlen(mirrors);
                    snprintf(mirrors + at, sizeof mirrors - at, "%s%s", k ? "," : "",
                             json_string_value(m));
                }
                if (json_is_true(json_object_get(r, "defaultMirror"))) {
                    size_t at = strlen(mirrors);
                    snprintf(mirrors + at, sizeof mirrors - at, "%s(default)", at ? " " : "");
                }
                printf("%-30s %-40s %-12s %-9lld %-11s %-24s %s\n",
                       json_string_value(json_object_get(r, "ecrRepositoryPrefix")),
                       json_string_value(json_object_get(r, "upstreamRegistryUrl")),
                       json_string_value(json_object_get(r, "upstreamRegistry")),
                       (long long)json_integer_value(json_object_get(r, "refreshIntervalSeconds")),
                       json_is_true(json_object_get(r, "hasCredentials")) ? "yes" : "no",
                       mirrors[0] ? mirrors : "-",
                       max ? human_bytes(a, (long long)json_integer_value(max)) : "none");
            }
        }
        json_decref(list);
    } else if (strcmp(sub, "show") == 0 && argc == 2) {
        struct cache_rule r;
        rc = rules_get(&c, argv[1], &r, &e);
        if (!rc) {
            json_t *j = rule_to_json(&r);
            /* The upstream's health now, as the console shows it. */
            struct upstream_health h;
            if (health_get(&c, r.id, &h, &e) == PIER_OK)
                json_object_set_new(j, "upstreamHealth", health_json(&h));
            json_dumpf(j, stdout, JSON_INDENT(2));
            printf("\n");
            json_decref(j);
        }
    } else if (strcmp(sub, "delete") == 0 && argc == 2) {
        rc = rules_delete(&c, argv[1], &e);
        if (!rc)
            printf("deleted rule %s\n", argv[1]);
    } else if ((strcmp(sub, "create") == 0 && argc >= 3) || (strcmp(sub, "update") == 0 && argc >= 2)) {
        bool create = sub[0] == 'c';
        struct cache_rule r;
        if (create) {
            rule_defaults(&r);
            snprintf(r.prefix, sizeof r.prefix, "%s", argv[1]);
            snprintf(r.upstream_url, sizeof r.upstream_url, "%s", argv[2]);
            r.upstream_registry[0] = '\0';
        } else if ((rc = rules_get(&c, argv[1], &r, &e)) != PIER_OK) {
            goto done;
        }
        if (strlen(argv[1]) >= sizeof r.prefix) {
            rc = perr_set(&e, PIER_E_NAME_INVALID, "ecrRepositoryPrefix is longer than 30 characters");
            goto done;
        }
        static const struct option opts[] = {{"registry", required_argument, 0, 'r'},
                                             {"upstream-prefix", required_argument, 0, 'p'},
                                             {"refresh", required_argument, 0, 'f'},
                                             {"negative", required_argument, 0, 'n'},
                                             {"ca-bundle", required_argument, 0, 'a'},
                                             {"credential-arn", required_argument, 0, 'c'},
                                             {"username", required_argument, 0, 'u'},
                                             {"url", required_argument, 0, 'l'},
                                             {"no-credentials", no_argument, 0, 'x'},
                                             {"max-bytes", required_argument, 0, 'm'},
                                             {"mirrors", required_argument, 0, 'M'},
                                             {"default-mirror", no_argument, 0, 'D'},
                                             {"no-default-mirror", no_argument, 0, 'N'},
                                             {0, 0, 0, 0}};
        const char *user = NULL;
        bool clear_creds = false;
        optind = create ? 3 : 2;
        int o;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
            long long v;
            switch (o) {
            case 'r': snprintf(r.upstream_registry, sizeof r.upstream_registry, "%s", optarg); break;
            case 'p': snprintf(r.upstream_prefix, sizeof r.upstream_prefix, "%s", optarg); break;
            case 'l': snprintf(r.upstream_url, sizeof r.upstream_url, "%s", optarg); break;
            case 'c': snprintf(r.credential_arn, sizeof r.credential_arn, "%s", optarg); break;
            case 'u': user = optarg; break;
            case 'x': clear_creds = true; break;
            case 'D':
                r.default_mirror = true;
                break;
            case 'N':
                r.default_mirror = false;
                break;
            case 'M':
                if ((rc = rule_set_mirrors(&r, optarg, &e)) != PIER_OK)
                    goto done;
                break;
            case 'm':
                if (strcmp(optarg, "none") == 0 || strcmp(optarg, "0") == 0) {
                    r.max_bytes = 0;
                } else if (!config_parse_size(optarg, &r.max_bytes) ||
                           rule_check_budget(r.max_bytes, &e) != PIER_OK) {
                    rc = perr_set(&e, PIER_E_BAD_REQUEST,
                                  "--max-bytes needs a size from 1MiB to 1EiB (e.g. 50G, 512MiB, "
                                  "1073741824) or none, got '%s'",
                                  optarg);
                    goto done;
                }
                break;
            case 'f':
            case 'n':
                if (!grammar_uint(optarg, 365LL * 86400, &v)) {
                    rc = perr_set(&e, PIER_E_BAD_REQUEST, "--%s needs a number of seconds",
                                  o == 'f' ? "refresh" : "negative");
                    goto done;
                }
                if (o == 'f')
                    r.refresh_seconds = (int)v;
                else
                    r.negative_seconds = (int)v;
                break;
            case 'a':
                if (strcmp(optarg, "none") == 0) {
                    r.ca_bundle = NULL;
                } else {
                    char *pem = read_file_text(optarg, RULE_CA_MAX);
                    if (!pem) {
                        rc = perr_set(&e, PIER_E_BAD_REQUEST, "cannot read CA bundle %s (or larger than 256 KiB)", optarg);
                        goto done;
                    }
                    r.ca_bundle = arena_strdup(a, pem);
                    free(pem);
                }
                break;
            default:
                status = 2;
                goto done;
            }
        }
        char secret[8300] = "";
        if (user && !read_secret_stdin(secret, sizeof secret)) {
            rc = perr_set(&e, PIER_E_BAD_REQUEST, "--username needs the access token on standard input");
            goto done;
        }
        if (create)
            rc = rules_create(&c, &r, user, user ? secret : NULL, &e);
        else
            rc = cache_rule_update(&c, &r, user || clear_creds, user, user ? secret : NULL, &e);
        OPENSSL_cleanse(secret, sizeof secret);
        if (!rc) {
            struct cache_rule now;
            if (rules_get(&c, r.prefix, &now, &e) == PIER_OK) {
                json_t *j = rule_to_json(&now);
                json_dumpf(j, stdout, JSON_INDENT(2));
                printf("\n");
                json_decref(j);
            }
        }
    } else {
        usage(stderr);
        status = 2;
    }
done:
    if (rc) {
        fprintf(stderr, "pierctl: %s\n", e.msg);
        status = 1;
    }
    arena_free(a);
    secretbox_wipe(&sb);
    db_close(db);
    return status;
}

/* ---- identities and policies ---- */

static char *read_doc(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = xmalloc(POLICY_MAX_BYTES + 2);
    size_t n = fread(buf, 1, POLICY_MAX_BYTES + 1, f);
    if (f != stdin)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

struct ctl {
    struct db *db;
    struct arena *a;
    struct secretbox sb;
    struct token_keys tk;
    struct ctx c;
};

static void ctl_open(struct ctl *t, const struct config *cfg)
{
    memset(t, 0, sizeof *t);
    t->db = connect_or_die(cfg);
    struct perr e;
    if (!cfg->server_key_file[0] || secretbox_load(&t->sb, cfg->server_key_file, &e) != PIER_OK ||
        token_keys_init(&t->tk, &t->sb, &e) != PIER_OK) {
        fprintf(stderr, "pierctl: %s\n", cfg->server_key_file[0] ? e.msg : "server_key_file is not set");
        exit(1);
    }
    t->a = arena_new();
    t->c = (struct ctx){.cfg = cfg, .db = t->db, .a = t->a, .sb = &t->sb, .tk = &t->tk};
}

static int ctl_close(struct ctl *t, pier_err rc, const struct perr *e)
{
    if (rc)
        fprintf(stderr, "pierctl: %s\n", e->msg);
    arena_free(t->a);
    secretbox_wipe(&t->sb);
    OPENSSL_cleanse(&t->tk, sizeof t->tk);
    db_close(t->db);
    return rc ? 1 : 0;
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(j);
}

/* A change made with pierctl, in the audit trail: the principal is the local
 * account that ran it ("local:root"); no request id, no address. */
static void ctl_audit(struct ctl *t, const char *action, const char *repository,
                      const char *resource, const char *target)
{
    struct passwd pwd, *pw = NULL;
    char buf[1024];
    if (getpwuid_r(getuid(), &pwd, buf, sizeof buf, &pw) != 0)
        pw = NULL;
    struct audit_event ev = {.action = action,
                             .repository = repository,
                             .resource = resource,
                             .target = target,
                             .principal = pw ? arena_printf(t->a, "local:%s", pw->pw_name)
                                             : arena_printf(t->a, "local:uid %ld", (long)getuid()),
                             .key_id = ""};
    audit_record(&t->c, &ev);
}

static int cmd_user(const struct config *cfg, int argc, char **argv)
{
    if (argc < 1)
        return usage(stderr), 2;
    struct ctl t;
    ctl_open(&t, cfg);
    struct perr e;
    pier_err rc = PIER_OK;
    struct principal p;
    if (!strcmp(argv[0], "create") && argc >= 2) {
        bool admin = false, role = false;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--admin")) {
                admin = true;
            } else if (!strcmp(argv[i], "--role")) {
                role = true;
            } else {
                usage(stderr);
                return ctl_close(&t, PIER_OK, &e), 2;
            }
        }
        char secret[KEY_SECRET_LEN + 1];
        if (!(rc = db_tx_begin(t.db, &e))) {
            char id[KEY_ID_LEN + 1];
            if (!(rc = principal_create(&t.c, argv[1], role ? PRINCIPAL_ROLE : PRINCIPAL_USER, &p,
                                        &e)) && admin)
                rc = identity_policy_put(&t.c, p.id, "AdministratorAccess", ADMIN_POLICY, &e);
            if (!rc)
                rc = key_create(&t.c, p.id, id, secret, &e);
            if (!(rc = db_tx_end(t.db, rc, &e))) {
                printf("%-17s%s\n", role ? "role" : "user", p.arn);
                printf("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", id, secret);
                printf("(the secret is shown only now)\n");
                ctl_audit(&t, role ? "pierctl:CreateRole" : "pierctl:CreateUser", NULL, p.arn,
                          arena_printf(t.a, "access key %s%s", id,
                                       admin ? ", policy AdministratorAccess" : ""));
            }
        }
        OPENSSL_cleanse(secret, sizeof secret);
    } else if (!strcmp(argv[0], "list")) {
        json_t *l = json_array();
        if (!(rc = principal_list(&t.c, l, &e)))
            print_json(l);
        else
            json_decref(l);
    } else if (!strcmp(argv[0], "delete") && argc == 2) {
        if (!(rc = principal_delete(&t.c, argv[1], &e))) {
            printf("deleted principal %s\n", argv[1]);
            ctl_audit(&t, "pierctl:DeletePrincipal", NULL, argv[1], NULL);
        }
    } else {
        usage(stderr);
        return ctl_close(&t, PIER_OK, &e), 2;
    }
    return ctl_close(&t, rc, &e);
}

static int cmd_key(const struct config *cfg, int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr), 2;
    struct ctl t;
    ctl_open(&t, cfg);
    struct perr e;
    pier_err rc;
    struct principal p;
    if (!strcmp(argv[0], "create")) {
        char id[KEY_ID_LEN + 1], secret[KEY_SECRET_LEN + 1];
        if (!(rc = principal_get(&t.c, argv[1], &p, &e)) &&
            !(rc = key_create(&t.c, p.id, id, secret, &e))) {
            printf("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n(the secret is shown only now)\n",
                   id, secret);
            ctl_audit(&t, "pierctl:CreateAccessKey", NULL, p.arn, id);
        }
        OPENSSL_cleanse(secret, sizeof secret);
    } else if (!strcmp(argv[0], "list")) {
        json_t *l = json_array();
        if (!(rc = principal_get(&t.c, argv[1], &p, &e)) && !(rc = key_list(&t.c, p.id, l, &e)))
            print_json(l);
        else
            json_decref(l);
    } else if (!strcmp(argv[0], "delete")) {
        if (!(rc = key_delete(&t.c, argv[1], &e))) {
            printf("deleted access key %s\n", argv[1]);
            ctl_audit(&t, "pierctl:DeleteAccessKey", NULL, NULL, argv[1]);
        }
    } else {
        usage(stderr);
        return ctl_close(&t, PIER_OK, &e), 2;
    }
    return ctl_close(&t, rc, &e);
}

static int cmd_login_password(const struct config *cfg, int argc, char **argv)
{
    if (argc < 1)
        return usage(stderr), 2;
    long long hours = 12;
    if (argc == 3 && !strcmp(argv[1], "--hours") && !grammar_uint(argv[2], 24 * 30, &hours)) {
        fprintf(stderr, "pierctl: --hours needs a number up to 720\n");
        return 2;
    }
    struct ctl t;
    ctl_open(&t, cfg);
    struct perr e;
    struct principal p;
    pier_err rc = principal_get(&t.c, argv[0], &p, &e);
    if (!rc) {
        json_t *claims = json_pack("{s:s, s:I}", "sub", p.arn, "pid", (json_int_t)p.id);
        char *tok = token_sign(t.a, &t.tk, TOKEN_LOGIN, claims, (long)hours * 3600);
        json_decref(claims);
        if (tok) {
            printf("%s\n", tok);
            /* Who minted a credential for whom, never the token itself. */
            ctl_audit(&t, "pierctl:CreateLoginPassword", NULL, p.arn,
                      arena_printf(t.a, "valid %lld hours", hours));
        } else {
            rc = perr_set(&e, PIER_E_INTERNAL, "cannot sign");
        }
    }
    return ctl_close(&t, rc, &e);
}

static int cmd_policy(const struct config *cfg, int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr), 2;
    struct ctl t;
    ctl_open(&t, cfg);
    struct perr e;
    pier_err rc = PIER_OK;
    const char *where = argv[0], *verb = argv[1];
    const char *doc = NULL;
    struct principal p;
    char *text = NULL;
    if (!strcmp(where, "registry")) {
        if (!strcmp(verb, "put") && argc == 3) {
            if (!(text = read_doc(argv[2])))
                rc = perr_set(&e, PIER_E_BAD_REQUEST, "cannot read %s", argv[2]);
            else if (!(rc = registry_policy_put(&t.c, text, &e))) {
                printf("registry policy stored\n");
                ctl_audit(&t, "pierctl:PutRegistryPolicy", NULL, authz_registry_arn(&t.c), NULL);
            }
        } else if (!strcmp(verb, "get")) {
            if (!(rc = registry_policy_get(&t.c, &doc, &e)))
                printf("%s\n", doc);
        } else if (!strcmp(verb, "delete")) {
            if (!(rc = registry_policy_delete(&t.c, &e))) {
                printf("registry policy deleted\n");
                ctl_audit(&t, "pierctl:DeleteRegistryPolicy", NULL, authz_registry_arn(&t.c), NULL);
            }
        } else {
            rc = perr_set(&e, PIER_E_BAD_REQUEST, "policy registry put FILE | get | delete");
        }
    } else if (!strcmp(where, "repository") && argc >= 3) {
        if (!strcmp(verb, "put") && argc == 4) {
            if (!(text = read_doc(argv[3])))
                rc = perr_set(&e, PIER_E_BAD_REQUEST, "cannot read %s", argv[3]);
            else if (!(rc = repository_policy_put(&t.c, argv[2], text, &e))) {
                printf("repository policy of %s stored\n", argv[2]);
                ctl_audit(&t, "pierctl:SetRepositoryPolicy", argv[2], NULL, NULL);
            }
        } else if (!strcmp(verb, "get")) {
            if (!(rc = repository_policy_get(&t.c, argv[2], &doc, &e)))
                printf("%s\n", doc);
        } else if (!strcmp(verb, "delete")) {
            if (!(rc = repository_policy_delete(&t.c, argv[2], &e))) {
                printf("repository policy of %s deleted\n", argv[2]);
                ctl_audit(&t, "pierctl:DeleteRepositoryPolicy", argv[2], NULL, NULL);
            }
        } else {
            rc = perr_set(&e, PIER_E_BAD_REQUEST, "policy repository put REPO FILE | get REPO | delete REPO");
        }
    } else if (!strcmp(where, "identity") && argc >= 3 && !(rc = principal_get(&t.c, argv[2], &p, &e))) {
        if (!strcmp(verb, "put") && argc == 5) {
            if (!(text = read_doc(argv[4])))
                rc = perr_set(&e, PIER_E_BAD_REQUEST, "cannot read %s", argv[4]);
            else if (!(rc = identity_policy_put(&t.c, p.id, argv[3], text, &e))) {
                printf("identity policy %s of %s stored\n", argv[3], argv[2]);
                ctl_audit(&t, "pierctl:PutIdentityPolicy", NULL, p.arn, argv[3]);
            }
        } else if (!strcmp(verb, "delete") && argc == 4) {
            if (!(rc = identity_policy_delete(&t.c, p.id, argv[3], &e))) {
                printf("identity policy %s of %s deleted\n", argv[3], argv[2]);
                ctl_audit(&t, "pierctl:DeleteIdentityPolicy", NULL, p.arn, argv[3]);
            }
        } else if (!strcmp(verb, "list")) {
            json_t *l = json_array();
            if (!(rc = identity_policy_list(&t.c, p.id, l, &e)))
                print_json(l);
            else
                json_decref(l);
        } else {
            rc = perr_set(&e, PIER_E_BAD_REQUEST, "policy identity put USER NAME FILE | delete USER NAME | list USER");
        }
    } else if (!rc) {
        rc = perr_set(&e, PIER_E_BAD_REQUEST, "policy identity|registry|repository ...");
    }
    free(text);
    return ctl_close(&t, rc, &e);
}

/* ---- lifecycle policies ---- */

static void print_expiry(void *arg, const char *repo, const struct lifecycle_expiry *x,
                         const char *why)
{
    struct arena *a = arg;
    if (why)
        printf("kept %s@%s, which rule %d expires: %s\n", repo, x->digest, x->rule, why);
    else
        printf("expired %s@%s (%s) by rule %d\n", repo, x->digest,
               lifecycle_tag_words(a, x->tags_json), x->rule);
    fflush(stdout);
}

static int cmd_lifecycle(const struct config *cfg, int argc, char **argv)
{
    bool run = argc >= 1 && argc <= 2 && !strcmp(argv[0], "run");
    bool preview = argc >= 2 && argc <= 3 && !strcmp(argv[0], "preview");
    if (!run && !preview)
        return usage(stderr), 2;
    struct perr e;
    struct db *db = connect_or_die(cfg);
    struct arena *a = arena_new();
    struct ctx c = {.cfg = cfg, .db = db, .a = a};
    pier_err rc = PIER_OK;
    char *text = NULL;
    if (run) {
        /* Each expiry is logged as a node's maintenance logs it (to stderr),
         * and printed. */
        log_setup(PIER_LOG_INFO, "pierctl");
        struct lifecycle_report r = {0};
        rc = argc == 2 ? lifecycle_run_repository(&c, argv[1], 0, print_expiry, a, &r, &e)
                       : lifecycle_run_due(&c, INT_MAX, 0, print_expiry, a, &r, &e);
        if (!rc)
            printf("%lld image%s expired (%lld kept) in %lld repositor%s%s\n", r.expired,
                   r.expired == 1 ? "" : "s", r.kept, r.repositories,
                   r.repositories == 1 ? "y" : "ies",
                   r.failed ? "; some policies failed (see the log)" : "");
        if (!rc && r.failed)
            rc = perr_set(&e, PIER_E_INTERNAL, "the policies of %lld repositories failed",
                          r.failed);
    } else {
        struct lifecycle_record stored;
        struct lifecycle_expiry *x = NULL;
        size_t n = 0;
        if (argc == 3 && !(text = read_doc(argv[2])))
            rc = perr_set(&e, PIER_E_BAD_REQUEST, "cannot read %s", argv[2]);
        else if (!text && !(rc = lifecycle_policy_get(&c, argv[1], &stored, &e)))
            text = xstrdup(stored.text);
        if (!rc)
            rc = lifecycle_plan(&c, argv[1], text, (long long)time(NULL), &x, &n, &e);
        for (size_t i = 0; !rc && i < n; i++)
            printf("would expire %s@%s (%s) by rule %d\n", argv[1], x[i].digest,
                   lifecycle_tag_words(a, x[i].tags_json), x[i].rule);
        if (!rc)
            printf("%zu image%s would expire\n", n, n == 1 ? "" : "s");
    }
    if (rc)
        fprintf(stderr, "pierctl: %s\n", e.msg);
    free(text);
    arena_free(a);
    db_close(db);
    return rc ? 1 : 0;
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
    log_setup(PIER_LOG_WARN, "pierctl");
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(&cfg);
    audit_file_create(false);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&cfg);
    if (strcmp(cmd, "cleanup") == 0)
        return cmd_cleanup(&cfg);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(&cfg);
    if (strcmp(cmd, "gc") == 0)
        return cmd_gc(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "fsck") == 0)
        return cmd_fsck(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "rule") == 0)
        return cmd_rule(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "budget") == 0)
        return cmd_budget(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "key") == 0)
        return cmd_key(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "login-password") == 0)
        return cmd_login_password(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "policy") == 0)
        return cmd_policy(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "lifecycle") == 0)
        return cmd_lifecycle(&cfg, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(&cfg, argc - optind - 1, argv + optind + 1);
    fprintf(stderr, "pierctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
