/* token: HMAC-signed JSON claims, base64url-encoded with OpenSSL. */
#include "auth/token.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define PREFIX "PIER1."

pier_err token_keys_init(struct token_keys *k, const struct secretbox *sb, struct perr *e)
{
    memset(k, 0, sizeof *k);
    pier_err rc = secretbox_derive(sb, "pier login password v1", k->login, e);
    if (!rc)
        rc = secretbox_derive(sb, "pier bearer token v1", k->bearer, e);
    if (!rc)
        rc = secretbox_derive(sb, "pier download url v1", k->download, e);
    k->loaded = rc == PIER_OK;
    return rc;
}

/* base64url without padding, into arena memory. */
static char *b64url(struct arena *a, const unsigned char *in, size_t n)
{
    char *out = arena_alloc(a, 4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* Decode base64url (no padding) into out; returns length or -1. */
static int unb64url(const char *in, size_t n, unsigned char *out, size_t outsz)
{
    if (n == 0 || n > 4 * (outsz / 3))
        return -1;
    char *tmp = malloc(n + 4);
    if (!tmp)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(tmp);
            return -1;
        }
        tmp[i] = c;
    }
    size_t pad = (4 - n % 4) % 4;
    if (pad == 3) {
        free(tmp);
        return -1;
    }
    for (size_t i = 0; i < pad; i++)
        tmp[n + i] = '=';
    int len = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)(n + pad));
    free(tmp);
    if (len < 0)
        return -1;
    return len - (int)pad;
}

static const unsigned char *key_of(const struct token_keys *k, enum token_kind kind)
{
    return kind == TOKEN_LOGIN ? k->login : kind == TOKEN_BEARER ? k->bearer : k->download;
}

/* The "typ" claim of each kind. */
static const char *kind_name(enum token_kind kind)
{
    return kind == TOKEN_LOGIN ? "login" : kind == TOKEN_BEARER ? "bearer" : "download";
}

char *token_sign(struct arena *a, const struct token_keys *k, enum token_kind kind,
                 json_t *payload, long lifetime_seconds)
{
    if (!k->loaded)
        return NULL;
    json_t *claims = json_deep_copy(payload);
    json_object_set_new(claims, "typ", json_string(kind_name(kind)));
    json_object_set_new(claims, "exp", json_integer((json_int_t)time(NULL) + lifetime_seconds));
    char *text = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(claims);
    if (!text)
        return NULL;
    char *body = b64url(a, (const unsigned char *)text, strlen(text));
    free(text);
    char *signed_part = arena_printf(a, PREFIX "%s", body);
    unsigned char mac[32];
    unsigned int maclen = sizeof mac;
    HMAC(EVP_sha256(), key_of(k, kind), SECRETBOX_KEY_LEN, (const unsigned char *)signed_part,
         strlen(signed_part), mac, &maclen);
    return arena_printf(a, "%s.%s", signed_part, b64url(a, mac, maclen));
}

bool token_looks_like(const char *s)
{
    return s && strncmp(s, PREFIX, strlen(PREFIX)) == 0;
}

pier_err token_verify(const struct token_keys *k, enum token_kind kind, const char *token,
                      json_t **payload, struct perr *e)
{
    PIER_ASSERT(k != NULL && token != NULL && payload != NULL);
    *payload = NULL;
    if (!k->loaded)
        return perr_set(e, PIER_E_UNAUTHORIZED, "tokens are not available: no server key");
    size_t len = strlen(token);
    if (!token_looks_like(token) || len > TOKEN_MAX)
        return perr_set(e, PIER_E_UNAUTHORIZED, "malformed token");
    const char *dot = strrchr(token, '.');
    if (!dot || dot <= token + strlen(PREFIX))
        return perr_set(e, PIER_E_UNAUTHORIZED, "malformed token");
    unsigned char mac[32], got[40];
    unsigned int maclen = sizeof mac;
    HMAC(EVP_sha256(), key_of(k, kind), SECRETBOX_KEY_LEN, (const unsigned char *)token,
         (size_t)(dot - token), mac, &maclen);
    int glen = unb64url(dot + 1, strlen(dot + 1), got, sizeof got);
    if (glen != 32 || CRYPTO_memcmp(mac, got, 32) != 0)
        return perr_set(e, PIER_E_UNAUTHORIZED, "token signature is invalid");
    const char *body = token + strlen(PREFIX);
    size_t blen = (size_t)(dot - body);
    unsigned char *text = malloc(blen + 4);
    if (!text)
        return perr_set(e, PIER_E_INTERNAL, "out of memory");
    int tlen = unb64url(body, blen, text, blen + 4);
    json_t *claims = tlen > 0 ? json_loadb((const char *)text, (size_t)tlen, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(claims)) {
        json_decref(claims);
        return perr_set(e, PIER_E_UNAUTHORIZED, "malformed token");
    }
    const char *typ = json_string_value(json_object_get(claims, "typ"));
    if (!typ || strcmp(typ, kind_name(kind)) != 0) {
        json_decref(claims);
        return perr_set(e, PIER_E_UNAUTHORIZED, "wrong kind of token");
    }
    json_t *exp = json_object_get(claims, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) <= (json_int_t)time(NULL)) {
        json_decref(claims);
        return perr_set(e, PIER_E_UNAUTHORIZED, "token has expired");
    }
    *payload = claims;
    return PIER_OK;
}
