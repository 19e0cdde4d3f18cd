/* maintenance: age-based cleanup under a PostgreSQL advisory lock. */
#include "server/maintenance.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "lib/arena.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/grammar.h"
#include "store/repo.h"
#include "db/db.h"
#include "store/blobstore.h"
#include "lib/ctx.h"

#define MAINT_LOCK_KEY "1885955442002"

static const struct db_stmt st_lock = {
    "maint_lock", "SELECT pg_try_advisory_lock(" MAINT_LOCK_KEY ")", 0};
static const struct db_stmt st_unlock = {
    "maint_unlock", "SELECT pg_advisory_unlock(" MAINT_LOCK_KEY ")", 0};
static const struct db_stmt st_stale_uploads = {
    "maint_stale_uploads",
    "DELETE FROM uploads WHERE updated_at < now() - make_interval(secs => $1::int)"
    " RETURNING id::text", 1};
static const struct db_stmt st_upload_exists = {
    "maint_upload_exists", "SELECT 1 FROM uploads WHERE id = $1::uuid", 1};
static const struct db_stmt st_fetch_in_use = {
    "maint_fetch_in_use",
    "SELECT 1 FROM fetch_leases WHERE tmp_path = $1 AND state = 'running' AND expires_at > now()",
    1};
static const struct db_stmt st_old_rows = {
    "maint_old_rows",
    "WITH l AS (DELETE FROM fetch_leases WHERE expires_at < now() - interval '1 hour' RETURNING 1),"
    " n AS (DELETE FROM cache_negative WHERE until < now() RETURNING 1),"
    " t AS (DELETE FROM upstream_tokens WHERE expires_at < now() RETURNING 1),"
    " r AS (DELETE FROM cache_referrers WHERE fetched_at < now() - interval '7 days' RETURNING 1),"
    " f AS (DELETE FROM login_failures WHERE last_at < now() - interval '1 day'"
    "       AND (blocked_until IS NULL OR blocked_until < now()) RETURNING 1)"
    " SELECT (SELECT count(*) FROM l) + (SELECT count(*) FROM n) + (SELECT count(*) FROM t)"
    " + (SELECT count(*) FROM r) + (SELECT count(*) FROM f)", 0};

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
        PGresult *res = db_exec(c->db, c->a, &st_upload_exists, &e, name);
        if (!res || PQntuples(res) > 0)
            return false; /* on a database error keep the file */
    }
    return unlink(path) == 0;
}

/* tmp/fetch: a file is kept while a live lease writes it. */
static bool drop_fetch_file(struct ctx *c, const char *name, const char *path)
{
    (void)name;
    struct perr e;
    PGresult *res = db_exec(c->db, c->a, &st_fetch_in_use, &e, path);
    if (!res || PQntuples(res) > 0)
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
    if (db_value(res, 0, 0)[0] != 't')
        goto done; /* another node is at it */
    out->ran = true;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", cfg->upload_ttl);
    res = db_exec(db, a, &st_stale_uploads, e, ttl);
    if (!res) {
        rc = e->code;
        goto unlock;
    }
    out->sessions = PQntuples(res);
    for (int i = 0; i < out->sessions; i++) {
        char path[PATH_MAX];
        blobstore_upload_path(bs, PQgetvalue(res, i, 0), path);
        if (unlink(path) == 0)
            out->upload_files++;
    }
    char dir[PATH_MAX];
    struct arena *sa = arena_new(); /* reset after every file the sweeps look at */
    struct ctx sc = {.cfg = cfg, .db = db, .bs = bs, .a = sa};
    blobstore_tmp_dir(bs, BLOBSTORE_TMP_UPLOADS, dir);
    /* Session files are kept while their row lives (removed above with
     * it); files without a session are a dead monolithic upload's. */
    out->upload_files += sweep(&sc, dir, UPLOAD_TMP_ORPHAN_AGE, drop_upload_file);
    blobstore_tmp_dir(bs, BLOBSTORE_TMP_FETCH, dir);
    out->fetch_files = sweep(&sc, dir, FETCH_TMP_MAX_AGE, drop_fetch_file);
    res = db_exec(db, a, &st_old_rows, e);
    if (res)
        out->rows = (int)db_int(res, 0, 0);
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
    if (out->sessions || out->upload_files || out->fetch_files || out->rows || out->orphan_blobs)
        log_info("maintenance: removed %d upload sessions, %d upload files, %d download files, "
                 "%d expired rows, %d blob files without a row", out->sessions, out->upload_files,
                 out->fetch_files, out->rows, out->orphan_blobs);
unlock:
    {
        struct perr ignore;
        db_exec(db, a, &st_unlock, &ignore);
    }
done:
    arena_free(a);
    return rc;
}
