/* errors: OCI distribution-spec error bodies. */
#include "registry/errors.h"

#include <jansson.h>
#include "lib/log.h"

static const struct {
    int status;
    const char *code;
} table[PIER_E__COUNT] = {
    [PIER_OK] = {200, "OK"},
    [PIER_E_BLOB_UNKNOWN] = {404, "BLOB_UNKNOWN"},
    [PIER_E_BLOB_UPLOAD_INVALID] = {400, "BLOB_UPLOAD_INVALID"},
    [PIER_E_BLOB_UPLOAD_UNKNOWN] = {404, "BLOB_UPLOAD_UNKNOWN"},
    [PIER_E_DIGEST_INVALID] = {400, "DIGEST_INVALID"},
    [PIER_E_MANIFEST_BLOB_UNKNOWN] = {400, "MANIFEST_BLOB_UNKNOWN"},
    [PIER_E_MANIFEST_INVALID] = {400, "MANIFEST_INVALID"},
    [PIER_E_MANIFEST_UNKNOWN] = {404, "MANIFEST_UNKNOWN"},
    [PIER_E_NAME_INVALID] = {400, "NAME_INVALID"},
    [PIER_E_NAME_UNKNOWN] = {404, "NAME_UNKNOWN"},
    [PIER_E_SIZE_INVALID] = {400, "SIZE_INVALID"},
    [PIER_E_UNAUTHORIZED] = {401, "UNAUTHORIZED"},
    [PIER_E_DENIED] = {403, "DENIED"},
    [PIER_E_UNSUPPORTED] = {415, "UNSUPPORTED"},
    [PIER_E_TOOMANYREQUESTS] = {429, "TOOMANYREQUESTS"},
    [PIER_E_RANGE_INVALID] = {416, "BLOB_UPLOAD_INVALID"},
    [PIER_E_RANGE_UNSATISFIABLE] = {416, "SIZE_INVALID"},
    [PIER_E_TOO_LARGE] = {413, "SIZE_INVALID"},
    [PIER_E_METHOD] = {405, "UNSUPPORTED"},
    [PIER_E_PAGINATION_INVALID] = {400, "PAGINATION_NUMBER_INVALID"},
    [PIER_E_NOT_FOUND] = {404, "UNSUPPORTED"},
    [PIER_E_BAD_REQUEST] = {400, "UNSUPPORTED"},
    [PIER_E_CONFLICT] = {409, "UNSUPPORTED"},
    [PIER_E_UPSTREAM] = {502, "UPSTREAM_UNAVAILABLE"},
    [PIER_E_UPSTREAM_TIMEOUT] = {504, "UPSTREAM_UNAVAILABLE"},
    [PIER_E_UNAVAILABLE] = {503, "UNAVAILABLE"},
    [PIER_E_STORAGE_FULL] = {507, "UNAVAILABLE"},
    [PIER_E_INTERNAL] = {500, "UNKNOWN"},
};

int oci_status(pier_err code)
{
    if ((int)code <= 0 || code >= PIER_E__COUNT || !table[code].code)
        return 500;
    return table[code].status;
}

const char *oci_code(pier_err code)
{
    if ((int)code <= 0 || code >= PIER_E__COUNT || !table[code].code)
        return "UNKNOWN";
    return table[code].code;
}

void oci_error(struct req *r, const struct perr *e)
{
    int status = oci_status(e->code);
    if (status >= 500 && status != 502 && status != 504)
        log_error("%s %s -> %d %s: %s", r->method, r->path, status, oci_code(e->code), e->msg);
    json_t *err = json_pack("{s:s, s:s}", "code", oci_code(e->code), "message",
                            e->msg[0] ? e->msg : oci_code(e->code));
    if (e->detail[0])
        json_object_set_new(err, "detail", json_string(e->detail));
    json_t *body = json_pack("{s:[o]}", "errors", err);
    if (status == 503)
        resp_header(r, "Retry-After", "5");
    resp_json(r, status, "application/json; charset=utf-8", body);
    json_decref(body);
}
