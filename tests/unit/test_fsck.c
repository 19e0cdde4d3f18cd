/* Unit tests for the pure parts of fsck: blob names, the unmounted-root
 * guard, the exit status and the report's lines. */
#include <string.h>
#include "store/fsck.h"
#include "tap.h"

static const char *H64 = "ab3f0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

int main(void)
{
    char d[DIGEST_MAX_LEN + 1];
    const char *h = H64 + 1; /* 64 hex digits starting with "b3" */
    CHECK("a sha256 file name is a blob", fsck_blob_name("sha256", "b3", h, d) &&
                                              strcmp(d + 7, h) == 0 &&
                                              strncmp(d, "sha256:", 7) == 0);
    CHECK("a name in the wrong fan-out directory is not", !fsck_blob_name("sha256", "ab", h, d));
    CHECK("63 hex digits are not", !fsck_blob_name("sha256", "3f", h + 1, d));
    CHECK("upper case is not",
          !fsck_blob_name("sha256", "B3",
                          "B3f0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", d));
    CHECK("a temporary name is not", !fsck_blob_name("sha256", "b3", "b3.tmp", d));
    CHECK("64 hex digits under sha512 are not", !fsck_blob_name("sha512", "b3", h, d));
    char h128[129];
    memcpy(h128, h, 64);
    memcpy(h128 + 64, h, 64);
    h128[128] = '\0';
    CHECK("a sha512 file name is a blob",
          fsck_blob_name("sha512", "b3", h128, d) && strncmp(d, "sha512:b3", 9) == 0);
    CHECK("an unknown algorithm is not", !fsck_blob_name("md5", "b3", h, d));

    CHECK("a few missing files are damage", !fsck_mass_loss(19, 19));
    CHECK("most of many rows missing looks unmounted", fsck_mass_loss(20, 39));
    CHECK("half of them is still damage", !fsck_mass_loss(20, 40));

    struct fsck_report r = {0};
    CHECK("clean: 0", fsck_exit_status(&r) == 0);
    r.problems = 3;
    CHECK("found, not repaired: 4", fsck_exit_status(&r) == 4);
    r.repaired = 2;
    r.kept = 1;
    CHECK("some kept: 4", fsck_exit_status(&r) == 4);
    r.repaired = 3;
    r.kept = 0;
    CHECK("all repaired: 1", fsck_exit_status(&r) == 1);

    struct arena *a = arena_new();
    struct fsck_finding f = {
        .kind = FSCK_ORPHAN_FILE, .digest = "sha256:00", .path = "/x", .detail = "no row names it"};
    CHECK("a finding's line", !strcmp(fsck_line(a, &f), "orphan-file sha256:00: no row names it"));
    f.action = FSCK_KEPT;
    f.outcome = "younger than the grace";
    CHECK("a kept finding says why",
          !strcmp(fsck_line(a, &f),
                  "orphan-file sha256:00: no row names it [kept: younger than the grace]"));
    struct fsck_finding g = {.kind = FSCK_STRAY_PATH,
                             .path = "/root/blobs/x",
                             .detail = "odd",
                             .action = FSCK_REPAIRED,
                             .outcome = "gone"};
    CHECK("a stray path names the path",
          !strcmp(fsck_line(a, &g), "stray-path /root/blobs/x: odd [repaired: gone]"));

    struct fsck_report s = {.rows = 5,
                            .files = 4,
                            .bytes = 100,
                            .problems = 2,
                            .repaired = 1,
                            .kept = 1,
                            .findings = &f,
                            .nfindings = 1};
    s.found[FSCK_MISSING_FILE] = 1;
    s.found[FSCK_DIGEST_MISMATCH] = 1;
    CHECK("the summary counts every kind",
          !strcmp(fsck_summary(a, &s),
                  "fsck: rows=5 files=4 bytes=100 verified=0 pending=0 problems=2 missing-file=1 "
                  "orphan-file=0 size-mismatch=0 digest-mismatch=1 unreadable=0 stray-path=0 "
                  "missing-blob-row=0 missing-child-manifest=0 repaired=1 kept=1"));
    json_t *j = fsck_json(&s);
    json_t *first = json_array_get(json_object_get(j, "findings"), 0);
    CHECK("json carries the counts and the findings",
          json_integer_value(json_object_get(json_object_get(j, "counts"), "digest-mismatch")) ==
                  1 &&
              json_integer_value(json_object_get(j, "problems")) == 2 && first &&
              !strcmp(json_string_value(json_object_get(first, "kind")), "orphan-file") &&
              !strcmp(json_string_value(json_object_get(first, "action")), "kept") &&
              !strcmp(json_string_value(json_object_get(first, "path")), "/x"));
    json_decref(j);
    arena_free(a);
    return TAP_DONE();
}
