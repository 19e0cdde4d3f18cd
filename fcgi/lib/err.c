/* err: recording errors with a message for the client. */
#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

pier_err perr_set(struct perr *e, pier_err code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    e->detail[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void perr_detail(struct perr *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
}

void perr_clear(struct perr *e)
{
    e->code = PIER_OK;
    e->msg[0] = '\0';
    e->detail[0] = '\0';
}

const char *perr_name(pier_err code)
{
    static const char *const names[PIER_E__COUNT] = {
        [PIER_OK] = "OK",
        [PIER_E_BLOB_UNKNOWN] = "BLOB_UNKNOWN",
        [PIER_E_BLOB_UPLOAD_INVALID] = "BLOB_UPLOAD_INVALID",
        [PIER_E_BLOB_UPLOAD_UNKNOWN] = "BLOB_UPLOAD_UNKNOWN",
        [PIER_E_DIGEST_INVALID] = "DIGEST_INVALID",
        [PIER_E_MANIFEST_BLOB_UNKNOWN] = "MANIFEST_BLOB_UNKNOWN",
        [PIER_E_MANIFEST_INVALID] = "MANIFEST_INVALID",
        [PIER_E_MANIFEST_UNKNOWN] = "MANIFEST_UNKNOWN",
        [PIER_E_NAME_INVALID] = "NAME_INVALID",
        [PIER_E_NAME_UNKNOWN] = "NAME_UNKNOWN",
        [PIER_E_SIZE_INVALID] = "SIZE_INVALID",
        [PIER_E_UNAUTHORIZED] = "UNAUTHORIZED",
        [PIER_E_DENIED] = "DENIED",
        [PIER_E_UNSUPPORTED] = "UNSUPPORTED",
        [PIER_E_TOOMANYREQUESTS] = "TOOMANYREQUESTS",
        [PIER_E_RANGE_INVALID] = "RANGE_INVALID",
        [PIER_E_RANGE_UNSATISFIABLE] = "RANGE_UNSATISFIABLE",
        [PIER_E_TOO_LARGE] = "TOO_LARGE",
        [PIER_E_METHOD] = "METHOD_NOT_ALLOWED",
        [PIER_E_PAGINATION_INVALID] = "PAGINATION_NUMBER_INVALID",
        [PIER_E_NOT_FOUND] = "NOT_FOUND",
        [PIER_E_BAD_REQUEST] = "BAD_REQUEST",
        [PIER_E_CONFLICT] = "CONFLICT",
        [PIER_E_UPSTREAM] = "UPSTREAM",
        [PIER_E_UPSTREAM_TIMEOUT] = "UPSTREAM_TIMEOUT",
        [PIER_E_UNAVAILABLE] = "UNAVAILABLE",
        [PIER_E_STORAGE_FULL] = "STORAGE_FULL",
        [PIER_E_INTERNAL] = "INTERNAL",
    };
    if ((int)code < 0 || code >= PIER_E__COUNT || !names[code])
        return "UNKNOWN";
    return names[code];
}

pier_err perr_from_name(const char *name)
{
    for (int c = 1; c < PIER_E__COUNT; c++)
        if (strcmp(perr_name((pier_err)c), name) == 0)
            return (pier_err)c;
    return PIER_E_INTERNAL;
}
