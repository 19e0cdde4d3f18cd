/* Unit tests for sealing secrets with the server key. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lib/secretbox.h"
#include "tap.h"

static const char *key_file(const char *text, mode_t mode)
{
    static char path[64];
    strcpy(path, "/tmp/pier-key-XXXXXX");
    int fd = mkstemp(path);
    ssize_t w = write(fd, text, strlen(text));
    (void)w;
    close(fd);
    chmod(path, mode);
    return path;
}

int main(void)
{
    struct secretbox sb, other;
    struct perr e;
    const char *k1 = key_file("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n", 0600);
    CHECK("key loads", secretbox_load(&sb, k1, &e) == PIER_OK);
    const char *k2 = key_file("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0600);
    CHECK("second key loads", secretbox_load(&other, k2, &e) == PIER_OK);
    const char *k3 = key_file("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n", 0644);
    struct secretbox x;
    CHECK("world-readable key refused", secretbox_load(&x, k3, &e) != PIER_OK && strstr(e.msg, "chmod"));
    const char *k4 = key_file("c2hvcnQ=\n", 0600);
    CHECK("short key refused", secretbox_load(&x, k4, &e) != PIER_OK);

    unsigned char sealed[256];
    size_t n;
    CHECK("seal", secretbox_seal(&sb, "ctx", "hunter2", 7, sealed, &n, &e) == PIER_OK &&
                      n == 7 + SECRETBOX_OVERHEAD);
    CHECK("ciphertext hides the secret", memmem(sealed, n, "hunter2", 7) == NULL);
    char out[64];
    size_t len;
    CHECK("open", secretbox_open(&sb, "ctx", sealed, n, out, sizeof out, &len, &e) == PIER_OK &&
                      len == 7 && !strcmp(out, "hunter2"));
    CHECK("other context refused", secretbox_open(&sb, "ctx2", sealed, n, out, sizeof out, &len, &e) != PIER_OK);
    CHECK("other key refused", secretbox_open(&other, "ctx", sealed, n, out, sizeof out, &len, &e) != PIER_OK);
    sealed[n - 1] ^= 1;
    CHECK("tampered refused", secretbox_open(&sb, "ctx", sealed, n, out, sizeof out, &len, &e) != PIER_OK);
    unsigned char again[256];
    size_t n2;
    CHECK("sealing again", secretbox_seal(&sb, "ctx", "hunter2", 7, again, &n2, &e) == PIER_OK);
    sealed[n - 1] ^= 1;
    CHECK("nonces differ", memcmp(again, sealed, n) != 0);
    struct secretbox none;
    memset(&none, 0, sizeof none);
    CHECK("no key refuses to seal", secretbox_seal(&none, "ctx", "x", 1, sealed, &n, &e) != PIER_OK &&
                                        strstr(e.msg, "server_key_file"));
    unlink(k1);
    unlink(k2);
    unlink(k3);
    unlink(k4);
    return TAP_DONE();
}
