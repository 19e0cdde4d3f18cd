/* Unit tests for capped buffers: appends up to the cap succeed, the first one
 * past it fails with PIER_E_TOO_LARGE and leaves an empty, usable buffer. */
#include <stdlib.h>
#include "lib/buf.h"
#include "tap.h"

static void heap_buffers(void)
{
    struct buf b;
    buf_init(&b, 10);
    CHECK("empty buffer reads as an empty string",
          buf_len(&b) == 0 && strcmp(buf_str(&b), "") == 0);
    CHECK("append within the cap", buf_add(&b, "hello", 5) == PIER_OK && buf_len(&b) == 5);
    CHECK("contents are NUL-terminated", strcmp(buf_str(&b), "hello") == 0);
    CHECK("printf-style append", buf_addf(&b, "%s%d", "-", 42) == PIER_OK &&
                                     strcmp(buf_str(&b), "hello-42") == 0);
    CHECK("exactly the cap fits", buf_adds(&b, "ab") == PIER_OK && buf_len(&b) == 10);
    CHECK("empty append at the cap", buf_add(&b, "", 0) == PIER_OK && buf_len(&b) == 10);
    CHECK("one byte past the cap is TOO_LARGE", buf_add(&b, "x", 1) == PIER_E_TOO_LARGE);
    CHECK("a failed append frees the contents", buf_len(&b) == 0 && strcmp(buf_str(&b), "") == 0 &&
                                                    b.p == NULL);
    CHECK("usable again after a failure", buf_adds(&b, "again") == PIER_OK &&
                                              strcmp(buf_str(&b), "again") == 0);
    CHECK("printf past the cap is TOO_LARGE", buf_addf(&b, "%d", 123456) == PIER_E_TOO_LARGE &&
                                                  buf_len(&b) == 0);
    CHECK("cap is kept", buf_cap(&b) == 10);
    CHECK("append before a reset", buf_adds(&b, "abc") == PIER_OK);
    buf_reset(&b);
    CHECK("reset keeps memory", buf_len(&b) == 0 && b.p != NULL && strcmp(buf_str(&b), "") == 0);
    CHECK("reserve within the cap", buf_reserve(&b, 10) == PIER_OK && b.alloc >= 11);
    CHECK("reserve past the cap is TOO_LARGE", buf_reserve(&b, 11) == PIER_E_TOO_LARGE &&
                                                   b.p == NULL);
    buf_free(&b);
    CHECK("free leaves an empty buffer", buf_len(&b) == 0 && strcmp(buf_str(&b), "") == 0);
}

static void growth(void)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    pier_err rc = PIER_OK;
    for (int i = 0; i < 10000 && rc == PIER_OK; i++)
        rc = buf_addf(&b, "%04d,", i % 10000);
    CHECK("many appends grow the buffer", rc == PIER_OK && buf_len(&b) == 50000);
    CHECK("grown contents are intact", strncmp(buf_str(&b), "0000,0001,", 10) == 0 &&
                                           strcmp(buf_str(&b) + 49995, "9999,") == 0);
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rc = buf_addf(&b, "[%s]", big);
    CHECK("a long formatted append after short ones",
          rc == PIER_OK && buf_len(&b) == 50000 + 3001 && buf_str(&b)[50000] == '[' &&
              buf_str(&b)[53000] == ']');
    buf_free(&b);
}

static void arena_buffers(void)
{
    struct arena *a = arena_new();
    struct buf b;
    buf_init_arena(&b, a, 64);
    CHECK("arena buffer appends", buf_adds(&b, "0123456789") == PIER_OK &&
                                      buf_addf(&b, "%s", "abcdef") == PIER_OK &&
                                      strcmp(buf_str(&b), "0123456789abcdef") == 0);
    char fill[64];
    memset(fill, 'q', sizeof fill);
    CHECK("arena buffer past the cap is TOO_LARGE",
          buf_add(&b, fill, sizeof fill) == PIER_E_TOO_LARGE && buf_len(&b) == 0);
    CHECK("arena buffer to exactly the cap", buf_add(&b, fill, sizeof fill) == PIER_OK &&
                                                 buf_len(&b) == 64 && buf_str(&b)[64] == '\0');
    arena_free(a);
}

int main(void)
{
    heap_buffers();
    growth();
    arena_buffers();
    return TAP_DONE();
}
