/* Unit tests for writing the first administrator's access key: the temporary
 * file next to bootstrap_file must never be followed or reused. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "auth/bootstrap.h"
#include "lib/config.h"
#include "lib/log.h"
#include "tap.h"

static char dir[] = "/tmp/pier-test-bootstrap-XXXXXX";

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void put(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ssize_t w = write(fd, text, strlen(text));
    (void)w;
    close(fd);
    chmod(path, mode);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        printf("not ok - bootstrap temporary directory\n");
        return 1;
    }
    log_setup(PIER_LOG_ERROR, "test"); /* the expected warnings about stale files stay quiet */
    struct config cfg;
    struct perr e;
    config_defaults(&cfg);
    char envfile[PATH_MAX], tmp[PATH_MAX], target[PATH_MAX];
    path_in(envfile, sizeof envfile, "admin.env");
    path_in(tmp, sizeof tmp, "admin.env.tmp");
    path_in(target, sizeof target, "victim");
    snprintf(cfg.bootstrap_file, sizeof cfg.bootstrap_file, "%s", envfile);

    /* Someone planted a symlink at the temporary path, pointing at a file of
     * theirs (or one they want overwritten). */
    put(target, "untouched\n", 0644);
    CHECK("symlink planted", symlink(target, tmp) == 0);
    pier_err rc = bootstrap_write_env(&cfg, "AKIDTEST", "s3cr3t-value", &e);
    CHECK("write succeeds despite the planted symlink", rc == PIER_OK);
    const char *t = slurp(target);
    CHECK("symlink target untouched", t && strcmp(t, "untouched\n") == 0);
    struct stat st;
    CHECK("symlink target keeps its mode", stat(target, &st) == 0 && (st.st_mode & 07777) == 0644);
    CHECK("temporary path is gone", lstat(tmp, &st) < 0);
    CHECK("admin.env is a regular file", lstat(envfile, &st) == 0 && S_ISREG(st.st_mode));
    CHECK("admin.env is 0600", (st.st_mode & 07777) == 0600);
    const char *env = slurp(envfile);
    CHECK("admin.env holds the key",
          env && strstr(env, "AWS_ACCESS_KEY_ID=AKIDTEST\n") &&
              strstr(env, "AWS_SECRET_ACCESS_KEY=s3cr3t-value\n"));

    /* A dangling symlink (to a file that would be created) is not followed either. */
    char absent[PATH_MAX];
    path_in(absent, sizeof absent, "created-through-link");
    unlink(envfile);
    CHECK("dangling symlink planted", symlink(absent, tmp) == 0);
    rc = bootstrap_write_env(&cfg, "AKIDTEST2", "other-secret", &e);
    CHECK("write succeeds despite the dangling symlink", rc == PIER_OK);
    CHECK("nothing created through the dangling symlink", lstat(absent, &st) < 0);
    CHECK("admin.env is 0600 again", stat(envfile, &st) == 0 && (st.st_mode & 07777) == 0600);

    /* A stale regular temporary file, world-readable: replaced, not reused. */
    put(tmp, "stale and readable by everyone\n", 0644);
    rc = bootstrap_write_env(&cfg, "AKIDTEST3", "third-secret", &e);
    CHECK("write succeeds over a stale temporary file", rc == PIER_OK);
    CHECK("admin.env from a fresh file is 0600",
          stat(envfile, &st) == 0 && (st.st_mode & 07777) == 0600);
    env = slurp(envfile);
    CHECK("admin.env holds the new key", env && strstr(env, "AKIDTEST3") && !strstr(env, "stale"));

    unlink(envfile);
    unlink(tmp);
    unlink(target);
    rmdir(dir);
    return TAP_DONE();
}
