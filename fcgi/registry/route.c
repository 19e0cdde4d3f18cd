/* route: suffix matching on the raw path. Names contain '/', so the endpoint is
 * recognised from the end: the last segment is the reference, the segment(s)
 * before it say which endpoint, and everything before that is the name. */
#include "registry/route.h"

#include <string.h>
#include "lib/util.h"

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static pier_err take_name(const char *s, size_t n, struct route *rt, struct perr *e)
{
    if (n == 0)
        return perr_set(e, PIER_E_NAME_INVALID, "invalid repository name: empty");
    if (memchr(s, '%', n))
        return perr_set(e, PIER_E_NAME_INVALID,
                        "invalid repository name: percent-encoded characters are not allowed");
    if (n > NAME_MAX_LEN)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "invalid repository name: %zu characters, the limit is %d", n,
                        NAME_MAX_LEN);
    memcpy(rt->name, s, n);
    rt->name[n] = '\0';
    return grammar_name(rt->name, e);
}

/* The error for a reference that is not even well-formed text. */
static pier_err bad_ref_code(enum route_kind kind)
{
    switch (kind) {
    case ROUTE_MANIFEST: return PIER_E_MANIFEST_INVALID;
    case ROUTE_UPLOAD: return PIER_E_BLOB_UPLOAD_UNKNOWN;
    default: return PIER_E_DIGEST_INVALID;
    }
}

static pier_err take_ref(const char *s, size_t n, struct route *rt, struct perr *e)
{
    char buf[512];
    if (n >= sizeof buf)
        return perr_set(e, bad_ref_code(rt->kind), "reference is too long (%zu characters)", n);
    if (!percent_decode(s, n, buf, false))
        return perr_set(e, bad_ref_code(rt->kind), "reference has a malformed percent-encoding");
    pier_err rc;
    switch (rt->kind) {
    case ROUTE_MANIFEST:
        rc = grammar_reference(buf, e);
        break;
    case ROUTE_UPLOAD:
        rc = uuid_valid(buf) ? PIER_OK
                             : perr_set(e, PIER_E_BLOB_UPLOAD_UNKNOWN,
                                        "upload id is not a UUID issued by this registry");
        break;
    default:
        rc = grammar_digest(buf, NULL, e);
        break;
    }
    if (rc)
        return rc;
    size_t len = strlen(buf); /* validated: a tag, digest or UUID fits */
    if (len >= sizeof rt->ref)
        return perr_set(e, PIER_E_MANIFEST_INVALID, "reference is too long");
    memcpy(rt->ref, buf, len + 1);
    return PIER_OK;
}

pier_err route_parse(const char *path, struct route *rt, struct perr *e)
{
    memset(rt, 0, sizeof *rt);
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        rt->kind = ROUTE_BASE;
        return PIER_OK;
    }
    if (strncmp(path, "/v2/", 4) != 0)
        return perr_set(e, PIER_E_NOT_FOUND, "no such endpoint");
    const char *p = path + 4;
    size_t n = strlen(p);
    if (strcmp(p, "_catalog") == 0) {
        rt->kind = ROUTE_CATALOG;
        return PIER_OK;
    }
    if (ends_with(p, n, "/tags/list")) {
        rt->kind = ROUTE_TAGS;
        return take_name(p, n - 10, rt, e);
    }
    if (ends_with(p, n, "/blobs/uploads/") || ends_with(p, n, "/blobs/uploads")) {
        rt->kind = ROUTE_UPLOAD_START;
        return take_name(p, n - (p[n - 1] == '/' ? 15 : 14), rt, e);
    }
    const char *slash = memrchr(p, '/', n);
    if (!slash)
        return perr_set(e, PIER_E_NOT_FOUND, "no such endpoint");
    size_t rest = (size_t)(slash - p);
    const char *ref = slash + 1;
    size_t reflen = n - rest - 1;
    static const struct {
        const char *suffix;
        enum route_kind kind;
    } kinds[] = {
        {"/blobs/uploads", ROUTE_UPLOAD},
        {"/manifests", ROUTE_MANIFEST},
        {"/blobs", ROUTE_BLOB},
        {"/referrers", ROUTE_REFERRERS},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!ends_with(p, rest, kinds[i].suffix))
            continue;
        rt->kind = kinds[i].kind;
        pier_err rc = take_name(p, rest - strlen(kinds[i].suffix), rt, e);
        if (rc)
            return rc;
        if (reflen == 0)
            return perr_set(e, PIER_E_NOT_FOUND, "no such endpoint: missing reference");
        return take_ref(ref, reflen, rt, e);
    }
    return perr_set(e, PIER_E_NOT_FOUND, "no such endpoint");
}
