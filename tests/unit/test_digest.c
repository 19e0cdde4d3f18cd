/* Unit tests for digests and the exportable SHA-256 state. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "store/digest.h"
#include "tap.h"

int main(void)
{
    char d[DIGEST_STR_MAX];
    digest_buffer(DIGEST_SHA256, "", 0, d);
    CHECK("sha256 of empty",
          !strcmp(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    digest_buffer(DIGEST_SHA512, "abc", 3, d);
    CHECK("sha512 of abc", !strncmp(d, "sha512:ddaf35a193617aba", 23) && strlen(d) == 135);

    /* A state exported after one chunk and imported elsewhere continues exactly. */
    const char *text = "hello, pull-through world";
    struct hashstate a, b;
    hashstate_init(&a);
    hashstate_update(&a, text, 7);
    unsigned char buf[HASHSTATE_EXPORT_MAX];
    size_t n = hashstate_export(&a, buf);
    CHECK("import accepts export", hashstate_import(&b, buf, n));
    hashstate_update(&b, text + 7, strlen(text) - 7);
    char resumed[DIGEST_STR_MAX], whole[DIGEST_STR_MAX];
    hashstate_final(&b, resumed);
    digest_buffer(DIGEST_SHA256, text, strlen(text), whole);
    CHECK("resumed hash equals one-shot hash", !strcmp(resumed, whole));
    buf[0] = 'X';
    CHECK("foreign state refused", !hashstate_import(&b, buf, n));
    CHECK("short state refused", !hashstate_import(&b, buf, 3));

    char path[] = "/tmp/pier-digest-XXXXXX";
    int fd = mkstemp(path);
    ssize_t w = write(fd, text, strlen(text));
    (void)w;
    long long size = 0;
    CHECK("file digest", digest_file(DIGEST_SHA256, fd, d, &size) && !strcmp(d, whole) &&
                             size == (long long)strlen(text));
    close(fd);
    unlink(path);
    return TAP_DONE();
}
