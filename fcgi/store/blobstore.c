/* blobstore: content-addressed files on a (possibly NFS) shared filesystem. */
#include "store/blobstore.h"

#include <errno.h>
#include <limits.h>
#include <sys/statvfs.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lib/contract.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"

/* Published blobs are readable by their owner (pierd) and their group (the web
 * server's, inherited from a setgid blob root), by nobody else. Files being
 * written are the owner's alone: Apache never reads them. */
#define BLOB_FILE_MODE 0640
#define BLOB_DIR_MODE 0750

/* mkdir with exactly BLOB_DIR_MODE whatever the umask, keeping the setgid bit
 * a new directory inherits from its parent. An existing directory is left as
 * it is. */
static int mkdir_blobdir(const char *path)
{
    if (mkdir(path, BLOB_DIR_MODE) < 0)
        return errno == EEXIST ? 0 : -1;
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 0777) != BLOB_DIR_MODE)
        chmod(path, (st.st_mode & S_ISGID) | BLOB_DIR_MODE);
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir_blobdir(tmp) < 0)
                return -1;
            *p = '/';
        }
    }
    return mkdir_blobdir(tmp);
}

/* Every path below fits PATH_MAX: the root is at most BLOBSTORE_ROOT_MAX - 1
 * bytes, what follows it at most "/blobs/sha512/xx/" and 128 hex digits. */
static const char *const tmp_dirs[] = {
    [BLOBSTORE_TMP_UPLOADS] = "tmp/uploads",
    [BLOBSTORE_TMP_FETCH] = "tmp/fetch",
};

pier_err blobstore_init(struct blobstore *bs, const char *root, struct perr *e)
{
    if (strlen(root) >= BLOBSTORE_ROOT_MAX)
        return perr_set(e, PIER_E_INTERNAL, "blob_root path is too long");
    snprintf(bs->root, sizeof bs->root, "%s", root);
    const char *subdirs[] = {"blobs/sha256", "blobs/sha512", tmp_dirs[BLOBSTORE_TMP_UPLOADS],
                             tmp_dirs[BLOBSTORE_TMP_FETCH]};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", bs->root, subdirs[i]);
        if (mkdir_p(p) < 0)
            return perr_set(e, PIER_E_UNAVAILABLE, "cannot create %s: %s", p, strerror(errno));
    }
    return PIER_OK;
}

void blobstore_blob_path(const struct blobstore *bs, const char *digest, char out[PATH_MAX])
{
    PIER_ASSERT(grammar_is_digest(digest));
    const char *colon = strchr(digest, ':');
    int alen = (int)(colon - digest);
    snprintf(out, PATH_MAX, "%s/blobs/%.*s/%.2s/%s", bs->root, alen, digest, colon + 1, colon + 1);
}

void blobstore_tmp_dir(const struct blobstore *bs, enum blobstore_tmp kind, char out[PATH_MAX])
{
    PIER_ASSERT((size_t)kind < sizeof tmp_dirs / sizeof tmp_dirs[0]);
    snprintf(out, PATH_MAX, "%s/%s", bs->root, tmp_dirs[kind]);
}

void blobstore_upload_path(const struct blobstore *bs, const char *id, char out[PATH_MAX])
{
    PIER_ASSERT(uuid_valid(id));
    snprintf(out, PATH_MAX, "%s/%s/%s", bs->root, tmp_dirs[BLOBSTORE_TMP_UPLOADS], id);
}

void blobstore_fetch_path(const struct blobstore *bs, const char *id, char out[PATH_MAX])
{
    PIER_ASSERT(uuid_valid(id));
    snprintf(out, PATH_MAX, "%s/%s/%s", bs->root, tmp_dirs[BLOBSTORE_TMP_FETCH], id);
}

bool blobstore_stat(const struct blobstore *bs, const char *digest, long long *size)
{
    PIER_ASSERT(grammar_is_digest(digest));
    char p[PATH_MAX];
    struct stat st;
    blobstore_blob_path(bs, digest, p);
    if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    if (size)
        *size = (long long)st.st_size;
    return true;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

pier_err blobstore_publish(const struct blobstore *bs, const char *tmp_path, const char *digest,
                           struct perr *e)
{
    PIER_ASSERT(tmp_path != NULL && grammar_is_digest(digest));
    char dst[PATH_MAX];
    blobstore_blob_path(bs, digest, dst);
    int fd = open(tmp_path, O_RDONLY);
    if (fd < 0) {
        int err = errno;
        log_error("publish %s: cannot open %s: %s", digest, tmp_path, strerror(err));
        return perr_set(e, PIER_E_INTERNAL, "cannot publish blob: temporary file is gone");
    }
    /* The bytes must be durable before the name points at them. */
    if (fsync(fd) < 0) {
        int err = errno;
        close(fd);
        unlink(tmp_path);
        log_error("publish %s: fsync: %s", digest, strerror(err));
        return perr_set(e, PIER_E_INTERNAL, "cannot publish blob: %s", strerror(err));
    }
    /* Blobs are immutable and readable by the web server's group (X-Sendfile). */
    fchmod(fd, BLOB_FILE_MODE);
    close(fd);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", dst);
    *strrchr(dir, '/') = '\0';
    if (mkdir_blobdir(dir) < 0) {
        int err = errno;
        unlink(tmp_path);
        log_error("publish %s: mkdir %s: %s", digest, dir, strerror(err));
        return perr_set(e, PIER_E_INTERNAL, "cannot publish blob: %s", strerror(err));
    }
    /* rename() over an existing blob is harmless: same digest, same bytes. */
    if (rename(tmp_path, dst) < 0) {
        int err = errno;
        unlink(tmp_path);
        log_error("publish %s: rename: %s", digest, strerror(err));
        return perr_set(e, PIER_E_INTERNAL, "cannot publish blob: %s", strerror(err));
    }
    fsync_dir(dir);
    return PIER_OK;
}

pier_err blobstore_pwrite_all(int fd, const void *buf, size_t len, off_t off, struct perr *e)
{
    PIER_ASSERT(fd >= 0 && (buf != NULL || len == 0) && off >= 0);
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            log_error("write to blob root failed: %s", strerror(err));
            if (err == ENOSPC || err == EDQUOT)
                return perr_set(e, PIER_E_STORAGE_FULL, "the blob store is full: %s",
                                strerror(err));
            return perr_set(e, PIER_E_INTERNAL, "cannot write to the blob store: %s",
                            strerror(err));
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return PIER_OK;
}

pier_err blobstore_reserve(const struct blobstore *bs, long long bytes, long long keep_free,
                           struct perr *e)
{
    struct statvfs v;
    if (statvfs(bs->root, &v) != 0)
        return PIER_OK; /* cannot tell: the writes will say */
    long long avail = (long long)v.f_bavail * (long long)v.f_frsize;
    if (bytes > LLONG_MAX - keep_free || avail < bytes + keep_free)
        return perr_set(e, PIER_E_STORAGE_FULL,
                        "the blob store has %lld bytes free; %lld are needed and %lld are kept "
                        "free (min_free_space)", avail, bytes, keep_free);
    return PIER_OK;
}
