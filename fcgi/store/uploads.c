/* uploads: streaming request bodies into temporary files on the blob root. */
#include "store/uploads.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "db/db.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "store/blobstore.h"
#include "store/repo.h"

#define COPY_BUF (256 * 1024)

static const struct db_stmt st_create = {
    "upload_create",
    "INSERT INTO uploads(id, repository, size, hash_state) VALUES ($1::uuid, $2, 0, $3::bytea)",
    3};
static const struct db_stmt st_get = {
    "upload_get",
    "SELECT size, hash_state, coalesce(short_part_end, -1) FROM uploads"
    " WHERE id = $1::uuid AND repository = $2", 2};
static const struct db_stmt st_lock = {
    "upload_lock",
    "SELECT size, hash_state, coalesce(short_part_end, -1) FROM uploads"
    " WHERE id = $1::uuid AND repository = $2 FOR UPDATE NOWAIT", 2};
static const struct db_stmt st_save = {
    "upload_save",
    "UPDATE uploads SET size = $2::bigint, hash_state = $3::bytea,"
    " short_part_end = nullif($4::bigint, -1), updated_at = now() WHERE id = $1::uuid", 4};
static const struct db_stmt st_delete = {
    "upload_delete", "DELETE FROM uploads WHERE id = $1::uuid", 1};

static unsigned char copybuf[COPY_BUF];

void upload_range(const struct upload *u, char out[48])
{
    snprintf(out, 48, "0-%lld", u->size > 0 ? u->size - 1 : 0);
}

static long long bin_int8(PGresult *res, int col)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(res, 0, col);
    unsigned long long v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return (long long)v;
}

static pier_err load_row(PGresult *res, const char *id, struct upload *u, struct perr *e)
{
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_BLOB_UPLOAD_UNKNOWN,
                        "upload %s is not known in this repository (finished, cancelled, expired "
                        "or started for another repository)", id);
    snprintf(u->id, sizeof u->id, "%s", id);
    /* Binary result: sizes are int8 big-endian, hash_state raw bytes. */
    u->size = bin_int8(res, 0);
    u->short_end = bin_int8(res, 2);
    u->have_state = !PQgetisnull(res, 0, 1) &&
                    hashstate_import(&u->hs, (const unsigned char *)PQgetvalue(res, 0, 1),
                                     (size_t)PQgetlength(res, 0, 1));
    return PIER_OK;
}

/* st's parameters: a1, a2, the hash state, and (st_save) the short part's end. */
static pier_err save_state(struct ctx *c, const struct db_stmt *st, const char *a1,
                           struct db_param a2, const struct upload *u, struct perr *e)
{
    unsigned char state[HASHSTATE_EXPORT_MAX];
    size_t slen = u->have_state ? hashstate_export(&u->hs, state) : 0;
    struct db_param p[4] = {
        DB_ARG(a1),
        a2,
        DB_BYTES(u->have_state ? state : NULL, slen),
        DB_ARG(u->short_end),
    };
    return db_execp(c->db, c->a, st, p, false, e) ? PIER_OK : e->code;
}

pier_err upload_create(struct ctx *c, const char *name, struct upload *u, struct perr *e)
{
    memset(u, 0, sizeof *u);
    u->short_end = -1;
    if (!uuid_v4(u->id))
        return perr_set(e, PIER_E_INTERNAL, "random number generator failed");
    hashstate_init(&u->hs);
    u->have_state = true;
    char path[PATH_MAX];
    blobstore_upload_path(c->bs, u->id, path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        log_error("cannot create %s: %s", path, strerror(errno));
        return perr_set(e, PIER_E_UNAVAILABLE, "cannot create an upload file on the blob store");
    }
    close(fd);
    pier_err rc = save_state(c, &st_create, u->id, DB_ARG(name), u, e);
    if (rc)
        unlink(path);
    return rc;
}

pier_err upload_get(struct ctx *c, const char *name, const char *id, struct upload *u,
                    struct perr *e)
{
    PIER_ASSERT(uuid_valid(id));
    struct db_param p[2] = {{.value = id}, {.value = name}};
    PGresult *res = db_execp(c->db, c->a, &st_get, p, true, e);
    if (!res)
        return e->code;
    return load_row(res, id, u, e);
}

/* Inside a transaction: lock the session row for this request. */
static pier_err upload_lock(struct ctx *c, const char *name, const char *id, struct upload *u,
                            struct perr *e)
{
    PIER_ASSERT(uuid_valid(id));
    struct db_param p[2] = {{.value = id}, {.value = name}};
    PGresult *res = db_execp(c->db, c->a, &st_lock, p, true, e);
    if (!res) {
        if (strcmp(db_sqlstate(c->db), "55P03") == 0)
            return perr_set(e, PIER_E_RANGE_INVALID,
                            "another request is writing to upload %s right now", id);
        return e->code;
    }
    return load_row(res, id, u, e);
}

/* The length src announces: the request's Content-Length (-1: none), or
 * the length of the bytes in memory. */
static long long src_length(const struct upload_src *src)
{
    return src->r ? src->r->content_length : (long long)src->len;
}

/* Next piece of src: a pointer to up to COPY_BUF bytes, their count (0 at
 * the end, -1 when the request body broke off). */
static ssize_t src_next(const struct upload_src *src, size_t *pos, const unsigned char **p)
{
    if (src->r) {
        *p = copybuf;
        return req_read(src->r, copybuf, sizeof copybuf);
    }
    size_t n = src->len - *pos < COPY_BUF ? src->len - *pos : COPY_BUF;
    *p = src->buf + *pos;
    *pos += n;
    return (ssize_t)n;
}

/* Copy src into fd at offset off, updating hs. Stops with PIER_E_TOO_LARGE
 * once more than max bytes would be written in total. */
static pier_err copy_body(const struct upload_src *src, int fd, long long off, struct hashstate *hs,
                          bool hashing, long long max_total, long long *written, struct perr *e)
{
    long long total = 0;
    size_t pos = 0;
    for (;;) {
        const unsigned char *piece;
        ssize_t n = src_next(src, &pos, &piece);
        if (n < 0)
            return perr_set(e, PIER_E_BLOB_UPLOAD_INVALID,
                            "the request body was cut off after %lld bytes", total);
        if (n == 0)
            break;
        if (off + total + n > max_total) {
            return perr_set(e, PIER_E_TOO_LARGE,
                            "upload exceeds the size limit of %lld bytes", max_total);
        }
        pier_err rc = blobstore_pwrite_all(fd, piece, (size_t)n, (off_t)(off + total), e);
        if (rc) {
            return rc;
        }
        if (hashing)
            hashstate_update(hs, piece, (size_t)n);
        total += n;
    }
    if (src_length(src) >= 0 && total != src_length(src))
        return perr_set(e, PIER_E_BLOB_UPLOAD_INVALID,
                        "the request body was cut off after %lld of %lld bytes", total,
                        src_length(src));
    *written = total;
    return PIER_OK;
}

/* Append src at u->size, hashing as it goes; start and end as in
 * upload_part. On failure the file is cut back to u->size and u is
 * unchanged. */
static pier_err upload_append(struct ctx *c, const struct upload_src *src, struct upload *u,
                              long long start, long long end, long long min_part, struct perr *e)
{
    long long length = src_length(src);
    if (start >= 0) {
        /* grammar_content_range() bounds both ends; anything else is refused here,
         * before end - start + 1 could overflow. */
        if (end < start || end > GRAMMAR_OFFSET_MAX) {
            return perr_set(e, PIER_E_RANGE_INVALID, "Content-Range %lld-%lld is not a chunk range",
                            start, end);
        }
        if (start != u->size) {
            return perr_set(e, PIER_E_RANGE_INVALID,
                            "chunk starts at byte %lld but the upload has %lld bytes; "
                            "send the chunk that starts at %lld", start, u->size, u->size);
        }
        if (length >= 0 && length != end - start + 1) {
            return perr_set(e, PIER_E_RANGE_INVALID,
                            "Content-Range %lld-%lld announces %lld bytes but Content-Length "
                            "is %lld",
                            start, end, end - start + 1, length);
        }
    }
    long long max_total = c->cfg->max_blob_size;
    if (u->size + c->cfg->max_chunk_size < max_total)
        max_total = u->size + c->cfg->max_chunk_size;
    if (length >= 0 && u->size + length > max_total) {
        return perr_set(e, PIER_E_TOO_LARGE,
                        "upload would reach %lld bytes; the limit is %lld bytes", u->size + length,
                        max_total);
    }
    /* No room for the announced bytes: refused before any is read. */
    if (length > 0 && blobstore_reserve(c->bs, length, c->cfg->min_free_space, e) != PIER_OK) {
        return e->code;
    }
    char path[PATH_MAX];
    blobstore_upload_path(c->bs, u->id, path);
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return perr_set(e, PIER_E_BLOB_UPLOAD_UNKNOWN,
                        "the data of upload %s is gone from the blob store", u->id);
    }
    struct hashstate hs = u->hs;
    long long written = 0;
    pier_err rc = copy_body(src, fd, u->size, &hs, u->have_state, max_total, &written, e);
    if (rc) {
        /* Forget the partial chunk: the next one starts at the old offset. */
        if (ftruncate(fd, (off_t)u->size) < 0)
            log_warn("cannot truncate %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    close(fd);
    if (min_part > 0 && written < min_part && u->short_end < 0)
        u->short_end = u->size + written;
    u->size += written;
    u->hs = hs;
    return PIER_OK;
}

/* Persist u->size, the hash state and the short part (inside the caller's
 * transaction). */
static pier_err upload_save(struct ctx *c, const struct upload *u, struct perr *e)
{
    return save_state(c, &st_save, u->id, DB_ARG(u->size), u, e);
}

/* Compute the digest of what was received, in the algorithm of want. */
static pier_err received_digest(const char *path, struct upload *u,
                                enum digest_alg alg, char out[DIGEST_STR_MAX], struct perr *e)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return perr_set(e, PIER_E_BLOB_UPLOAD_UNKNOWN,
                        "the data of upload %s is gone from the blob store", u->id);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < u->size) {
        close(fd);
        log_error("upload %s: file has %lld bytes, expected %lld", u->id,
                  (long long)st.st_size, u->size);
        return perr_set(e, PIER_E_INTERNAL, "upload %s lost data on the blob store", u->id);
    }
    /* Bytes past the recorded size are a chunk that failed half-way. */
    if (st.st_size > u->size && ftruncate(fd, (off_t)u->size) < 0) {
        close(fd);
        return perr_set(e, PIER_E_INTERNAL, "cannot trim upload %s", u->id);
    }
    if (alg == DIGEST_SHA256 && u->have_state) {
        hashstate_final(&u->hs, out);
    } else if (!digest_file(alg, fd, out, NULL)) {
        close(fd);
        return perr_set(e, PIER_E_INTERNAL, "cannot read upload %s: %s", u->id, strerror(errno));
    }
    close(fd);
    return PIER_OK;
}

/* Verify the received bytes against digest and publish them as that blob,
 * linking it into name and removing the session, all inside the caller's
 * transaction. On a digest mismatch the session is discarded (row and file)
 * and PIER_E_DIGEST_INVALID returned. */
static pier_err upload_finish(struct ctx *c, const char *name, struct upload *u, const char *digest,
                              struct perr *e)
{
    enum digest_alg alg;
    pier_err rc = grammar_digest(digest, &alg, e);
    if (rc)
        return rc;
    if (u->size > c->cfg->max_blob_size)
        return perr_set(e, PIER_E_TOO_LARGE, "blob is %lld bytes; the limit is %lld", u->size,
                        c->cfg->max_blob_size);
    char path[PATH_MAX], got[DIGEST_STR_MAX];
    blobstore_upload_path(c->bs, u->id, path);
    if ((rc = received_digest(path, u, alg, got, e)))
        return rc;
    if (strcmp(got, digest) != 0) {
        struct perr ignore;
        /* The mismatch is the answer; a session left behind expires (upload_ttl). */
        (void)upload_delete(c, u->id, &ignore);
        rc = perr_set(e, PIER_E_DIGEST_INVALID,
                      "the %lld bytes received have digest %s, not %s; the upload was discarded",
                      u->size, got, digest);
        perr_detail(e, "%s", got);
        return rc;
    }
    if ((rc = repo_blob_publish(c, name, path, digest, u->size, 0, e)))
        return rc;
    return db_exec(c->db, c->a, &st_delete, e, u->id) ? PIER_OK : e->code;
}

pier_err upload_delete(struct ctx *c, const char *id, struct perr *e)
{
    char path[PATH_MAX];
    blobstore_upload_path(c->bs, id, path);
    PGresult *res = db_exec(c->db, c->a, &st_delete, e, id);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(errno));
    return res ? PIER_OK : e->code;
}

pier_err upload_part(struct ctx *c, const char *name, const char *id, const struct upload_src *src,
                     long long start, long long end, long long min_part, struct upload *u,
                     bool *found, struct perr *e)
{
    *found = false;
    pier_err rc = db_tx_begin(c->db, e);
    if (rc)
        return rc;
    rc = upload_lock(c, name, id, u, e);
    *found = rc == PIER_OK;
    if (!rc) {
        struct upload before = *u;
        rc = upload_append(c, src, u, start, end, min_part, e);
        if (!rc)
            rc = upload_save(c, u, e);
        if (rc)
            *u = before; /* what the session still holds */
    }
    return db_tx_end(c->db, rc, e);
}

pier_err upload_complete(struct ctx *c, const char *name, const char *id,
                         const struct upload_src *src, long long start, long long end,
                         const char *digest, upload_check_fn *check, void *arg, struct upload *u,
                         bool *found, struct perr *e)
{
    *found = false;
    pier_err rc = grammar_digest(digest, NULL, e);
    if (rc)
        return rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    if ((rc = upload_lock(c, name, id, u, e)) != PIER_OK)
        return db_tx_end(c->db, rc, e);
    *found = true;
    struct upload before = *u;
    if (src)
        rc = upload_append(c, src, u, start, end, 0, e);
    if (!rc && check)
        rc = check(c, u, arg, e);
    if (!rc)
        rc = upload_finish(c, name, u, digest, e);
    if (rc == PIER_E_DIGEST_INVALID) {
        /* A mismatch discarded the session; that must stick too, and the
         * answer stays the mismatch. */
        struct perr ce;
        (void)db_tx_end(c->db, PIER_OK, &ce);
        return rc;
    }
    if (rc)
        *u = before; /* rolled back: what the session still holds */
    return db_tx_end(c->db, rc, e);
}

pier_err upload_monolithic(struct ctx *c, struct req *r, const char *name, const char *digest,
                           long long *size, struct perr *e)
{
    enum digest_alg alg;
    pier_err rc = grammar_digest(digest, &alg, e);
    if (rc) {
        return rc;
    }
    long long limit = c->cfg->max_blob_size < c->cfg->max_chunk_size ? c->cfg->max_blob_size
                                                                      : c->cfg->max_chunk_size;
    if (r->content_length > limit) {
        return perr_set(e, PIER_E_TOO_LARGE, "blob is %lld bytes; the limit is %lld",
                        r->content_length, limit);
    }
    if (r->content_length > 0 &&
        blobstore_reserve(c->bs, r->content_length, c->cfg->min_free_space, e) != PIER_OK) {
        return e->code;
    }
    struct upload u;
    memset(&u, 0, sizeof u);
    u.short_end = -1;
    if (!uuid_v4(u.id))
        return perr_set(e, PIER_E_INTERNAL, "random number generator failed");
    hashstate_init(&u.hs);
    u.have_state = true;
    char path[PATH_MAX];
    blobstore_upload_path(c->bs, u.id, path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        log_error("cannot create %s: %s", path, strerror(errno));
        return perr_set(e, PIER_E_UNAVAILABLE, "cannot create an upload file on the blob store");
    }
    long long written = 0;
    struct upload_src src = {.r = r};
    rc = copy_body(&src, fd, 0, &u.hs, true, limit, &written, e);
    close(fd);
    if (rc) {
        unlink(path);
        return rc;
    }
    u.size = written;
    char got[DIGEST_STR_MAX];
    if ((rc = received_digest(path, &u, alg, got, e))) {
        unlink(path);
        return rc;
    }
    if (strcmp(got, digest) != 0) {
        unlink(path);
        rc = perr_set(e, PIER_E_DIGEST_INVALID,
                      "the %lld bytes received have digest %s, not %s", written, got, digest);
        perr_detail(e, "%s", got);
        return rc;
    }
    *size = written;
    if ((rc = repo_blob_publish(c, name, path, digest, written, 0, e)))
        unlink(path); /* (gone already when it was published) */
    return rc;
}

/* ---- housekeeping ---- */

static const struct db_stmt st_expire = {
    "upload_expire",
    "DELETE FROM uploads WHERE updated_at < now() - make_interval(secs => $1::int)"
    " RETURNING id::text", 1};
static const struct db_stmt st_exists = {
    "upload_exists", "SELECT 1 FROM uploads WHERE id = $1::uuid", 1};
static const struct db_stmt st_count = {
    "upload_count", "SELECT count(*) FROM uploads", 0};

pier_err upload_expire(struct ctx *c, int ttl, int *sessions, int *files, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_expire, e, ttl);
    if (!res)
        return e->code;
    *sessions = PQntuples(res);
    *files = 0;
    for (int i = 0; i < *sessions; i++) {
        char path[PATH_MAX];
        blobstore_upload_path(c->bs, PQgetvalue(res, i, 0), path);
        if (unlink(path) == 0)
            (*files)++;
    }
    return PIER_OK;
}

pier_err upload_exists(struct ctx *c, const char *id, bool *exists, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_exists, e, id);
    if (!res)
        return e->code;
    *exists = PQntuples(res) > 0;
    return PIER_OK;
}

pier_err upload_count(struct ctx *c, long long *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_count, e);
    if (!res)
        return e->code;
    *n = db_int(res, 0, 0);
    return PIER_OK;
}
