/* digest: content digests. One-shot digests of buffers and files go through
 * OpenSSL's EVP interface; uploads use a resumable SHA-256 whose state is saved
 * in the database between chunks, so any node can continue any upload. */
#ifndef PIER_DIGEST_H
#define PIER_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/sha.h>
#include "lib/grammar.h"

/* "sha512:" + 128 hex + NUL */
#define DIGEST_STR_MAX (DIGEST_MAX_LEN + 1)

/* Digest of a buffer as "<alg>:<hex>". */
void digest_buffer(enum digest_alg alg, const void *data, size_t len, char out[DIGEST_STR_MAX]);
/* Digest of a whole file; false on a read error (errno set). */
bool digest_file(enum digest_alg alg, int fd, char out[DIGEST_STR_MAX], long long *size);

/* Running SHA-256 that can be exported to bytes and imported elsewhere. */
struct hashstate {
    SHA256_CTX ctx;
};

#define HASHSTATE_EXPORT_MAX 256

void hashstate_init(struct hashstate *h);
void hashstate_update(struct hashstate *h, const void *data, size_t len);
/* Serialized form for the database; returns its length (<= HASHSTATE_EXPORT_MAX). */
size_t hashstate_export(const struct hashstate *h, unsigned char *buf);
/* Restore; false when buf is not a state exported by this build. */
bool hashstate_import(struct hashstate *h, const unsigned char *buf, size_t len);
/* Finish into "sha256:<hex>"; h is consumed. */
void hashstate_final(struct hashstate *h, char out[DIGEST_STR_MAX]);

#endif
