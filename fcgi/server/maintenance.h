/* maintenance: cluster-wide housekeeping — expired upload sessions, temporary
 * files left by crashed uploads and downloads, stale fetch leases, expired
 * negative-cache entries and upstream tokens, the lifecycle policies of
 * repositories (store/lifecycle_run.h), the pull-through cache's byte
 * budgets (cache/budget.h), and (every gc_interval) a garbage-collection
 * sweep (store/gc.h). Whichever node takes the
 * maintenance lock does it; `pierctl cleanup` runs it by hand. */
#ifndef PIER_MAINTENANCE_H
#define PIER_MAINTENANCE_H

#include <stdbool.h>
#include "db/db.h"
#include "lib/config.h"
#include "store/blobstore.h"

/* A temporary download file untouched this long, whose lease is not alive
 * (a live holder renews its lease every few seconds, even while its upstream
 * is silent), is abandoned. */
#define FETCH_TMP_MAX_AGE 600
/* A file under tmp/uploads without an upload session (a monolithic upload
 * writes one while its body arrives, which Apache's body timeouts keep
 * flowing) untouched this long is abandoned: its writer died. */
#define UPLOAD_TMP_ORPHAN_AGE 600

/* A blob file without a row (its publisher died between the file and the
 * row, or the row could not be written) this old is removed. */
#define BLOB_ORPHAN_AGE 3600
/* Each run looks at this many of the 256 directories per digest algorithm
 * (all of them for `pierctl cleanup`), so a large blob root is covered in
 * 16 runs without one run reading all of it. */
#define BLOB_SHARDS_PER_RUN 16

/* Lifecycle policies: each run evaluates the policies of at most this many
 * repositories (those evaluated longest ago first) and deletes at most this
 * many images in all; what is left waits for the next run. `pierctl cleanup`
 * and `pierctl lifecycle run` are not bounded. */
#define LIFECYCLE_REPOS_PER_RUN 100
#define LIFECYCLE_EXPIRIES_PER_RUN 1000

struct maint_report {
    bool ran;           /* false: another node holds the maintenance lock */
    int sessions;       /* expired upload sessions removed */
    int upload_files;   /* files under tmp/uploads removed */
    int fetch_files;    /* files under tmp/fetch removed */
    int rows;           /* expired leases, negative entries and tokens removed */
    int orphan_blobs;   /* blob files without a row removed */
    long long lifecycle_repos;   /* repositories whose lifecycle policy ran to the end */
    long long lifecycle_expired; /* images their policies expired */
    long long expired_images; /* cache images expired to keep the byte budgets */
    bool gc_ran;        /* a garbage-collection sweep ran (gc_interval was due) */
    long long gc_blobs, gc_bytes; /* what it removed */
};

/* full: look at every blob directory for orphans (else a rotating part) and
 * run every lifecycle policy to its end (else a bounded part). */
PIER_MUST_USE
pier_err maintenance_run(const struct config *cfg, struct db *db, const struct blobstore *bs,
                         bool full, struct maint_report *out, struct perr *e);

#endif
