/* maintenance: age-based cleanup and lifecycle policies under a PostgreSQL
 * advisory lock. */
#include "server/maintenance.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "auth/authn.h"
#include "cache/budget.h"
#include "cache/lease.h"
#include "cache/memo.h"
#include "cache/upstream.h"
#include "lib/arena.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "lib/grammar.h"
#include "store/audit.h"
#include "store/gc.h"
#include "store/repo.h"
#include "db/db.h"
#include "store/blobstore.h"
#include "store/lifecycle_run.h"
#include "store/uploads.h"
#include "lib/ctx.h"

#define MAINT_LOCK_KEY "1885955442002"

static const struct db_stmt st_lock = {
    "maint_lock", "SELECT pg_try_advisory_lock(" MAINT_LOCK_KEY ")", 0};
static const struct db_stmt st_unlock = {
    "maint_unlock", "SELECT pg_advisory_unlock(" MAINT_LOCK_KEY ")", 0};

/* For every regular file in dir older than max_age seconds: drop() decides
 * and removes it (true when it did). */
static int sweep(struct ctx *c, const char *dir, int max_age,
                 bool (*drop)(struct ctx *c, const char *name, const char *path))
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || now - st.st_mtime < max_age)
            continue;
        if (drop(c, de->d_name, path))
            removed++;
        arena_reset(c->a);
    }
    closedir(d);
    return removed;
}

/* tmp/uploads: a file is kept while an upload session names it. */
static bool drop_upload_file(struct ctx *c, const char *name, const char *path)
{
    if (uuid_valid(name)) {
        struct perr e;
        bool exists;
        if (upload_exists(c, name, &exists, &e) != PIER_OK || exists)
            return false; /* on a database error keep the file */
    }
    return unlink(path) == 0;
}

/* tmp/fetch: a file is kept while a live lease writes it. */
static bool drop_fetch_file(struct ctx *c, const char *name, const char *path)
{
    (void)name;
    struct perr e;
    bool in_use;
    if (lease_tmp_in_use(c, path, &in_use, &e) != PIER_OK || in_use)
        return false;
    return unlink(path) == 0;
}

/* blobs/<alg>/<xx>/: a file is removed only when no row names its digest,
 * decided and done under the digest's lock (repo_blob_drop_orphan). */
static bool drop_orphan_blob(struct ctx *c, const char *alg, const char *name, const char *path)
{
    char digest[DIGEST_MAX_LEN + 2];
    if (snprintf(digest, sizeof digest, "%s:%s", alg, name) >= (int)sizeof digest ||
        !grammar_is_digest(digest))
        return false;
    bool gone = false;
    struct perr e;
    if (repo_blob_drop_orphan(c, digest, path, BLOB_ORPHAN_AGE, &gone, &e) != PIER_OK)
        return false;
    if (gone)
        log_info("maintenance: removed blob file %s, which no row names", path);
    return gone;
}

static bool drop_orphan_sha256(struct ctx *c, const char *name, const char *path)
{
    return drop_orphan_blob(c, "sha256", name, path);
}

static bool drop_orphan_sha512(struct ctx *c, const char *name, const char *path)
{
    return drop_orphan_blob(c, "sha512", name, path);
}

pier_err maintenance_run(const struct config *cfg, struct db *db, const struct blobstore *bs,
                         bool full, struct maint_report *out, struct perr *e)
{
    memset(out, 0, sizeof *out);
    struct arena *a = arena_new();
    pier_err rc = PIER_OK;
    PGresult *res = db_exec(db, a, &st_lock, e);
    if (!res) {
        rc = e->code;
        goto done;
    }
    if (db_value(res, 0, 0)[0] != 't') {
        metrics_maint_add(MM_ELSEWHERE, 1);
        goto done; /* another node is at it */
    }
    out->ran = true;
    struct ctx mc = {.cfg = cfg, .db = db, .bs = bs, .a = a};
    if ((rc = upload_expire(&mc, cfg->upload_ttl, &out->sessions, &out->upload_files, e)))
        goto unlock;
    char dir[PATH_MAX];
    struct arena *sa = arena_new(); /* reset after every file the sweeps look at */
    struct ctx sc = {.cfg = cfg, .db = db, .bs = bs, .a = sa};
    blobstore_tmp_dir(bs, BLOBSTORE_TMP_UPLOADS, dir);
    /* Session files are kept while their row lives (removed above with
     * it); files without a session are a dead monolithic upload's. */
    out->upload_files += sweep(&sc, dir, UPLOAD_TMP_ORPHAN_AGE, drop_upload_file);
    blobstore_tmp_dir(bs, BLOBSTORE_TMP_FETCH, dir);
    out->fetch_files = sweep(&sc, dir, FETCH_TMP_MAX_AGE, drop_fetch_file);
    /* Rows that only expire: each table's owner removes its own. A failure
     * leaves them for the next run. */
    typedef pier_err expire_fn(struct ctx *, long long *, struct perr *);
    expire_fn *const expire[] = {lease_expire, memo_expire, upstream_tokens_expire,
                                 authn_failures_expire, audit_expire};
    for (size_t i = 0; i < sizeof expire / sizeof expire[0]; i++) {
        long long removed = 0;
        struct perr ignore;
        if (expire[i](&mc, &removed, &ignore) == PIER_OK)
            out->rows += (int)removed;
    }
    /* Lifecycle policies; a failure is logged and left for the next run. */
    {
        struct lifecycle_report lr = {0};
        struct perr le;
        if (lifecycle_run_due(&mc, full ? INT_MAX : LIFECYCLE_REPOS_PER_RUN,
                              full ? 0 : LIFECYCLE_EXPIRIES_PER_RUN, NULL, NULL, &lr,
                              &le) != PIER_OK)
            log_warn("maintenance: lifecycle policies: %s", le.msg);
        out->lifecycle_repos = lr.repositories;
        out->lifecycle_expired = lr.expired;
        metrics_maint_add(MM_LIFECYCLE_REPOS, lr.repositories);
        metrics_maint_add(MM_LIFECYCLE_EXPIRED, lr.expired);
        metrics_maint_add(MM_LIFECYCLE_KEPT, lr.kept);
        metrics_maint_add(MM_LIFECYCLE_FAILED, lr.failed);
        if (lr.expired || lr.kept || lr.failed)
            log_info("maintenance: lifecycle policies of %lld repositories ran: %lld images "
                     "expired, %lld kept, %lld repositories failed%s",
                     lr.repositories, lr.expired, lr.kept, lr.failed,
                     lr.more ? " (more next run)" : "");
        arena_reset(a);
    }
    /* The cache within its byte budgets (a database error leaves the rest
     * for the next run; another enforcement, e.g. pierctl's, is enough). */
    {
        struct budget_report br;
        struct perr be;
        if (budget_enforce(&mc, &br, &be) == PIER_OK) {
            out->expired_images = br.expired;
            metrics_maint_add(MM_BUDGET_EXPIRED, br.expired);
            metrics_maint_add(MM_BUDGET_RECLAIMED, br.reclaimed);
        }
        else if (be.code != PIER_E_CONFLICT)
            log_warn("maintenance: cache budgets: %s", be.msg);
    }
    int first = 0, count = 256;
    if (!full) {
        int interval = cfg->maintenance_interval > 0 ? cfg->maintenance_interval : 300;
        first = (int)((time(NULL) / interval) % (256 / BLOB_SHARDS_PER_RUN)) * BLOB_SHARDS_PER_RUN;
        count = BLOB_SHARDS_PER_RUN;
    }
    for (int i = first; i < first + count; i++) {
        snprintf(dir, sizeof dir, "%s/blobs/sha256/%02x", bs->root, i);
        out->orphan_blobs += sweep(&sc, dir, BLOB_ORPHAN_AGE, drop_orphan_sha256);
        snprintf(dir, sizeof dir, "%s/blobs/sha512/%02x", bs->root, i);
        out->orphan_blobs += sweep(&sc, dir, BLOB_ORPHAN_AGE, drop_orphan_sha512);
    }
    arena_free(sa);
    /* Garbage collection: every gc_interval seconds, cluster-wide (it takes
     * its own lock too, so that `pierctl gc` and this never overlap). */
    bool due = false;
    struct perr ge;
    if (gc_due(&mc, &due, &ge) == PIER_OK && due) {
        struct gc_report g;
        if (gc_sweep(&mc, -1, 0, false, &g, &ge) == PIER_OK) {
            out->gc_ran = true;
            out->gc_blobs = g.blobs;
            out->gc_bytes = g.bytes;
        }
    }
    if (out->sessions || out->upload_files || out->fetch_files || out->rows || out->orphan_blobs ||
        out->expired_images)
        log_info("maintenance: removed %d upload sessions, %d upload files, %d download files, "
                 "%d expired rows, %d blob files without a row; the cache budgets expired %lld "
                 "images",
                 out->sessions, out->upload_files, out->fetch_files, out->rows, out->orphan_blobs,
                 out->expired_images);
unlock:
    {
        struct perr ignore;
        db_exec(db, a, &st_unlock, &ignore);
    }
    if (rc == PIER_OK) {
        metrics_maint_add(MM_RUN, 1);
        metrics_maint_done((int64_t)time(NULL));
    }
done:
    if (rc != PIER_OK)
        metrics_maint_add(MM_FAILED, 1);
    arena_free(a);
    return rc;
}
