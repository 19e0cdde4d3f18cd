/* authn: who is calling — from the Authorization header (Basic with a login
 * password or an access key, or Bearer with a token from /token) — and the
 * challenge that tells clients how to log in. */
#ifndef PIER_AUTHN_H
#define PIER_AUTHN_H

#include "auth/authz.h"
#include "http/request.h"
#include "lib/contract.h"
#include "lib/ctx.h"

struct authn_cache;
struct authn_cache *authn_cache_new(void);
void authn_cache_free(struct authn_cache *c);

/* Fill id from the request. No Authorization header: anonymous, PIER_OK.
 * Credentials that do not check out: PIER_E_UNAUTHORIZED (never silently
 * anonymous). ac caches access-key checks for policy_cache_ms. */
PIER_MUST_USE
pier_err authn_identify(struct ctx *c, struct authn_cache *ac, struct req *r, struct identity *id,
                        struct perr *e);

/* The query parameter of a layer download URL that carries its token:
 * /v2/<name>/blobs/<digest>?download_token=<token>. */
#define AUTHN_DOWNLOAD_PARAM "download_token"

/* A token for a layer download URL (GetDownloadUrlForLayer): who holds it
 * may GET (or HEAD) blob digest of repository name for lifetime seconds, as
 * c->who — and only while c->who may still do so. In arena memory; NULL when
 * c->who is no authenticated principal or there is no server key. */
char *authn_download_token(struct ctx *c, const char *name, const char *digest, long lifetime);
/* The identity the download token of a request for blob digest of
 * repository name carries (the principal that asked for the URL). Refused
 * with PIER_E_DENIED — never a login challenge: the URL is the credential —
 * when the token is malformed, altered, expired or issued for another blob,
 * or the access key it was asked with was deleted or deactivated. */
PIER_MUST_USE
pier_err authn_download(struct ctx *c, struct authn_cache *ac, const char *token, const char *name,
                        const char *digest, struct identity *id, struct perr *e);

/* Add the WWW-Authenticate challenge (scope may be NULL, e.g.
 * "repository:x:pull"). */
void authn_challenge(struct ctx *c, struct req *r, const char *scope);

/* The public base URL of this registry (public_url, else from the request). */
const char *authn_public_url(struct ctx *c, struct req *r);

/* GET /token: issue a bearer token for the requested scopes (the query's
 * scope, Basic credentials or none). POST /token with an
 * application/x-www-form-urlencoded body is the OAuth2 password grant:
 * username, password and scope come from the form; another grant_type is
 * PIER_E_BAD_REQUEST. A refused login fails with PIER_E_UNAUTHORIZED and its
 * own Basic challenge already added; the caller writes every error (registry_token). When credentials
 * were accepted, c->who is their identity afterwards (the audit trail). */
PIER_MUST_USE
pier_err authn_token_endpoint(struct ctx *c, struct authn_cache *ac, struct req *r,
                              struct perr *e);

/* PIER_OK when key_id is "" or names an active access key; otherwise
 * PIER_E_UNAUTHORIZED (the key was deleted or deactivated). Cached per worker
 * for policy_cache_ms. */
PIER_MUST_USE
pier_err authn_key_live(struct ctx *c, struct authn_cache *ac, const char *key_id, struct perr *e);

/* Basic credentials (username/password) to an identity, as /token does.
 * Access keys: PIER_E_TOOMANYREQUESTS (e->detail: seconds to wait) after
 * repeated failures from the caller's address. */
PIER_MUST_USE
pier_err authn_basic(struct ctx *c, struct authn_cache *ac, const char *user, const char *pass,
                     struct identity *id, struct perr *e);

/* Decode the base64 part of "Basic <b64>" into user and pass (arena memory).
 * False when it is not padded base64 of "user:pass" without NUL bytes. */
bool authn_decode_basic(struct arena *a, const char *b64, char **user, char **pass);

/* The scope parameters of a /token query string (repeatable, each a
 * space-separated list of "repository:<name>:<actions>" or
 * "registry:catalog:*"): appends {"n": name, "a": [actions]} to access and
 * sets *catalog. PIER_E_BAD_REQUEST or PIER_E_NAME_INVALID when one is malformed. */
PIER_MUST_USE
pier_err authn_scopes(const char *query, json_t *access, bool *catalog, struct perr *e);

/* Housekeeping: forget failed logins older than a day that block nothing
 * (the login_failures table belongs to this module); *removed counts them. */
PIER_MUST_USE
pier_err authn_failures_expire(struct ctx *c, long long *removed, struct perr *e);

#endif
