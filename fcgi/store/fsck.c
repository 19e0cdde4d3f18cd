/* fsck: the blob root against the blobs rows, one fan-out directory at a time. */
#include "store/fsck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "lib/log.h"
#include "store/blobstore.h"
#include "store/digest.h"
#include "store/repo.h"

/* The references query stops here; a store with more has bigger worries. */
#define FSCK_REFS_MAX 10000
/* Fewer missing files than this are never taken for an unmounted root. */
#define FSCK_MASS_MIN 20

static const char *const kind_names[FSCK_KINDS] = {
    [FSCK_MISSING_FILE] = "missing-file",
    [FSCK_ORPHAN_FILE] = "orphan-file",
    [FSCK_SIZE_MISMATCH] = "size-mismatch",
    [FSCK_DIGEST_MISMATCH] = "digest-mismatch",
    [FSCK_UNREADABLE] = "unreadable",
    [FSCK_STRAY_PATH] = "stray-path",
    [FSCK_MISSING_BLOB_ROW] = "missing-blob-row",
    [FSCK_MISSING_CHILD] = "missing-child-manifest",
};

static const struct {
    const char *name;
    enum digest_alg alg;
    size_t hex;
} algs[] = {{"sha256", DIGEST_SHA256, 64}, {"sha512", DIGEST_SHA512, 128}};

const char *fsck_kind_name(enum fsck_kind k)
{
    return (size_t)k < FSCK_KINDS ? kind_names[k] : "unknown";
}

bool fsck_blob_name(const char *alg, const char *dir, const char *name,
                    char digest[DIGEST_MAX_LEN + 1])
{
    size_t want = 0;
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(alg, algs[i].name) == 0)
            want = algs[i].hex;
    if (!want || strlen(name) != want || strlen(dir) != 2 || strncmp(name, dir, 2) != 0)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    snprintf(digest, DIGEST_MAX_LEN + 1, "%s:%s", alg, name);
    return grammar_is_digest(digest);
}

bool fsck_mass_loss(long long missing, long long rows)
{
    return missing >= FSCK_MASS_MIN && missing * 2 > rows;
}

int fsck_exit_status(const struct fsck_report *r)
{
    if (r->problems == 0)
        return 0;
    return r->repaired == r->problems ? 1 : 4;
}

const char *fsck_line(struct arena *a, const struct fsck_finding *f)
{
    const char *subject = f->digest ? f->digest : f->path ? f->path : "-";
    const char *what = f->action == FSCK_REPAIRED ? "repaired" : "kept";
    if (f->action == FSCK_FOUND || !f->outcome)
        return arena_printf(a, "%s %s: %s", fsck_kind_name(f->kind), subject, f->detail);
    return arena_printf(a, "%s %s: %s [%s: %s]", fsck_kind_name(f->kind), subject, f->detail, what,
                        f->outcome);
}

const char *fsck_summary(struct arena *a, const struct fsck_report *r)
{
    char counts[512] = "";
    size_t n = 0;
    for (int k = 0; k < FSCK_KINDS; k++)
        n += (size_t)snprintf(counts + n, n < sizeof counts ? sizeof counts - n : 0, " %s=%lld",
                              kind_names[k], r->found[k]);
    return arena_printf(a,
                        "fsck: rows=%lld files=%lld bytes=%lld verified=%lld pending=%lld "
                        "problems=%lld%s repaired=%lld kept=%lld",
                        r->rows, r->files, r->bytes, r->verified, r->pending, r->problems, counts,
                        r->repaired, r->kept);
}

static const char *const action_names[] = {
    [FSCK_FOUND] = "found", [FSCK_REPAIRED] = "repaired", [FSCK_KEPT] = "kept"};

json_t *fsck_json(const struct fsck_report *r)
{
    json_t *counts = json_object(), *list = json_array();
    for (int k = 0; k < FSCK_KINDS; k++)
        json_object_set_new(counts, kind_names[k], json_integer(r->found[k]));
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct fsck_finding *f = &r->findings[i];
        json_t *j = json_pack("{s:s, s:s, s:s}", "kind", fsck_kind_name(f->kind), "detail",
                              f->detail, "action", action_names[f->action]);
        if (f->digest)
            json_object_set_new(j, "digest", json_string(f->digest));
        if (f->path)
            json_object_set_new(j, "path", json_string(f->path));
        if (f->repository) {
            json_object_set_new(j, "repository", json_string(f->repository));
            json_object_set_new(j, "manifest", json_string(f->manifest));
        }
        if (f->outcome)
            json_object_set_new(j, "outcome", json_string(f->outcome));
        json_array_append_new(list, j);
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o}", "rows",
                     (json_int_t)r->rows, "files", (json_int_t)r->files, "bytes",
                     (json_int_t)r->bytes, "verified", (json_int_t)r->verified, "pending",
                     (json_int_t)r->pending, "problems", (json_int_t)r->problems, "repaired",
                     (json_int_t)r->repaired, "kept", (json_int_t)r->kept, "massLoss", r->mass_loss,
                     "counts", counts, "findings", list);
}

/* ---- the check ---- */

struct fsck {
    struct ctx *c; /* c->a holds the findings */
    struct ctx dc; /* the same, with an arena reset after every directory */
    const struct fsck_options *o;
    struct fsck_report *r;
    size_t cap;
};

static struct fsck_finding *add(struct fsck *k, enum fsck_kind kind, const char *digest,
                                const char *path, const char *detail)
{
    struct fsck_report *r = k->r;
    if (r->nfindings == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        struct fsck_finding *more = arena_alloc(k->c->a, sizeof *more * cap);
        if (r->nfindings)
            memcpy(more, r->findings, sizeof *more * r->nfindings);
        r->findings = more;
        k->cap = cap;
    }
    struct fsck_finding *f = &r->findings[r->nfindings++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->digest = digest ? arena_strdup(k->c->a, digest) : NULL;
    f->path = path ? arena_strdup(k->c->a, path) : NULL;
    f->detail = detail;
    r->found[kind]++;
    r->problems++;
    return f;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The names in dir (no "." or ".."), sorted, in a: *out, *n. Returns 0, or
 * the errno of opendir (ENOENT: a fan-out directory nothing was published
 * into yet). */
static int list_dir(struct arena *a, const char *dir, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno;
    size_t cap = 0;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            const char **more = arena_alloc(a, sizeof *more * cap);
            if (*n)
                memcpy(more, *out, sizeof *more * *n);
            *out = more;
        }
        (*out)[(*n)++] = arena_strdup(a, de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, cmp_str);
    return 0;
}

static bool same_file(const struct stat *x, const struct stat *y)
{
    return x->st_dev == y->st_dev && x->st_ino == y->st_ino && x->st_size == y->st_size &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

/* Hash the file at path with the algorithm its digest names: *st describes
 * the file hashed. 0, or the errno of what failed. */
static int hash_file(enum digest_alg alg, const char *path, char out[DIGEST_STR_MAX],
                     struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = 0;
    if (fstat(fd, st) != 0 || !digest_file(alg, fd, out, NULL))
        err = errno ? errno : EIO;
    close(fd);
    return err;
}

static enum digest_alg alg_of(const char *digest)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        size_t n = strlen(algs[i].name);
        if (strncmp(digest, algs[i].name, n) == 0 && digest[n] == ':')
            return algs[i].alg;
    }
    return DIGEST_SHA256; /* not reached: every digest here passed the grammar */
}

/* Something looked wrong about digest: judge it again under its lock, when
 * nobody publishes or collects it, and record what is really wrong. hashed:
 * the file's bytes hashed to actual (not its name) as *hashed described it. */
static pier_err judge(struct fsck *k, const char *digest, const struct stat *hashed,
                      const char *actual, struct perr *e)
{
    struct ctx *c = &k->dc;
    struct repo_fsck_state s;
    pier_err rc = repo_fsck_settle(c, digest, &s, e);
    if (rc)
        return rc;
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, digest, path);
    struct arena *a = k->c->a;
    if (s.file_errno == ENOENT) {
        if (s.row)
            add(k, FSCK_MISSING_FILE, digest, path,
                arena_printf(a, "a row (%lld bytes) names it; there is no file", s.size));
        return PIER_OK; /* neither: a sweep removed both meanwhile */
    }
    if (s.file_errno) {
        add(k, FSCK_UNREADABLE, digest, path, arena_printf(a, "%s", strerror(s.file_errno)));
        return PIER_OK;
    }
    if (!S_ISREG(s.st.st_mode)) {
        add(k, FSCK_STRAY_PATH, digest, path, "not a regular file");
        return PIER_OK;
    }
    if (!s.row) {
        if (s.tombstone) {
            k->r->pending++; /* a sweep died after its commit; the next one finishes */
            return PIER_OK;
        }
        long long age = (long long)time(NULL) - (long long)s.st.st_mtime;
        struct fsck_finding *f = add(k, FSCK_ORPHAN_FILE, digest, path,
                                     arena_printf(a, "no row names it (%lld bytes, %lld s old)",
                                                  (long long)s.st.st_size, age));
        f->age = age;
        return PIER_OK;
    }
    if ((long long)s.st.st_size != s.size) {
        struct fsck_finding *f = add(k, FSCK_SIZE_MISMATCH, digest, path,
                                     arena_printf(a, "the row says %lld bytes, the file has %lld",
                                                  s.size, (long long)s.st.st_size));
        f->st = s.st;
        return PIER_OK;
    }
    if (!hashed)
        return PIER_OK; /* what looked wrong was a publication or a sweep in flight */
    /* Published again since it was hashed (a new inode): hash the new one. */
    char now[DIGEST_STR_MAX];
    struct stat st = *hashed;
    if (!same_file(&s.st, hashed)) {
        int err = hash_file(alg_of(digest), path, now, &st);
        if (err) {
            add(k, FSCK_UNREADABLE, digest, path, arena_printf(a, "%s", strerror(err)));
            return PIER_OK;
        }
        if (strcmp(now, digest) == 0)
            return PIER_OK;
        actual = now;
    }
    struct fsck_finding *f = add(k, FSCK_DIGEST_MISMATCH, digest, path,
                                 arena_printf(a, "its bytes hash to %s", actual));
    f->st = st;
    return PIER_OK;
}

/* A file and the row of the same digest: sizes, and digests when asked. */
static pier_err check_pair(struct fsck *k, const char *digest, long long size, struct perr *e)
{
    char path[PATH_MAX];
    blobstore_blob_path(k->dc.bs, digest, path);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || (long long)st.st_size != size)
        return judge(k, digest, NULL, NULL, e);
    k->r->files++;
    k->r->bytes += (long long)st.st_size;
    if (!k->o->verify_digests)
        return PIER_OK;
    char actual[DIGEST_STR_MAX];
    int err = hash_file(alg_of(digest), path, actual, &st);
    if (err == ENOENT)
        return judge(k, digest, NULL, NULL, e);
    if (err) {
        add(k, FSCK_UNREADABLE, digest, path, arena_printf(k->c->a, "%s", strerror(err)));
        return PIER_OK;
    }
    k->r->verified++;
    return strcmp(actual, digest) == 0 ? PIER_OK : judge(k, digest, &st, actual, e);
}

/* blobs/<alg>/<xx>: its files merged with the rows of the same digests. */
static pier_err check_dir(struct fsck *k, const char *alg, const char *xx, struct perr *e)
{
    struct ctx *c = &k->dc;
    char prefix[16], digest[DIGEST_MAX_LEN + 1];
    const char *dir = arena_printf(c->a, "%s/blobs/%s/%s", c->bs->root, alg, xx);
    snprintf(prefix, sizeof prefix, "%s:%s", alg, xx);
    const char **names;
    size_t nn;
    int err = list_dir(c->a, dir, &names, &nn);
    if (err && err != ENOENT) {
        add(k, FSCK_UNREADABLE, NULL, dir, arena_printf(k->c->a, "%s", strerror(err)));
        return PIER_OK; /* its rows are not judged either: nothing to compare them with */
    }
    struct repo_gc_candidate *rows;
    int nr;
    pier_err rc = repo_fsck_rows(c, prefix, &rows, &nr, e);
    if (rc)
        return rc;
    k->r->rows += nr;
    size_t plen = strlen(alg) + 1;
    size_t i = 0;
    int j = 0;
    while (!rc && (i < nn || j < nr)) {
        if (i < nn && !fsck_blob_name(alg, xx, names[i], digest)) {
            add(k, FSCK_STRAY_PATH, NULL, arena_printf(c->a, "%s/%s", dir, names[i++]),
                "not a blob's name");
            continue;
        }
        int cmp = i >= nn ? 1 : j >= nr ? -1 : strcmp(names[i], rows[j].digest + plen);
        if (cmp == 0) {
            rc = check_pair(k, rows[j].digest, rows[j].size, e);
            i++;
            j++;
        } else if (cmp < 0) {
            rc = judge(k, digest, NULL, NULL, e); /* a file without a row */
            i++;
        } else {
            rc = judge(k, rows[j++].digest, NULL, NULL, e); /* a row without a file */
        }
    }
    return rc;
}

/* Entries of dir that are none of the names keep[] lists. */
static void check_strays(struct fsck *k, const char *dir, bool (*keep)(const char *))
{
    const char **names;
    size_t n;
    if (list_dir(k->dc.a, dir, &names, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (keep(names[i]))
            continue;
        add(k, FSCK_STRAY_PATH, NULL, arena_printf(k->dc.a, "%s/%s", dir, names[i]),
            "not a blob directory");
    }
}

static bool is_alg(const char *name)
{
    return strcmp(name, "sha256") == 0 || strcmp(name, "sha512") == 0;
}

static bool is_fanout(const char *name)
{
    return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
}

static pier_err check_references(struct fsck *k, struct perr *e)
{
    struct repo_fsck_ref *refs;
    int n;
    pier_err rc = repo_fsck_references(k->c, FSCK_REFS_MAX, &refs, &n, e);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        struct fsck_finding *f = add(
            k, refs[i].blob ? FSCK_MISSING_BLOB_ROW : FSCK_MISSING_CHILD, refs[i].child, NULL,
            arena_printf(k->c->a, "listed by %s@%s; %s", refs[i].repository, refs[i].manifest,
                         refs[i].blob ? "no row names the blob"
                                      : "the repository does not hold that manifest"));
        f->repository = refs[i].repository;
        f->manifest = refs[i].manifest;
    }
    if (n == FSCK_REFS_MAX)
        log_warn("fsck: stopped listing unservable references at %d", FSCK_REFS_MAX);
    return PIER_OK;
}

/* ---- repair ---- */

static void repair_one(struct fsck *k, struct fsck_finding *f)
{
    struct ctx *c = k->c;
    struct perr e;
    bool done = false;
    long long links = 0;
    pier_err rc = PIER_OK;
    f->action = FSCK_KEPT;
    switch (f->kind) {
    case FSCK_ORPHAN_FILE:
        if (f->age < k->o->grace) {
            f->outcome = arena_printf(c->a,
                                      "younger than the grace (%d s): it may be a publication "
                                      "whose row is on its way",
                                      k->o->grace);
            return;
        }
        rc = repo_blob_drop_orphan(c, f->digest, f->path, k->o->grace, &done, &e);
        if (!rc)
            f->outcome = done ? "file removed" : "changed meanwhile; run fsck again";
        break;
    case FSCK_MISSING_FILE:
        if (k->r->mass_loss && !k->o->force) {
            f->outcome = "refused: most rows have no file; is the blob root mounted? "
                         "(--force repairs them anyway)";
            return;
        }
        rc = repo_blob_forget(c, f->digest, NULL, NULL, &done, &links, &e);
        if (!rc)
            f->outcome = done ? arena_printf(c->a,
                                             "row and %lld link%s removed: a cache fetches the "
                                             "blob again, a push uploads it again",
                                             links, links == 1 ? "" : "s")
                              : "changed meanwhile; run fsck again";
        break;
    case FSCK_SIZE_MISMATCH:
    case FSCK_DIGEST_MISMATCH: {
        const char *qdir = arena_printf(c->a, "%s/quarantine", c->bs->root);
        if (mkdir(qdir, 0750) != 0 && errno != EEXIST) {
            f->outcome = arena_printf(c->a, "cannot create %s: %s", qdir, strerror(errno));
            return;
        }
        const char *colon = strchr(f->digest, ':');
        const char *q = arena_printf(c->a, "%s/%.*s-%s.%lld", qdir, (int)(colon - f->digest),
                                     f->digest, colon + 1, (long long)time(NULL));
        rc = repo_blob_forget(c, f->digest, &f->st, q, &done, &links, &e);
        if (!rc)
            f->outcome = done ? arena_printf(c->a,
                                             "file moved to %s, row and %lld link%s removed: a "
                                             "cache fetches the blob again, a push uploads it "
                                             "again",
                                             q, links, links == 1 ? "" : "s")
                              : "changed meanwhile; run fsck again";
        break;
    }
    case FSCK_UNREADABLE:
        f->outcome = "not repaired: look at the file system";
        return;
    case FSCK_STRAY_PATH:
        f->outcome = "not repaired: not a blob's; remove it by hand if nothing of yours";
        return;
    case FSCK_MISSING_BLOB_ROW:
        f->outcome = "not repaired: push the image again (its blobs upload again) or delete it";
        return;
    case FSCK_MISSING_CHILD:
        f->outcome = "not repaired: push the missing manifest again or delete the index";
        return;
    case FSCK_KINDS:
        return;
    }
    if (rc)
        f->outcome = arena_printf(c->a, "failed: %s", e.msg);
    else if (done)
        f->action = FSCK_REPAIRED;
}

pier_err fsck_run(struct ctx *c, const struct fsck_options *o, struct fsck_report *r,
                  struct perr *e)
{
    memset(r, 0, sizeof *r);
    const char *blobs = arena_printf(c->a, "%s/blobs", c->bs->root);
    struct stat st;
    if (stat(blobs, &st) != 0 || !S_ISDIR(st.st_mode))
        return perr_set(e, PIER_E_UNAVAILABLE, "%s is not a directory: is the blob root mounted?",
                        blobs);
    struct fsck k = {.c = c, .dc = *c, .o = o, .r = r};
    k.dc.a = arena_new();
    pier_err rc = PIER_OK;
    check_strays(&k, blobs, is_alg);
    for (size_t i = 0; !rc && i < sizeof algs / sizeof algs[0]; i++) {
        const char *dir = arena_printf(c->a, "%s/%s", blobs, algs[i].name);
        check_strays(&k, dir, is_fanout);
        for (int x = 0; !rc && x < 256; x++) {
            char xx[3];
            snprintf(xx, sizeof xx, "%02x", x);
            rc = check_dir(&k, algs[i].name, xx, e);
            arena_reset(k.dc.a);
        }
    }
    arena_free(k.dc.a);
    if (!rc)
        rc = check_references(&k, e);
    if (rc)
        return rc;
    r->mass_loss = fsck_mass_loss(r->found[FSCK_MISSING_FILE], r->rows);
    if (!o->repair)
        return PIER_OK;
    for (size_t i = 0; i < r->nfindings; i++) {
        repair_one(&k, &r->findings[i]);
        if (r->findings[i].action == FSCK_REPAIRED)
            r->repaired++;
        else
            r->kept++;
    }
    return PIER_OK;
}
