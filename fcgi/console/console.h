/* console: the JSON endpoints behind the admin page (htdocs/console) under
 * /console/api/: sign in with an access key, a session cookie (HttpOnly,
 * SameSite=Strict, Secure under TLS) kept in the database, a CSRF token on
 * every change, and the control plane's own operations run for the
 * session's principal — one implementation of each operation, two ways in. */
#ifndef PIER_CONSOLE_H
#define PIER_CONSOLE_H

#include "http/request.h"
#include "lib/ctx.h"

struct authn_cache;

/* Answer a request under /console/api/. */
void console_handle(struct ctx *c, struct authn_cache *ac, struct req *r);

#endif
