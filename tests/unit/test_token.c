/* Unit tests for login passwords and bearer tokens. */
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include "auth/token.h"
#include "tap.h"

int main(void)
{
    char path[] = "/tmp/pier-tokkey-XXXXXX";
    int fd = mkstemp(path);
    const char *k = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
    ssize_t w = write(fd, k, strlen(k));
    (void)w;
    close(fd);
    struct secretbox sb;
    struct perr e;
    CHECK("server key loads", secretbox_load(&sb, path, &e) == PIER_OK);
    unlink(path);
    struct token_keys tk;
    CHECK("keys derive", token_keys_init(&tk, &sb, &e) == PIER_OK);
    struct arena *a = arena_new();
    json_t *claims = json_pack("{s:s, s:i}", "sub", "arn:aws:iam::111122223333:user/alice", "pid", 7);
    char *login = token_sign(a, &tk, TOKEN_LOGIN, claims, 3600);
    char *bearer = token_sign(a, &tk, TOKEN_BEARER, claims, 300);
    CHECK("tokens look like tokens", token_looks_like(login) && token_looks_like(bearer));
    CHECK("no ':' in a login password (aws ecr get-login-password splits on it)", !strchr(login, ':'));
    json_t *out = NULL;
    CHECK("login verifies", token_verify(&tk, TOKEN_LOGIN, login, &out, &e) == PIER_OK &&
                                json_integer_value(json_object_get(out, "pid")) == 7);
    json_decref(out);
    CHECK("bearer is not a login", token_verify(&tk, TOKEN_LOGIN, bearer, &out, &e) == PIER_E_UNAUTHORIZED);
    CHECK("login is not a bearer", token_verify(&tk, TOKEN_BEARER, login, &out, &e) == PIER_E_UNAUTHORIZED);
    char *tampered = arena_strdup(a, login);
    tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
    CHECK("tampered payload refused", token_verify(&tk, TOKEN_LOGIN, tampered, &out, &e) == PIER_E_UNAUTHORIZED);
    char *expired = token_sign(a, &tk, TOKEN_LOGIN, claims, -10);
    CHECK("expired refused", token_verify(&tk, TOKEN_LOGIN, expired, &out, &e) == PIER_E_UNAUTHORIZED &&
                                 strstr(e.msg, "expired"));
    CHECK("garbage refused", token_verify(&tk, TOKEN_LOGIN, "PIER1.x.y", &out, &e) == PIER_E_UNAUTHORIZED);
    /* A download URL's token is a credential of its own kind: neither a login
     * password nor a bearer token, nor the other way round. */
    char *download = token_sign(a, &tk, TOKEN_DOWNLOAD, claims, 60);
    CHECK("download token verifies",
          token_verify(&tk, TOKEN_DOWNLOAD, download, &out, &e) == PIER_OK &&
              json_integer_value(json_object_get(out, "pid")) == 7);
    json_decref(out);
    CHECK("download token is neither login nor bearer",
          token_verify(&tk, TOKEN_LOGIN, download, &out, &e) == PIER_E_UNAUTHORIZED &&
              token_verify(&tk, TOKEN_BEARER, download, &out, &e) == PIER_E_UNAUTHORIZED);
    CHECK("login and bearer are no download tokens",
          token_verify(&tk, TOKEN_DOWNLOAD, login, &out, &e) == PIER_E_UNAUTHORIZED &&
              token_verify(&tk, TOKEN_DOWNLOAD, bearer, &out, &e) == PIER_E_UNAUTHORIZED);
    struct secretbox other;
    memset(&other, 0, sizeof other);
    other.loaded = true;
    struct token_keys tk2;
    CHECK("keys from another server key", token_keys_init(&tk2, &other, &e) == PIER_OK);
    CHECK("another server key refuses", token_verify(&tk2, TOKEN_LOGIN, login, &out, &e) == PIER_E_UNAUTHORIZED);
    json_decref(claims);
    arena_free(a);
    return TAP_DONE();
}
