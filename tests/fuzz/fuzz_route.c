/* Fuzz target: request URIs as Apache passes them — split into path and
 * query by req_init (http/request.c) — and route_parse of raw request paths
 * (registry/route.c), also as given and behind "/v2/". Checks that the split
 * loses nothing and that every accepted route carries a name and a reference
 * that pass their grammars. */
#include <string.h>
#include "fuzz.h"
#include "http/request.h"
#include "lib/util.h"
#include "registry/route.h"

static struct arena *arena;

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

/* What the registry sees of REQUEST_URI: r->path goes to route_parse. */
static void request_uri(const char *uri)
{
    char *env[] = {arena_printf(arena, "REQUEST_URI=%s", uri), "REQUEST_METHOD=GET", NULL};
    FCGX_Request fx;
    memset(&fx, 0, sizeof fx);
    fx.envp = env;
    struct req r;
    req_init(&r, &fx, arena);
    size_t plen = strlen(r.path);
    FUZZ_ASSERT(strncmp(uri, r.path, plen) == 0 && !strchr(r.path, '?'));
    if (uri[plen])
        FUZZ_ASSERT(uri[plen] == '?' && strcmp(uri + plen + 1, r.query) == 0);
    else
        FUZZ_ASSERT(r.query[0] == '\0');
    check(r.path);
    arena_reset(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena)
        arena = arena_new();
    char *s = fuzz_strdup(data, size);
    request_uri(s);
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
