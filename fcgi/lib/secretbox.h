/* secretbox: secrets at rest (upstream credentials, cached upstream tokens)
 * sealed with AES-256-GCM under the server key. The server key is 32 random
 * bytes, base64 in the file named by the server_key_file setting; every node
 * of a registry uses the same file. */
#ifndef PIER_SECRETBOX_H
#define PIER_SECRETBOX_H

#include <stdbool.h>
#include <stddef.h>
#include "lib/err.h"

#define SECRETBOX_KEY_LEN 32
#define SECRETBOX_OVERHEAD (1 + 12 + 16) /* version, nonce, tag */

struct secretbox {
    bool loaded;
    unsigned char key[SECRETBOX_KEY_LEN];
};

/* Read and decode the key file. Refuses files readable by group or others. */
PIER_MUST_USE
pier_err secretbox_load(struct secretbox *sb, const char *path, struct perr *e);
/* Seal len bytes of plain bound to context (e.g. "cache_rules.secret"); out
 * must hold len + SECRETBOX_OVERHEAD bytes; returns the sealed length. */
PIER_MUST_USE
pier_err secretbox_seal(const struct secretbox *sb, const char *context, const void *plain,
                        size_t len, unsigned char *out, size_t *outlen, struct perr *e);
struct arena;
/* Seal a NUL-terminated value into arena memory (*out, *outlen), e.g. for a
 * bytea parameter. */
PIER_MUST_USE
pier_err secretbox_seal_arena(const struct secretbox *sb, struct arena *a, const char *context,
                              const char *value, const char **out, int *outlen, struct perr *e);
/* Open a sealed value; out must hold len bytes; the result is NUL-terminated
 * when room allows (out holds len - SECRETBOX_OVERHEAD + 1). Fails when the
 * value was altered, sealed under another key or for another context. */
PIER_MUST_USE
pier_err secretbox_open(const struct secretbox *sb, const char *context, const unsigned char *in,
                        size_t len, char *out, size_t outsz, size_t *plainlen, struct perr *e);
/* A 32-byte key for one purpose (e.g. "pier bearer token v1") derived from the
 * server key with HMAC-SHA256, so the server key itself signs nothing. */
PIER_MUST_USE
pier_err secretbox_derive(const struct secretbox *sb, const char *label,
                          unsigned char out[SECRETBOX_KEY_LEN], struct perr *e);
/* Forget the key material. */
void secretbox_wipe(struct secretbox *sb);

#endif
