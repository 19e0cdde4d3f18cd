/* route: the OCI distribution endpoints, parsed from the raw request path. */
#ifndef PIER_ROUTE_H
#define PIER_ROUTE_H

#include "lib/contract.h"
#include "lib/err.h"
#include "lib/grammar.h"

enum route_kind {
    ROUTE_BASE,          /* /v2/ */
    ROUTE_CATALOG,       /* /v2/_catalog */
    ROUTE_TAGS,          /* /v2/<name>/tags/list */
    ROUTE_MANIFEST,      /* /v2/<name>/manifests/<reference> */
    ROUTE_BLOB,          /* /v2/<name>/blobs/<digest> */
    ROUTE_UPLOAD_START,  /* /v2/<name>/blobs/uploads/ */
    ROUTE_UPLOAD,        /* /v2/<name>/blobs/uploads/<uuid> */
    ROUTE_REFERRERS,     /* /v2/<name>/referrers/<digest> */
};

struct route {
    enum route_kind kind;
    char name[NAME_MAX_LEN + 1];
    char ref[DIGEST_MAX_LEN + 1]; /* tag, digest or upload id, decoded and validated */
};

/* Parse a raw path (percent-encoding intact, no query). Names are checked
 * against the name grammar (encoded characters are refused), references
 * against the tag/digest grammar, upload ids as UUIDs. Errors:
 * PIER_E_NOT_FOUND (no such endpoint), NAME_INVALID, DIGEST_INVALID,
 * MANIFEST_INVALID (bad tag), BLOB_UPLOAD_UNKNOWN (malformed upload id). */
PIER_MUST_USE
pier_err route_parse(const char *path, struct route *rt, struct perr *e);

#endif
