/* Fuzz target: query strings — query_get with the keys handlers look up,
 * percent_decode in both modes, percent_encode, and the scope parameters of
 * the token endpoint (authn_scopes). Input: line 1 is the query string (as
 * after '?'), line 2 an optional extra key to look up.
 * Checks: decoded values fit their buffers and hold no NUL, path mode never
 * yields a '/' that was not in the input, decode(encode(s)) == s, and every
 * accepted scope names a valid repository with known actions. */
#include <string.h>
#include <jansson.h>
#include "auth/authn.h"
#include "fuzz.h"
#include "lib/grammar.h"
#include "lib/util.h"

/* Bytes percent_encode needs for s, without the NUL. */
static size_t encoded_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("-._~/:", c);
        n += plain ? 1 : 3;
    }
    return n;
}

static void roundtrip(const char *plain)
{
    size_t need = encoded_len(plain);
    char *enc = xmalloc(need + 1);
    FUZZ_ASSERT(percent_encode(plain, enc, need + 1) == need);
    FUZZ_ASSERT(strlen(enc) == need);
    char *dec = xmalloc(need + 1);
    FUZZ_ASSERT(percent_decode(enc, need, dec, true));
    FUZZ_ASSERT(strcmp(dec, plain) == 0);
    /* A buffer one byte short truncates at a character boundary. */
    if (need > 0) {
        size_t got = percent_encode(plain, enc, need);
        FUZZ_ASSERT(got < need && strlen(enc) == got);
    }
    free(dec);
    free(enc);
}

static void lookup(const char *query, const char *key)
{
    static const size_t sizes[] = {1, 2, 8, 64, 256, 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char out[1024];
        memset(out, 'x', sizeof out);
        int rc = query_get(query, key, out, sizes[i]);
        FUZZ_ASSERT(rc >= -1 && rc <= 1);
        if (rc == 1)
            FUZZ_ASSERT(strlen(out) < sizes[i]);
    }
}

static void check_scopes(const char *query)
{
    json_t *access = json_array();
    bool catalog = false;
    struct perr e;
    if (authn_scopes(query, access, &catalog, &e) == PIER_OK) {
        size_t i;
        json_t *grant;
        json_array_foreach(access, i, grant) {
            const char *name = json_string_value(json_object_get(grant, "n"));
            struct perr sub;
            FUZZ_ASSERT(name && grammar_name(name, &sub) == PIER_OK);
            json_t *acts = json_object_get(grant, "a");
            FUZZ_ASSERT(json_is_array(acts));
            size_t j;
            json_t *a;
            json_array_foreach(acts, j, a) {
                const char *s = json_string_value(a);
                FUZZ_ASSERT(s && (!strcmp(s, "pull") || !strcmp(s, "push") ||
                                  !strcmp(s, "delete") || !strcmp(s, "*")));
            }
        }
    } else {
        FUZZ_ASSERT(memchr(e.msg, '\0', sizeof e.msg) != NULL);
    }
    json_decref(access);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_strdup(data, size);
    char *cursor = buf;
    const char *query = fuzz_line(&cursor);
    const char *key = fuzz_line(&cursor);
    size_t n = strlen(query);

    static const char *const keys[] = {"n", "last", "digest", "mount", "from", "artifactType",
                                       "q", "name", "scope"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        lookup(query, keys[i]);
    lookup(query, key);

    char *dec = xmalloc(n + 1);
    if (percent_decode(query, n, dec, true)) {
        FUZZ_ASSERT(strlen(dec) <= n);
        roundtrip(dec);
    }
    if (percent_decode(query, n, dec, false)) {
        FUZZ_ASSERT(strlen(dec) <= n);
        if (!strchr(query, '/'))
            FUZZ_ASSERT(!strchr(dec, '/'));
    }
    free(dec);
    roundtrip(query);

    check_scopes(query);
    free(buf);
    return 0;
}
