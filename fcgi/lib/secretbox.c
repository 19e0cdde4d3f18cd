/* secretbox: AES-256-GCM through OpenSSL EVP; base64 through OpenSSL. */
#include "lib/secretbox.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "lib/arena.h"

#define VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16

pier_err secretbox_load(struct secretbox *sb, const char *path, struct perr *e)
{
    memset(sb, 0, sizeof *sb);
    FILE *f = fopen(path, "r");
    if (!f)
        return perr_set(e, PIER_E_INTERNAL, "cannot read server key %s: %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        return perr_set(e, PIER_E_INTERNAL,
                        "server key %s must not be readable by group or others (chmod 600)", path);
    }
    char text[256];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    unsigned char raw[192];
    int len = n ? EVP_DecodeBlock(raw, (const unsigned char *)text, (int)n) : -1;
    /* EVP_DecodeBlock counts padding as zero bytes. */
    if (len > 0 && n >= 1 && text[n - 1] == '=')
        len--;
    if (len > 0 && n >= 2 && text[n - 2] == '=')
        len--;
    OPENSSL_cleanse(text, sizeof text);
    if (len != SECRETBOX_KEY_LEN) {
        OPENSSL_cleanse(raw, sizeof raw);
        return perr_set(e, PIER_E_INTERNAL,
                        "server key %s must hold 32 bytes in base64 (openssl rand -base64 32)",
                        path);
    }
    memcpy(sb->key, raw, SECRETBOX_KEY_LEN);
    OPENSSL_cleanse(raw, sizeof raw);
    sb->loaded = true;
    return PIER_OK;
}

void secretbox_wipe(struct secretbox *sb)
{
    OPENSSL_cleanse(sb, sizeof *sb);
}

pier_err secretbox_seal(const struct secretbox *sb, const char *context, const void *plain,
                        size_t len, unsigned char *out, size_t *outlen, struct perr *e)
{
    PIER_ASSERT(sb != NULL && context != NULL && (plain != NULL || len == 0) && out != NULL &&
                outlen != NULL);
    if (!sb->loaded)
        return perr_set(e, PIER_E_INTERNAL,
                        "no server key is configured (server_key_file); secrets cannot be stored");
    if (len > 1 << 20)
        return perr_set(e, PIER_E_INTERNAL, "secret too large");
    out[0] = VERSION;
    unsigned char *nonce = out + 1, *ct = out + 1 + NONCE_LEN;
    if (RAND_bytes(nonce, NONCE_LEN) != 1)
        return perr_set(e, PIER_E_INTERNAL, "random number generator failed");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    bool ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, sb->key, nonce) == 1 &&
              EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)context,
                                (int)strlen(context)) == 1 &&
              EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) == 1 &&
              EVP_EncryptFinal_ex(ctx, ct + n, &m) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, ct + n + m) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return perr_set(e, PIER_E_INTERNAL, "encryption failed");
    *outlen = 1 + NONCE_LEN + (size_t)(n + m) + TAG_LEN;
    return PIER_OK;
}

pier_err secretbox_open(const struct secretbox *sb, const char *context, const unsigned char *in,
                        size_t len, char *out, size_t outsz, size_t *plainlen, struct perr *e)
{
    PIER_ASSERT(sb != NULL && context != NULL && in != NULL && out != NULL && outsz > 0);
    if (!sb->loaded)
        return perr_set(e, PIER_E_INTERNAL, "no server key is configured (server_key_file)");
    if (len < SECRETBOX_OVERHEAD || in[0] != VERSION)
        return perr_set(e, PIER_E_INTERNAL, "sealed secret is malformed");
    size_t ctlen = len - SECRETBOX_OVERHEAD;
    if (outsz < ctlen + 1)
        return perr_set(e, PIER_E_INTERNAL, "sealed secret is too large");
    const unsigned char *nonce = in + 1, *ct = in + 1 + NONCE_LEN, *tag = ct + ctlen;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    bool ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, sb->key, nonce) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)context,
                                (int)strlen(context)) == 1 &&
              EVP_DecryptUpdate(ctx, (unsigned char *)out, &n, ct, (int)ctlen) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)tag) == 1 &&
              EVP_DecryptFinal_ex(ctx, (unsigned char *)out + n, &m) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, outsz);
        return perr_set(e, PIER_E_INTERNAL,
                        "sealed secret does not open with this server key (altered, or sealed "
                        "under another key)");
    }
    out[n + m] = '\0';
    if (plainlen)
        *plainlen = (size_t)(n + m);
    return PIER_OK;
}

pier_err secretbox_derive(const struct secretbox *sb, const char *label,
                          unsigned char out[SECRETBOX_KEY_LEN], struct perr *e)
{
    PIER_ASSERT(sb != NULL && label != NULL && out != NULL);
    if (!sb->loaded)
        return perr_set(e, PIER_E_INTERNAL, "no server key is configured (server_key_file)");
    unsigned int n = SECRETBOX_KEY_LEN;
    if (!HMAC(EVP_sha256(), sb->key, SECRETBOX_KEY_LEN, (const unsigned char *)label,
              strlen(label), out, &n))
        return perr_set(e, PIER_E_INTERNAL, "key derivation failed");
    return PIER_OK;
}

pier_err secretbox_seal_arena(const struct secretbox *sb, struct arena *a, const char *context,
                              const char *value, const char **out, int *outlen, struct perr *e)
{
    size_t len = strlen(value), n;
    unsigned char *buf = arena_alloc(a, len + SECRETBOX_OVERHEAD);
    pier_err rc = secretbox_seal(sb, context, value, len, buf, &n, e);
    if (rc)
        return rc;
    *out = (const char *)buf;
    *outlen = (int)n;
    return PIER_OK;
}
