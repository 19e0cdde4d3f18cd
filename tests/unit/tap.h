/* tap: the smallest test harness that works — each check prints one
 * "ok - name" or "not ok - name" line; the runner counts them. */
#ifndef PIER_TAP_H
#define PIER_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_failed;

#define CHECK(name, cond)                                                              \
    do {                                                                               \
        if (cond) {                                                                    \
            printf("ok - %s\n", name);                                                 \
        } else {                                                                       \
            printf("not ok - %s (%s:%d: %s)\n", name, __FILE__, __LINE__, #cond);      \
            tap_failed++;                                                              \
        }                                                                              \
    } while (0)

#define TAP_DONE() (fflush(stdout), tap_failed ? 1 : 0)

#endif
