/* sigv4: AWS Signature Version 4 verification for the control plane
 * (the aws CLI, SDKs, Terraform sign every request this way). */
#ifndef PIER_SIGV4_H
#define PIER_SIGV4_H

#include <stdbool.h>
#include <time.h>
#include "lib/err.h"

struct sigv4_auth {
    char key_id[64];
    char date[9];          /* YYYYMMDD of the credential scope */
    char region[32];
    char service[32];
    char signed_headers[512];
    char signature[65];
};

/* Header lookup by lowercase name; NULL when absent. */
typedef const char *(*sigv4_header_fn)(void *arg, const char *lowercase_name);

struct sigv4_request {
    const char *method;
    const char *path;         /* as sent, percent-encoding intact */
    const char *query;        /* as sent, without '?' */
    sigv4_header_fn header;
    void *arg;
    const char *payload_hash; /* lowercase hex SHA-256 of the body */
};

/* Parse "AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
 * SignedHeaders=a;b, Signature=<hex>". */
PIER_MUST_USE
pier_err sigv4_parse(const char *authorization, struct sigv4_auth *out, struct perr *e);
/* Compute the signature of rq under secret into hex (65 bytes); amz_date is
 * the request's X-Amz-Date (YYYYMMDDTHHMMSSZ). False if a signed header is
 * missing. */
bool sigv4_sign(const struct sigv4_auth *a, const struct sigv4_request *rq, const char *amz_date,
                const char *secret, char hex[65]);
/* Full check: scope (region, service, date matching X-Amz-Date), clock skew
 * within max_skew seconds of now, host among the signed headers, and the
 * signature (constant-time). PIER_E_UNAUTHORIZED with the reason otherwise. */
PIER_MUST_USE
pier_err sigv4_verify(const struct sigv4_auth *a, const struct sigv4_request *rq,
                      const char *secret, const char *region, time_t now, int max_skew,
                      struct perr *e);

#endif
