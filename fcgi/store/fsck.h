/* fsck: the consistency check of the blob root against the database
 * (`pierctl fsck`). It walks every fan-out directory of blobs/ together with
 * the blobs rows of the same digests and reports rows without files, files
 * without rows, sizes (and, asked, digests) that do not match, and references
 * of pushed manifests that cannot be served. Uploads and downloads in
 * progress live in tmp/, which it never looks at; a file or row that looks
 * wrong is judged again under the digest's lock (repo_fsck_settle), so a
 * publication or a garbage-collection sweep in flight is never reported.
 * What --repair does, and why it is safe, is in docs/operations.md. */
#ifndef PIER_FSCK_H
#define PIER_FSCK_H

#include <stdbool.h>
#include <jansson.h>
#include <sys/stat.h>
#include "lib/arena.h"
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"
#include "lib/grammar.h"

enum fsck_kind {
    FSCK_MISSING_FILE,     /* a blobs row whose file is not there */
    FSCK_ORPHAN_FILE,      /* a blob file no row names (and no sweep is removing) */
    FSCK_SIZE_MISMATCH,    /* the file's size is not the row's */
    FSCK_DIGEST_MISMATCH,  /* the file's bytes do not hash to its name (--verify-digests) */
    FSCK_UNREADABLE,       /* stat, open or read failed other than "no such file" */
    FSCK_STRAY_PATH,       /* something under blobs/ that is not a blob's file */
    FSCK_MISSING_BLOB_ROW, /* a pushed manifest lists a blob that has no row */
    FSCK_MISSING_CHILD,    /* a pushed index lists a manifest its repository lacks */
    FSCK_KINDS
};

/* "missing-file", "orphan-file", … as the report prints them. */
const char *fsck_kind_name(enum fsck_kind k);

enum fsck_action {
    FSCK_FOUND,    /* reported only (no --repair) */
    FSCK_REPAIRED, /* --repair fixed it; outcome says how */
    FSCK_KEPT,     /* --repair left it; outcome says why */
};

struct fsck_finding {
    enum fsck_kind kind;
    const char *digest;     /* the blob (the child, for references); NULL for a stray path */
    const char *path;       /* the file or directory; NULL for references */
    const char *repository; /* references: the repository and the manifest listing the child */
    const char *manifest;
    const char *detail;
    enum fsck_action action;
    const char *outcome; /* NULL unless repaired or kept */
    long long age;       /* orphan files: seconds since their last change */
    struct stat st;      /* mismatches: the file judged, moved only if it is still this one */
};

struct fsck_options {
    bool verify_digests; /* hash every file (sha256 or sha512, its name says) */
    bool repair;
    bool force; /* repair missing files even when most rows lost theirs */
    int grace;  /* seconds: a file without a row younger than this is kept */
};

struct fsck_report {
    long long rows;         /* blobs rows looked at */
    long long files, bytes; /* files whose size matched their row, their bytes */
    long long verified;     /* files whose digest was computed */
    long long pending;      /* files a sweep removed the row of and removes next */
    long long found[FSCK_KINDS];
    long long problems, repaired, kept;
    bool mass_loss;                /* most rows lost their files: repair refused them */
    struct fsck_finding *findings; /* in the order found (arena of the ctx) */
    size_t nfindings;
};

/* Check the store, and repair what o allows. Findings, their strings and the
 * array live in c->a. PIER_E_UNAVAILABLE when blobs/ is not a directory under
 * the blob root (an NFS mount that is not there: nothing is reported or
 * repaired); database errors as they come. */
PIER_MUST_USE
pier_err fsck_run(struct ctx *c, const struct fsck_options *o, struct fsck_report *r,
                  struct perr *e);

/* ---- pure helpers (unit-tested) ---- */

/* Is name, found in blobs/<alg>/<dir>/, a blob file's name? Then digest is
 * "<alg>:<name>". */
bool fsck_blob_name(const char *alg, const char *dir, const char *name,
                    char digest[DIGEST_MAX_LEN + 1]);
/* Have so many rows lost their files (missing of rows) that the blob root is
 * more likely not mounted, or the wrong one, than damaged? At least 20, and
 * more than half. */
bool fsck_mass_loss(long long missing, long long rows);
/* The exit status of `pierctl fsck`: 0 nothing found, 1 everything found was
 * repaired, 4 problems are left (as e2fsck; 8, an operational error, is the
 * caller's). */
int fsck_exit_status(const struct fsck_report *r);
/* One finding as one line, without a newline (arena). */
const char *fsck_line(struct arena *a, const struct fsck_finding *f);
/* The summary line: "fsck: rows=… files=… bytes=… verified=… pending=…
 * problems=… <kind>=… … repaired=… kept=…" (arena). */
const char *fsck_summary(struct arena *a, const struct fsck_report *r);
/* The whole report as JSON (the caller decrefs). */
json_t *fsck_json(const struct fsck_report *r);

#endif
