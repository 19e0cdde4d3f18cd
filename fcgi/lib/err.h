/* err: the one error type of the code base. A function that can fail returns
 * pier_err and fills a struct perr with a sentence for the client. The mapping
 * to the wire lives in registry/errors.c (OCI) and in ecrapi/api.c (api_perr,
 * to the exceptions of ecrapi/exceptions.c). */
#ifndef PIER_ERR_H
#define PIER_ERR_H

#include "lib/contract.h"

typedef enum pier_err {
    PIER_OK = 0,
    /* OCI distribution-spec error codes */
    PIER_E_BLOB_UNKNOWN,
    PIER_E_BLOB_UPLOAD_INVALID,
    PIER_E_BLOB_UPLOAD_UNKNOWN,
    PIER_E_DIGEST_INVALID,
    PIER_E_MANIFEST_BLOB_UNKNOWN,
    PIER_E_MANIFEST_INVALID,
    PIER_E_MANIFEST_UNKNOWN,
    PIER_E_NAME_INVALID,
    PIER_E_NAME_UNKNOWN,
    PIER_E_SIZE_INVALID,
    PIER_E_UNAUTHORIZED,
    PIER_E_DENIED,
    PIER_E_UNSUPPORTED,
    PIER_E_TOOMANYREQUESTS,
    /* Same wire codes as above, different HTTP status */
    PIER_E_RANGE_INVALID,      /* 416, BLOB_UPLOAD_INVALID: chunk does not follow */
    PIER_E_RANGE_UNSATISFIABLE, /* 416, SIZE_INVALID: a read Range outside the blob */
    PIER_E_TOO_LARGE,          /* 413, SIZE_INVALID: over a configured limit */
    PIER_E_METHOD,             /* 405, UNSUPPORTED: method not allowed on route */
    PIER_E_PAGINATION_INVALID, /* 400, PAGINATION_NUMBER_INVALID (as docker registry) */
    PIER_E_NOT_FOUND,          /* 404, NOT_FOUND: no such endpoint */
    PIER_E_BAD_REQUEST,        /* 400, UNSUPPORTED: malformed request line/headers */
    PIER_E_CONFLICT,           /* 409, UNSUPPORTED: concurrent modification */
    /* The upstream of a pull-through cache failed and nothing usable is cached */
    PIER_E_UPSTREAM,           /* 502, UPSTREAM_UNAVAILABLE */
    PIER_E_UPSTREAM_TIMEOUT,   /* 504, UPSTREAM_UNAVAILABLE */
    /* Server side */
    PIER_E_UNAVAILABLE,        /* 503: database or blob root unreachable */
    PIER_E_STORAGE_FULL,       /* 507, UNAVAILABLE: the blob root has no room (does not
                                  clear by itself: no Retry-After) */
    PIER_E_INTERNAL,           /* 500: a bug or an I/O failure */
    PIER_E__COUNT
} pier_err;

#define PERR_MSG_MAX 480
#define PERR_DETAIL_MAX 256

struct perr {
    pier_err code;
    char msg[PERR_MSG_MAX];
    char detail[PERR_DETAIL_MAX]; /* optional: a digest, a name, a range */
};

/* Record an error and return its code. msg is printf-formatted; overlong
 * messages are truncated, never overflow. */
pier_err perr_set(struct perr *e, pier_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Attach a detail string (e.g. the offending digest) to the error. */
void perr_detail(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void perr_clear(struct perr *e);
/* Stable identifier for logs and tests, e.g. "MANIFEST_INVALID". */
const char *perr_name(pier_err code);
/* The inverse of perr_name (for codes stored in the database); unknown
 * names are PIER_E_INTERNAL. */
PIER_MUST_USE
pier_err perr_from_name(const char *name);

#endif
