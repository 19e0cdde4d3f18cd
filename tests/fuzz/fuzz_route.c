/* Fuzz target: route_parse of raw request paths (registry/route.c), both as
 * given and behind "/v2/". Checks that every accepted route carries a name
 * and a reference that pass their grammars. */
#include <string.h>
#include "fuzz.h"
#include "lib/util.h"
#include "registry/route.h"

static void check(const char *path)
{
    struct route rt;
    struct perr e;
    if (route_parse(path, &rt, &e) != PIER_OK) {
        FUZZ_ASSERT(memchr(e.msg, '\0', sizeof e.msg) != NULL);
        return;
    }
    FUZZ_ASSERT(strncmp(path, "/v2", 3) == 0);
    struct perr sub;
    switch (rt.kind) {
    case ROUTE_BASE:
    case ROUTE_CATALOG:
        FUZZ_ASSERT(rt.name[0] == '\0' && rt.ref[0] == '\0');
        return;
    case ROUTE_TAGS:
    case ROUTE_UPLOAD_START:
        FUZZ_ASSERT(grammar_name(rt.name, &sub) == PIER_OK);
        return;
    case ROUTE_MANIFEST:
        FUZZ_ASSERT(grammar_name(rt.name, &sub) == PIER_OK);
        FUZZ_ASSERT(grammar_reference(rt.ref, &sub) == PIER_OK);
        return;
    case ROUTE_BLOB:
    case ROUTE_REFERRERS:
        FUZZ_ASSERT(grammar_name(rt.name, &sub) == PIER_OK);
        FUZZ_ASSERT(grammar_digest(rt.ref, NULL, &sub) == PIER_OK);
        return;
    case ROUTE_UPLOAD:
        FUZZ_ASSERT(grammar_name(rt.name, &sub) == PIER_OK);
        FUZZ_ASSERT(uuid_valid(rt.ref));
        return;
    }
    FUZZ_ASSERT(!"unknown route kind");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strdup(data, size);
    check(s);
    size_t n = strlen(s);
    char *v2 = xmalloc(n + 5);
    memcpy(v2, "/v2/", 4);
    memcpy(v2 + 4, s, n + 1);
    check(v2);
    free(v2);
    free(s);
    return 0;
}
