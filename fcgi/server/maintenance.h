/* maintenance: cluster-wide housekeeping — expired upload sessions, temporary
 * files left by crashed uploads and downloads, stale fetch leases, expired
 * negative-cache entries and upstream tokens. Whichever node takes the
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

struct maint_report {
    bool ran;           /* false: another node holds the maintenance lock */
    int sessions;       /* expired upload sessions removed */
    int upload_files;   /* files under tmp/uploads removed */
    int fetch_files;    /* files under tmp/fetch removed */
    int rows;           /* expired leases, negative entries and tokens removed */
};

pier_err maintenance_run(const struct config *cfg, struct db *db, const struct blobstore *bs,
                         struct maint_report *out, struct perr *e);

#endif
