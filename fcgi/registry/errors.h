/* errors: the one mapping from pier_err to the OCI error response
 * ({"errors":[{"code","message","detail"}]}) and its HTTP status. */
#ifndef PIER_OCI_ERRORS_H
#define PIER_OCI_ERRORS_H

#include "http/request.h"
#include "lib/err.h"

/* HTTP status for an error code. */
int oci_status(pier_err code);
/* OCI wire code, e.g. "BLOB_UNKNOWN". */
const char *oci_code(pier_err code);
/* Send e as an OCI error response (headers already added to r are kept).
 * Server-side errors (5xx) are logged. */
void oci_error(struct req *r, const struct perr *e);

#endif
