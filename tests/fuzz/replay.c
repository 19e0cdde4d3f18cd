/* replay: runs a fuzz target once over files and directories of inputs, the
 * way ./test.sh replays each seed corpus without libFuzzer. Prints
 * "ok - fuzz_replay_<target> (N inputs)" when every input ran (and, in
 * sanitizer builds, nothing leaked); a crash or a failed invariant prints
 * "not ok - ..." naming the input, then the process dies as it would have. The target name comes from the program name
 * (replay_<target>). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz.h"

/* Sanitizer runtimes call this before they end the process; absent (NULL)
 * in builds without sanitizers. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));
/* LeakSanitizer's check on demand (nonzero: leaks found); NULL without it. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static char target[128] = "unknown";
static char current[4096];       /* the input being run, for the failure line */
static char failure_line[4400];  /* prepared before each input: no formatting when dying */
static size_t failure_len;

static void report_failure(void)
{
    if (failure_len) {
        ssize_t w = write(STDOUT_FILENO, failure_line, failure_len);
        (void)w;
        failure_len = 0;
    }
}

static void on_signal(int sig)
{
    report_failure();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("not ok - fuzz_replay_%s (cannot open %s: %s)\n", target, path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        printf("not ok - fuzz_replay_%s (out of memory reading %s)\n", target, path);
        return -1;
    }
    snprintf(current, sizeof current, "%s", path);
    int len = snprintf(failure_line, sizeof failure_line, "not ok - fuzz_replay_%s (input %s)\n",
                       target, current);
    fflush(stdout);
    failure_len = len > 0 ? (size_t)len : 0;
    /* An exact-size copy, so that reads past the end are caught as with libFuzzer. */
    uint8_t *input = malloc(n ? n : 1);
    if (n)
        memcpy(input, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(input, n);
    free(input);
    failure_len = 0;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Files of a directory in name order (not recursive); -1 on error. */
static int run_dir(const char *dir, int *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        printf("not ok - fuzz_replay_%s (cannot read %s: %s)\n", target, dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0)
                rc = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strncmp(base, "replay_", 7) == 0)
        base += 7;
    snprintf(target, sizeof target, "%s", base);
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", argv[0]);
        return 2;
    }
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(report_failure);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_signal);
    LLVMFuzzerInitialize(&argc, &argv);
    int count = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            printf("not ok - fuzz_replay_%s (%s: %s)\n", target, argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (run_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    if (rc == 0 && __lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check()) {
        printf("not ok - fuzz_replay_%s (memory leaked, see the LeakSanitizer report)\n", target);
        rc = 1;
    }
    if (rc == 0)
        printf("ok - fuzz_replay_%s (%d inputs)\n", target, count);
    fflush(stdout);
    return rc;
}
