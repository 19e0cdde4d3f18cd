/* Unit tests for routing raw request paths to endpoints. */
#include "registry/route.h"
#include "tap.h"

static const char *D = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

int main(void)
{
    struct route rt;
    struct perr e;
    char p[512];
    CHECK("base", route_parse("/v2/", &rt, &e) == PIER_OK && rt.kind == ROUTE_BASE);
    CHECK("base without slash", route_parse("/v2", &rt, &e) == PIER_OK && rt.kind == ROUTE_BASE);
    CHECK("catalog", route_parse("/v2/_catalog", &rt, &e) == PIER_OK && rt.kind == ROUTE_CATALOG);
    CHECK("tags", route_parse("/v2/a/b/tags/list", &rt, &e) == PIER_OK &&
                      rt.kind == ROUTE_TAGS && !strcmp(rt.name, "a/b"));
    CHECK("manifest by tag", route_parse("/v2/library/nginx/manifests/1.27", &rt, &e) == PIER_OK &&
                                 rt.kind == ROUTE_MANIFEST && !strcmp(rt.name, "library/nginx") &&
                                 !strcmp(rt.ref, "1.27"));
    snprintf(p, sizeof p, "/v2/x/manifests/%s", D);
    CHECK("manifest by digest", route_parse(p, &rt, &e) == PIER_OK && !strcmp(rt.ref, D));
    snprintf(p, sizeof p, "/v2/x/manifests/sha256%%3A%s", D + 7);
    CHECK("percent-encoded colon decoded", route_parse(p, &rt, &e) == PIER_OK && !strcmp(rt.ref, D));
    snprintf(p, sizeof p, "/v2/a/manifests/b/blobs/%s", D);
    CHECK("name containing 'manifests' component",
          route_parse(p, &rt, &e) == PIER_OK && rt.kind == ROUTE_BLOB &&
              !strcmp(rt.name, "a/manifests/b"));
    CHECK("upload start", route_parse("/v2/a/blobs/uploads/", &rt, &e) == PIER_OK &&
                              rt.kind == ROUTE_UPLOAD_START && !strcmp(rt.name, "a"));
    CHECK("upload start without slash",
          route_parse("/v2/a/blobs/uploads", &rt, &e) == PIER_OK && rt.kind == ROUTE_UPLOAD_START);
    CHECK("upload session",
          route_parse("/v2/a/blobs/uploads/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", &rt, &e) ==
                  PIER_OK && rt.kind == ROUTE_UPLOAD);
    CHECK("upload id not a uuid",
          route_parse("/v2/a/blobs/uploads/../../x", &rt, &e) != PIER_OK);
    CHECK("upload id garbage is BLOB_UPLOAD_UNKNOWN",
          route_parse("/v2/a/blobs/uploads/xyz", &rt, &e) == PIER_E_BLOB_UPLOAD_UNKNOWN);
    snprintf(p, sizeof p, "/v2/a/referrers/%s", D);
    CHECK("referrers", route_parse(p, &rt, &e) == PIER_OK && rt.kind == ROUTE_REFERRERS);
    CHECK("referrers bad digest", route_parse("/v2/a/referrers/sha256:xyz", &rt, &e) ==
                                      PIER_E_DIGEST_INVALID);
    CHECK("blob bad digest", route_parse("/v2/a/blobs/md5:abc", &rt, &e) == PIER_E_DIGEST_INVALID);
    CHECK("encoded slash in name refused",
          route_parse("/v2/a%2Fb/manifests/latest", &rt, &e) == PIER_E_NAME_INVALID);
    CHECK("dotdot name refused",
          route_parse("/v2/../x/manifests/latest", &rt, &e) == PIER_E_NAME_INVALID);
    CHECK("uppercase name refused",
          route_parse("/v2/A/b/manifests/latest", &rt, &e) == PIER_E_NAME_INVALID);
    CHECK("bad tag refused", route_parse("/v2/a/manifests/-x", &rt, &e) == PIER_E_MANIFEST_INVALID);
    CHECK("unknown endpoint", route_parse("/v2/a/b", &rt, &e) == PIER_E_NOT_FOUND);
    CHECK("not v2", route_parse("/v1/x", &rt, &e) == PIER_E_NOT_FOUND);
    CHECK("missing reference", route_parse("/v2/a/manifests/", &rt, &e) != PIER_OK);
    char longp[600] = "/v2/";
    memset(longp + 4, 'a', 300);
    strcpy(longp + 304, "/tags/list");
    CHECK("overlong name refused", route_parse(longp, &rt, &e) == PIER_E_NAME_INVALID);
    return TAP_DONE();
}
