/* Unit tests for UUIDs, percent-encoding and query strings. */
#include <limits.h>
#include "lib/util.h"
#include "tap.h"

int main(void)
{
    char u[UUID_STR_LEN], v[UUID_STR_LEN];
    CHECK("uuid generated", uuid_v4(u) && uuid_valid(u));
    CHECK("uuid version 4", u[14] == '4');
    CHECK("uuids differ", uuid_v4(v) && strcmp(u, v) != 0);
    CHECK("uuid uppercase refused", !uuid_valid("0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9"));
    CHECK("uuid short refused", !uuid_valid("0f1e2d3c"));
    CHECK("uuid traversal refused", !uuid_valid("../../../../../../../etc/passwd00000"));

    char out[64];
    CHECK("decode colon", percent_decode("sha256%3Aab", 11, out, false) && !strcmp(out, "sha256:ab"));
    CHECK("decode slash refused", !percent_decode("a%2Fb", 5, out, false));
    CHECK("decode NUL refused", !percent_decode("a%00b", 5, out, false));
    CHECK("decode truncated refused", !percent_decode("a%4", 3, out, false));
    CHECK("plus kept in paths", percent_decode("a+b", 3, out, false) && !strcmp(out, "a+b"));

    const char *q = "n=10&last=a%2Fb&digest=sha256%3Aabc&empty=&flag";
    CHECK("query n", query_get(q, "n", out, sizeof out) == 1 && !strcmp(out, "10"));
    CHECK("query encoded slash decoded", query_get(q, "last", out, sizeof out) == 1 && !strcmp(out, "a/b"));
    CHECK("query digest", query_get(q, "digest", out, sizeof out) == 1 && !strcmp(out, "sha256:abc"));
    CHECK("query empty", query_get(q, "empty", out, sizeof out) == 1 && out[0] == 0);
    CHECK("query flag", query_get(q, "flag", out, sizeof out) == 1);
    CHECK("query absent", query_get(q, "nope", out, sizeof out) == 0);
    CHECK("query prefix is not a key", query_get("nn=1", "n", out, sizeof out) == 0);
    char small[3];
    CHECK("query too long", query_get(q, "digest", small, sizeof small) == -1);

    percent_encode("a b/c", out, sizeof out);
    CHECK("encode", !strcmp(out, "a%20b/c"));

    CHECK("size_add adds", size_add(3, 4) == 7);
    CHECK("size_add saturates", size_add(LLONG_MAX - 1, 5) == LLONG_MAX &&
                                    size_add(5000000000000000000LL, 5000000000000000000LL) == LLONG_MAX);
    return TAP_DONE();
}
