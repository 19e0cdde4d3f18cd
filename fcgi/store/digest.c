/* digest: EVP one-shot digests and the exportable SHA-256 state.
 * The exportable state needs the SHA256_CTX structure, which OpenSSL 3 still
 * provides but marks deprecated; EVP has no way to serialize a running hash. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "store/digest.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "lib/util.h"

static const char STATE_MAGIC[4] = {'P', 'S', 'H', '1'};

static const EVP_MD *md_of(enum digest_alg alg)
{
    return alg == DIGEST_SHA512 ? EVP_sha512() : EVP_sha256();
}

static void format_digest(enum digest_alg alg, const unsigned char *md, unsigned n,
                          char out[DIGEST_STR_MAX])
{
    const char *name = alg == DIGEST_SHA512 ? "sha512:" : "sha256:";
    memcpy(out, name, 7);
    hex_encode(md, n, out + 7);
}

void digest_buffer(enum digest_alg alg, const void *data, size_t len, char out[DIGEST_STR_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(data, len, md, &n, md_of(alg), NULL);
    format_digest(alg, md, n, out);
}

bool digest_file(enum digest_alg alg, int fd, char out[DIGEST_STR_MAX], long long *size)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, md_of(alg), NULL)) {
        EVP_MD_CTX_free(ctx);
        errno = ENOMEM;
        return false;
    }
    static unsigned char buf[1 << 20];
    long long total = 0;
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            EVP_MD_CTX_free(ctx);
            return false;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += n;
        total += n;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    format_digest(alg, md, mdlen, out);
    if (size)
        *size = total;
    return true;
}

void hashstate_init(struct hashstate *h)
{
    SHA256_Init(&h->ctx);
}

void hashstate_update(struct hashstate *h, const void *data, size_t len)
{
    SHA256_Update(&h->ctx, data, len);
}

size_t hashstate_export(const struct hashstate *h, unsigned char *buf)
{
    _Static_assert(sizeof(STATE_MAGIC) + sizeof(SHA256_CTX) <= HASHSTATE_EXPORT_MAX,
                   "SHA256_CTX does not fit the export buffer");
    memcpy(buf, STATE_MAGIC, sizeof STATE_MAGIC);
    memcpy(buf + sizeof STATE_MAGIC, &h->ctx, sizeof h->ctx);
    return sizeof STATE_MAGIC + sizeof h->ctx;
}

bool hashstate_import(struct hashstate *h, const unsigned char *buf, size_t len)
{
    if (len != sizeof STATE_MAGIC + sizeof h->ctx || memcmp(buf, STATE_MAGIC, sizeof STATE_MAGIC))
        return false;
    memcpy(&h->ctx, buf + sizeof STATE_MAGIC, sizeof h->ctx);
    return true;
}

void hashstate_final(struct hashstate *h, char out[DIGEST_STR_MAX])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_Final(md, &h->ctx);
    format_digest(DIGEST_SHA256, md, SHA256_DIGEST_LENGTH, out);
}
