/* Unit tests for the OCI grammars: names, tags, digests, Content-Range. */
#include "lib/grammar.h"
#include "tap.h"

static pier_err name(const char *s) { struct perr e; return grammar_name(s, &e); }
static pier_err tag(const char *s) { struct perr e; return grammar_tag(s, &e); }
static pier_err digest(const char *s) { struct perr e; return grammar_digest(s, NULL, &e); }

int main(void)
{
    const char *good_names[] = {"a", "library/nginx", "a/b/c", "a.b", "a_b", "a__b", "a---b",
                                "ecr-public/docker/library/nginx", "0", "a1/b2.c3_d4-e5"};
    for (size_t i = 0; i < sizeof good_names / sizeof *good_names; i++) {
        char label[128];
        snprintf(label, sizeof label, "name '%s' is valid", good_names[i]);
        CHECK(label, name(good_names[i]) == PIER_OK);
    }
    const char *bad_names[] = {"", "../x", "A/b", "a//b", "a/", "/a", "a/..", "-a", "a-",
                               "a..b", "a___b", "a%2Fb", "a b", "a/.b", "a_.b", "a:b", "é"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        char label[128];
        snprintf(label, sizeof label, "name '%s' is NAME_INVALID", bad_names[i]);
        CHECK(label, name(bad_names[i]) == PIER_E_NAME_INVALID);
    }
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = '\0';
    CHECK("256-character name is refused", name(longname) == PIER_E_NAME_INVALID);
    longname[255] = '\0';
    CHECK("255-character name is accepted", name(longname) == PIER_OK);
    {
        struct perr e;
        CHECK("uppercase message names the rule",
              grammar_name("A/b", &e) == PIER_E_NAME_INVALID && strstr(e.msg, "uppercase") != NULL);
        CHECK("empty component message mentions '/'",
              grammar_name("a//b", &e) == PIER_E_NAME_INVALID &&
                  strstr(e.msg, "empty path component"));
    }

    CHECK("tag latest", tag("latest") == PIER_OK);
    CHECK("tag _x", tag("_x") == PIER_OK);
    CHECK("tag 1.27-alpine", tag("1.27-alpine") == PIER_OK);
    CHECK("tag .x refused", tag(".x") == PIER_E_MANIFEST_INVALID);
    CHECK("tag -x refused", tag("-x") == PIER_E_MANIFEST_INVALID);
    CHECK("tag a/b refused", tag("a/b") == PIER_E_MANIFEST_INVALID);
    CHECK("empty tag refused", tag("") == PIER_E_MANIFEST_INVALID);
    char longtag[200];
    memset(longtag, 'a', 129);
    longtag[129] = '\0';
    CHECK("129-character tag refused", tag(longtag) == PIER_E_MANIFEST_INVALID);
    longtag[128] = '\0';
    CHECK("128-character tag accepted", tag(longtag) == PIER_OK);

    const char *h64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char d[300];
    snprintf(d, sizeof d, "sha256:%s", h64);
    CHECK("sha256 digest valid", digest(d) == PIER_OK);
    enum digest_alg alg = DIGEST_SHA512;
    CHECK("sha256 algorithm reported", grammar_digest(d, &alg, NULL) == PIER_OK &&
                                           alg == DIGEST_SHA256);
    snprintf(d, sizeof d, "sha512:%s%s", h64, h64);
    CHECK("sha512 digest valid", digest(d) == PIER_OK);
    snprintf(d, sizeof d, "sha256:%.63s", h64);
    CHECK("63 hex refused", digest(d) == PIER_E_DIGEST_INVALID);
    snprintf(d, sizeof d, "sha256:%sa", h64);
    CHECK("65 hex refused", digest(d) == PIER_E_DIGEST_INVALID);
    snprintf(d, sizeof d, "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");
    CHECK("uppercase hex refused", digest(d) == PIER_E_DIGEST_INVALID);
    CHECK("md5 refused", digest("md5:d41d8cd98f00b204e9800998ecf8427e") == PIER_E_DIGEST_INVALID);
    {
        struct perr e;
        CHECK("unsupported algorithm named",
              grammar_digest("md5:d41d8cd98f00b204e9800998ecf8427e", NULL, &e) ==
                      PIER_E_DIGEST_INVALID &&
                  strstr(e.msg, "unsupported digest algorithm 'md5'"));
    }
    CHECK("no colon refused", digest("sha256") == PIER_E_DIGEST_INVALID);
    CHECK("empty hex refused", digest("sha256:") == PIER_E_DIGEST_INVALID);
    CHECK("garbage refused", digest("sha256:xyz") == PIER_E_DIGEST_INVALID);
    CHECK("path in digest refused", digest("sha256:../../etc/passwd") == PIER_E_DIGEST_INVALID);
    CHECK("is_digest", grammar_is_digest("sha256:x") && !grammar_is_digest("latest"));

    long long s, e2;
    struct perr pe;
    CHECK("content-range 0-9", grammar_content_range("0-9", &s, &e2, &pe) == PIER_OK && s == 0 &&
                                   e2 == 9);
    CHECK("content-range bytes prefix",
          grammar_content_range("bytes 10-19/100", &s, &e2, &pe) == PIER_OK && s == 10 && e2 == 19);
    CHECK("content-range star total",
          grammar_content_range("bytes=5-5/*", &s, &e2, &pe) == PIER_OK && s == 5 && e2 == 5);
    CHECK("content-range end<start refused",
          grammar_content_range("9-0", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range negative refused",
          grammar_content_range("-1-5", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range garbage refused",
          grammar_content_range("abc", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range overflow refused",
          grammar_content_range("0-99999999999999999999999", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range end LLONG_MAX refused",
          grammar_content_range("0-9223372036854775807", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range start and end LLONG_MAX refused",
          grammar_content_range("bytes=9223372036854775807-9223372036854775807/*", &s, &e2, &pe) ==
              PIER_E_RANGE_INVALID);
    CHECK("content-range end 2^62 accepted",
          grammar_content_range("0-4611686018427387904", &s, &e2, &pe) == PIER_OK && s == 0 &&
              e2 == GRAMMAR_OFFSET_MAX);
    CHECK("content-range end 2^62+1 refused",
          grammar_content_range("0-4611686018427387905", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range start 2^62+1 refused",
          grammar_content_range("4611686018427387905-4611686018427387906", &s, &e2, &pe) ==
              PIER_E_RANGE_INVALID);
    CHECK("content-range total above 2^62 refused",
          grammar_content_range("0-9/9223372036854775807", &s, &e2, &pe) == PIER_E_RANGE_INVALID);
    CHECK("content-range bounded length fits",
          grammar_content_range("0-4611686018427387904", &s, &e2, &pe) == PIER_OK &&
              e2 - s + 1 == GRAMMAR_OFFSET_MAX + 1);

    long long v;
    CHECK("uint 42", grammar_uint("42", 100, &v) && v == 42);
    CHECK("uint over max refused", !grammar_uint("101", 100, &v));
    CHECK("uint sign refused", !grammar_uint("+1", 100, &v) && !grammar_uint("-1", 100, &v));
    CHECK("uint empty refused", !grammar_uint("", 100, &v));

    CHECK("media type ok", grammar_media_type("application/vnd.oci.image.manifest.v1+json"));
    CHECK("media type with params ok", grammar_media_type("text/plain; charset=utf-8"));
    CHECK("media type without slash refused", !grammar_media_type("application"));
    CHECK("media type empty subtype refused", !grammar_media_type("application/"));
    return TAP_DONE();
}
