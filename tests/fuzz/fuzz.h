/* fuzz: what every fuzz target shares. A target is one file fuzz_<t>.c that
 * defines LLVMFuzzerTestOneInput; it is linked either with libFuzzer
 * (tests/fuzz/fuzz_<t>, ./configure --enable-fuzzing) or with replay.c
 * (tests/fuzz/replay_<t>, which runs the seed corpus once for ./test.sh).
 * A target must not keep state between inputs: whatever it allocates is
 * freed before it returns. */
#ifndef PIER_FUZZ_H
#define PIER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "lib/arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* One-time setup: quiet logs, a fixed JSON hash seed (reproducible runs). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A NUL-terminated heap copy of the input (free it). An embedded NUL ends
 * the C string early, as it would for a header or a path. */
char *fuzz_strdup(const uint8_t *data, size_t size);

/* Inputs with several text fields put one per line: fuzz_line cuts the next
 * line off *cursor in place and returns it ("" once the input is used up);
 * *cursor then holds the rest, which a target may take as a whole body. */
char *fuzz_line(char **cursor);

/* An invariant of the code under test. Failing it aborts, so that libFuzzer
 * keeps the input as a crash and replay reports it; active in every build. */
#define FUZZ_ASSERT(cond)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                             \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
