/* Fuzz target: Content-Range of upload chunks (grammar_content_range in
 * lib/grammar.c) — the only range header Pier parses itself (Apache answers
 * Range on blob downloads). Input: one header value. Start and end are
 * bounded (at most 2^62), so callers may compute end - start + 1; the corpus
 * keeps the input that once overflowed (max-end). */
#include <string.h>
#include "fuzz.h"
#include "lib/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strdup(data, size);
    long long start = -2, end = -2;
    struct perr e;
    if (grammar_content_range(s, &start, &end, &e) == PIER_OK) {
        FUZZ_ASSERT(start >= 0 && end >= start && end <= GRAMMAR_OFFSET_MAX);
        FUZZ_ASSERT(strchr(s, '-') != NULL);
    } else {
        FUZZ_ASSERT(e.code == PIER_E_RANGE_INVALID);
        FUZZ_ASSERT(memchr(e.msg, '\0', sizeof e.msg) != NULL);
    }
    free(s);
    return 0;
}
