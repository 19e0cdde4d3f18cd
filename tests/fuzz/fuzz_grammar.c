/* Fuzz target: the OCI grammars of names, tags, digests and references, media
 * types and unsigned integers (lib/grammar.c). Input: one string. Checks that
 * whatever is accepted has the shape the grammar promises. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include "fuzz.h"
#include "lib/grammar.h"

static bool only(const char *s, const char *set)
{
    return strspn(s, set) == strlen(s);
}

#define LOWER_ALNUM "abcdefghijklmnopqrstuvwxyz0123456789"
#define ALNUM LOWER_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

static void check_message(const struct perr *e)
{
    FUZZ_ASSERT(memchr(e->msg, '\0', sizeof e->msg) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strdup(data, size);
    size_t len = strlen(s);
    struct perr e;

    if (grammar_name(s, &e) == PIER_OK) {
        FUZZ_ASSERT(len >= 1 && len <= NAME_MAX_LEN);
        FUZZ_ASSERT(only(s, LOWER_ALNUM "._-/"));
        FUZZ_ASSERT(strchr(LOWER_ALNUM, s[0]) && strchr(LOWER_ALNUM, s[len - 1]));
        FUZZ_ASSERT(!strstr(s, "//") && !strstr(s, "/.") && !strstr(s, "./") && !strstr(s, "..") &&
                    !strstr(s, "___"));
    } else {
        check_message(&e);
    }

    bool tag_ok = grammar_tag(s, &e) == PIER_OK;
    if (tag_ok) {
        FUZZ_ASSERT(len >= 1 && len <= TAG_MAX_LEN);
        FUZZ_ASSERT(only(s, ALNUM "._-") && strchr(ALNUM "_", s[0]));
    } else {
        check_message(&e);
    }

    enum digest_alg alg = (enum digest_alg)-1;
    bool digest_ok = grammar_digest(s, &alg, &e) == PIER_OK;
    if (digest_ok) {
        FUZZ_ASSERT(grammar_is_digest(s));
        FUZZ_ASSERT(len <= DIGEST_MAX_LEN);
        if (alg == DIGEST_SHA256)
            FUZZ_ASSERT(len == 7 + 64 && !strncmp(s, "sha256:", 7));
        else
            FUZZ_ASSERT(alg == DIGEST_SHA512 && len == 7 + 128 && !strncmp(s, "sha512:", 7));
        FUZZ_ASSERT(only(s + 7, "0123456789abcdef"));
    } else {
        check_message(&e);
    }
    FUZZ_ASSERT(!(tag_ok && digest_ok));

    bool ref_ok = grammar_reference(s, &e) == PIER_OK;
    FUZZ_ASSERT(ref_ok == (grammar_is_digest(s) ? digest_ok : tag_ok));

    if (grammar_media_type(s)) {
        FUZZ_ASSERT(len <= 255 && strchr(s, '/'));
        FUZZ_ASSERT(strchr(ALNUM, s[0]));
    }

    static const long long maxes[] = {0, 1, 9, 10, 128, 65535, 1LL << 40, 1LL << 62, LLONG_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        long long v = -1;
        if (grammar_uint(s, maxes[i], &v)) {
            FUZZ_ASSERT(len > 0 && only(s, "0123456789"));
            FUZZ_ASSERT(v >= 0 && v <= maxes[i]);
            errno = 0;
            char *end;
            long long w = strtoll(s, &end, 10);
            FUZZ_ASSERT(errno == 0 && *end == '\0' && w == v);
        }
    }
    free(s);
    return 0;
}
