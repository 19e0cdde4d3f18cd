/* Fuzz target: credentials in the Authorization header that are checked
 * without the database — Pier's signed tokens (token_verify in auth/token.c),
 * Basic credential decoding (authn_decode_basic) and the claims of login
 * passwords and bearer tokens (authn_identify with "Basic AWS:<token>" and
 * "Bearer <token>", auth/authn.c). Access keys need the database and are
 * left out. Each input is used four ways: as a token, as the base64 part of
 * Basic, as the whole Authorization header, and as the claims of a token this
 * harness signs with the test keys (the fuzzer cannot forge the HMAC, so this
 * is how claims get exercised).
 * Checks: a verified token is an object of the right kind that has not
 * expired; decoded Basic credentials are the base64 text split at its first
 * ':'; identities are consistent. */
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "auth/authn.h"
#include "auth/token.h"
#include "fuzz.h"

static struct arena *arena;
static struct token_keys keys;

static void check_claims(json_t *claims, enum token_kind kind)
{
    FUZZ_ASSERT(json_is_object(claims));
    const char *typ = json_string_value(json_object_get(claims, "typ"));
    FUZZ_ASSERT(typ && !strcmp(typ, kind == TOKEN_LOGIN ? "login" : "bearer"));
    json_t *exp = json_object_get(claims, "exp");
    FUZZ_ASSERT(json_is_integer(exp) && json_integer_value(exp) > (json_int_t)time(NULL) - 5);
}

static void verify(const char *token, bool expect_ok)
{
    static const enum token_kind kinds[] = {TOKEN_LOGIN, TOKEN_BEARER};
    for (size_t i = 0; i < 2; i++) {
        json_t *claims = (json_t *)1;
        struct perr e;
        if (token_verify(&keys, kinds[i], token, &claims, &e) == PIER_OK) {
            FUZZ_ASSERT(expect_ok);
            check_claims(claims, kinds[i]);
            json_decref(claims);
        } else {
            FUZZ_ASSERT(claims == NULL && e.code == PIER_E_UNAUTHORIZED);
        }
    }
}

/* base64url without padding, in arena memory. */
static char *b64url(const unsigned char *in, size_t n)
{
    char *out = arena_alloc(arena, 4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* "PIER1.<claims>.<mac>" signed with the key of kind. */
static char *sign(const uint8_t *claims, size_t n, enum token_kind kind)
{
    char *body = arena_printf(arena, "PIER1.%s", b64url(claims, n));
    unsigned char mac[32];
    unsigned int maclen = sizeof mac;
    HMAC(EVP_sha256(), kind == TOKEN_LOGIN ? keys.login : keys.bearer, sizeof keys.login,
         (const unsigned char *)body, strlen(body), mac, &maclen);
    return arena_printf(arena, "%s.%s", body, b64url(mac, maclen));
}

/* authn_identify on a request whose only header is Authorization; via < 0:
 * any outcome (the header is the raw input). */
static void identify(const char *authorization, int via)
{
    char *env[] = {arena_printf(arena, "HTTP_AUTHORIZATION=%s", authorization),
                   "REQUEST_METHOD=GET", "REQUEST_URI=/v2/", NULL};
    FCGX_Request fx;
    memset(&fx, 0, sizeof fx);
    fx.envp = env;
    struct req r;
    req_init(&r, &fx, arena);
    struct ctx c = {.a = arena, .tk = &keys};
    struct identity id;
    struct perr e;
    if (authn_identify(&c, NULL, &r, &id, &e) == PIER_OK) {
        FUZZ_ASSERT(via < 0 || (int)id.via == via);
        FUZZ_ASSERT(memchr(id.p.arn, '\0', sizeof id.p.arn) && memchr(id.p.name, '\0', sizeof id.p.name));
        if (id.via == VIA_LOGIN_TOKEN)
            FUZZ_ASSERT(id.authenticated && id.p.arn[0]);
        if (id.via == VIA_BEARER)
            FUZZ_ASSERT(json_is_array(id.scope));
        if (id.via == VIA_ANONYMOUS)
            FUZZ_ASSERT(!id.authenticated && id.scope == NULL);
        FUZZ_ASSERT(!id.authenticated || id.expires > 0);
        identity_clear(&id);
    } else {
        FUZZ_ASSERT(e.code == PIER_E_UNAUTHORIZED);
        FUZZ_ASSERT(id.scope == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena) {
        arena = arena_new();
        keys.loaded = true;
        memset(keys.login, 0x11, sizeof keys.login);
        memset(keys.bearer, 0x22, sizeof keys.bearer);
    }
    char *s = fuzz_strdup(data, size);

    verify(s, false);

    char *user, *pass;
    if (authn_decode_basic(arena, s, &user, &pass)) {
        size_t n = strlen(s);
        FUZZ_ASSERT(n % 4 == 0 && !strchr(user, ':'));
        FUZZ_ASSERT(strlen(user) + 1 + strlen(pass) <= n / 4 * 3);
    }

    /* The input as the whole header, except Basic with an access key id,
     * which is checked against the database. */
    if (!strchr(s, '\n') &&
        !(strncasecmp(s, "Basic ", 6) == 0 && authn_decode_basic(arena, s + 6, &user, &pass) &&
          strcmp(user, "AWS") != 0))
        identify(s, -1);

    if (size <= TOKEN_MAX / 2) {
        char *login = sign(data, size, TOKEN_LOGIN);
        char *bearer = sign(data, size, TOKEN_BEARER);
        verify(login, true);
        verify(bearer, true);
        char *plain = arena_printf(arena, "AWS:%s", login);
        size_t n = strlen(plain);
        char *basic = arena_alloc(arena, 6 + 4 * ((n + 2) / 3) + 1);
        memcpy(basic, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)basic + 6, (const unsigned char *)plain, (int)n);
        identify(basic, VIA_LOGIN_TOKEN);
        identify(arena_printf(arena, "Bearer %s", bearer), VIA_BEARER);
    }
    free(s);
    arena_reset(arena);
    return 0;
}
