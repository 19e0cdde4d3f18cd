/* lease: cluster-wide "one download per key" in PostgreSQL. The holder of a
 * lease downloads; everyone else follows the lease row (which says where the
 * bytes are being written and how many are durable) until it is released.
 * A lease that is not renewed within lease_ttl expires, so a crashed worker's
 * download is taken over by the next request. */
#ifndef PIER_LEASE_H
#define PIER_LEASE_H

#include <limits.h>
#include <stdbool.h>
#include "lib/err.h"
#include "server/ctx.h"

enum lease_state { LEASE_NONE, LEASE_RUNNING, LEASE_FAILED };

struct lease {
    enum lease_state state;     /* LEASE_NONE: no row (released or never taken) */
    bool expired;               /* running but not renewed in time */
    char tmp_path[PATH_MAX];
    long long total;            /* -1 when not yet known */
    long long durable;          /* bytes of tmp_path that are on stable storage */
    char message[256];          /* why it failed */
};

/* Try to take the lease for key (free, expired or failed ones can be taken).
 * holder identifies this request. */
pier_err lease_acquire(struct ctx *c, const char *key, const char *holder, bool *acquired,
                       struct perr *e);
pier_err lease_read(struct ctx *c, const char *key, struct lease *l, struct perr *e);
/* Holder only: publish progress and renew. total < 0 keeps the stored value;
 * tmp_path NULL keeps it. *followers (may be NULL) receives how many requests
 * announced they follow. Returns PIER_E_CONFLICT when the lease was lost. */
pier_err lease_progress(struct ctx *c, const char *key, const char *holder, const char *tmp_path,
                        long long total, long long durable, int *followers, struct perr *e);
/* A follower announces itself once, so the holder starts making its progress
 * durable for it. */
pier_err lease_follow(struct ctx *c, const char *key, struct perr *e);
/* Holder only: success, the row goes away. */
pier_err lease_release(struct ctx *c, const char *key, const char *holder, struct perr *e);
/* Holder only: failure; followers see the message until the lease is retaken. */
void lease_fail(struct ctx *c, const char *key, const char *holder, const char *message);

#endif
