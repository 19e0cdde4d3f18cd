/* Fuzz target: what an upstream registry answers to authenticate us — the
 * WWW-Authenticate challenge (upstream_parse_challenge) and the token
 * service's JSON (upstream_parse_token), both in cache/upstream.c. Input: a
 * header value or a token response; both parsers see every input.
 * Checks: parsed fields are terminated within their buffers, the scheme is a
 * bare token, a token becomes one header line, its lifetime is 1..86400 s. */
#include <ctype.h>
#include <string.h>
#include "cache/upstream.h"
#include "fuzz.h"

static struct arena *arena;

#define TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena)
        arena = arena_new();
    char *s = fuzz_strdup(data, size);
    struct challenge ch;
    if (upstream_parse_challenge(s, &ch)) {
        FUZZ_ASSERT(TERMINATED(ch.scheme) && TERMINATED(ch.realm) && TERMINATED(ch.service) &&
                    TERMINATED(ch.scope));
        FUZZ_ASSERT(ch.scheme[0] != '\0');
        for (const char *p = ch.scheme; *p; p++)
            FUZZ_ASSERT(isalpha((unsigned char)*p));
    }
    free(s);

    int lifetime = -1;
    const char *auth = upstream_parse_token(arena, (const char *)data, size, &lifetime);
    FUZZ_ASSERT(lifetime >= 1 && lifetime <= 86400);
    if (auth) {
        FUZZ_ASSERT(strncmp(auth, "Bearer ", 7) == 0 && auth[7] != '\0');
        FUZZ_ASSERT(!strpbrk(auth, "\r\n") && strlen(auth) < 7 + 8000);
    }
    arena_reset(arena);
    return 0;
}
