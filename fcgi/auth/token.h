/* token: signed, self-contained credentials — login passwords (the ECR
 * model: user "AWS", valid 12 h), bearer tokens from /token and the tokens
 * of layer download URLs (GetDownloadUrlForLayer). Format
 * "PIER1.<base64url JSON payload>.<base64url HMAC-SHA256>", each kind signed
 * with its own key derived from the server key. Verifying one is a single
 * HMAC: no database, no slow hash. */
#ifndef PIER_TOKEN_H
#define PIER_TOKEN_H

#include <stdbool.h>
#include <jansson.h>
#include "lib/arena.h"
#include "lib/err.h"
#include "lib/secretbox.h"

#define TOKEN_MAX 8192

enum token_kind { TOKEN_LOGIN, TOKEN_BEARER, TOKEN_DOWNLOAD };

struct token_keys {
    bool loaded;
    unsigned char login[SECRETBOX_KEY_LEN];
    unsigned char bearer[SECRETBOX_KEY_LEN];
    unsigned char download[SECRETBOX_KEY_LEN];
};

PIER_MUST_USE
pier_err token_keys_init(struct token_keys *k, const struct secretbox *sb, struct perr *e);

/* Sign payload (not consumed; "typ" and "exp" = now + lifetime are added).
 * Returns the token in arena memory, or NULL. */
char *token_sign(struct arena *a, const struct token_keys *k, enum token_kind kind,
                 json_t *payload, long lifetime_seconds);
/* Verify format, signature, kind and expiry. On success *payload (caller
 * decrefs) holds the claims. PIER_E_UNAUTHORIZED with a reason otherwise. */
PIER_MUST_USE
pier_err token_verify(const struct token_keys *k, enum token_kind kind, const char *token,
                      json_t **payload, struct perr *e);
/* True when s has the shape of a Pier token (cheap pre-check). */
bool token_looks_like(const char *s);

#endif
