/* Unit tests for the request arena. */
#include <stdint.h>
#include "lib/arena.h"
#include "tap.h"

static int cleaned;
static void cleanup(void *p) { cleaned += *(int *)p; }

int main(void)
{
    struct arena *a = arena_new();
    char *s = arena_strdup(a, "hello");
    CHECK("strdup copies", strcmp(s, "hello") == 0);
    char *big = arena_alloc(a, 100000);
    CHECK("large allocation zeroed", big[0] == 0 && big[99999] == 0);
    CHECK("aligned", ((uintptr_t)arena_alloc(a, 3) % 16) == 0);
    char *p = arena_printf(a, "%s-%d", "x", 42);
    CHECK("printf", strcmp(p, "x-42") == 0);
    static int one = 1, two = 2;
    arena_defer(a, cleanup, &one);
    arena_defer(a, cleanup, &two);
    CHECK("used counts bytes", arena_used(a) >= 100000);
    arena_reset(a);
    CHECK("deferred cleanups ran", cleaned == 3);
    CHECK("reset clears usage", arena_used(a) == 0);
    arena_reset(a);
    CHECK("cleanups run once", cleaned == 3);
    for (int i = 0; i < 1000; i++)
        arena_alloc(a, 1000);
    arena_reset(a);
    CHECK("reuse after many blocks", arena_used(a) == 0 && arena_strdup(a, "ok")[0] == 'o');
    CHECK("strndup stops", strcmp(arena_strndup(a, "abcdef", 3), "abc") == 0);
    arena_free(a);
    return TAP_DONE();
}
