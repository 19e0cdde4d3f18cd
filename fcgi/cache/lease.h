/* lease: cluster-wide "one download per key" in PostgreSQL (the fetch_leases
 * table, which no other module queries). The holder of a lease downloads;
 * everyone else follows the lease row (which says where the bytes are being
 * written and how many are durable) until it is released.
 * The holder renews its lease every lease_ttl/4 while it lives (also while
 * the upstream sends nothing); a lease not renewed within lease_ttl expires,
 * so a crashed worker's download is taken over quickly by the next request.
 * A failed lease stays until its expiry: requests that come meanwhile get the
 * same error instead of downloading again (a few seconds for an upstream
 * error, the rule's negative-cache time for bytes that were wrong). */
#ifndef PIER_LEASE_H
#define PIER_LEASE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include "lib/contract.h"
#include "lib/err.h"
#include "lib/ctx.h"

enum lease_state { LEASE_NONE, LEASE_RUNNING, LEASE_FAILED };

struct lease {
    enum lease_state state;     /* LEASE_NONE: no row (released or never taken) */
    bool expired;               /* running but not renewed in time */
    char tmp_path[PATH_MAX];
    long long total;            /* -1 when not yet known */
    long long durable;          /* bytes of tmp_path that are on stable storage */
    char message[256];          /* why it failed */
    pier_err code;              /* ... and the error its followers answer with */
};

/* Try to take the lease for key (free or expired ones can be taken).
 * holder identifies this request. */
PIER_MUST_USE
pier_err lease_acquire(struct ctx *c, const char *key, const char *holder, bool *acquired,
                       struct perr *e);
PIER_MUST_USE
pier_err lease_read(struct ctx *c, const char *key, struct lease *l, struct perr *e);
/* Holder only: publish progress and renew. total < 0 keeps the stored value;
 * tmp_path NULL keeps it. *followers (may be NULL) receives how many requests
 * announced they follow. Returns PIER_E_CONFLICT when the lease was lost. */
PIER_MUST_USE
pier_err lease_progress(struct ctx *c, const char *key, const char *holder, const char *tmp_path,
                        long long total, long long durable, int *followers, struct perr *e);
/* Holder only: extend the lease by lease_ttl without touching its progress.
 * PIER_E_CONFLICT when it was lost. */
PIER_MUST_USE
pier_err lease_renew(struct ctx *c, const char *key, const char *holder, struct perr *e);
/* How often a holder renews: a quarter of lease_ttl, at least every 500 ms. */
int lease_renew_ms(const struct ctx *c);
/* Requests that come within this many seconds after a download failed for
 * a reason that may clear at once (the transfer broke, the upstream timed
 * out) get the same answer instead of trying again. */
#define LEASE_FAIL_SHARE_S 3

/* Renewing a lease from upstream_req.on_tick (arg: a lease_keeper). */
struct lease_keeper {
    struct ctx *c;
    const char *key, *holder;
    int64_t last;
};
void lease_keeper_tick(void *arg);
/* A follower announces itself once, so the holder starts making its progress
 * durable for it. */
PIER_MUST_USE
pier_err lease_follow(struct ctx *c, const char *key, struct perr *e);
/* Holder only: success, the row goes away. A release that fails leaves a
 * lease that expires after lease_ttl, so callers may drop the result. */
PIER_MUST_USE
pier_err lease_release(struct ctx *c, const char *key, const char *holder, struct perr *e);
/* Holder only: failure; everyone asking for key during the next keep_s
 * seconds gets code and message (0: only those already waiting may see it;
 * manifests, which are small and whose upstream answers may change from one
 * second to the next, are asked for again at once). */
void lease_fail(struct ctx *c, const char *key, const char *holder, pier_err code,
                const char *message, int keep_s);

/* ---- housekeeping and rule changes ---- */
/* Forget the failed downloads of rule rule_id's blobs (its upstream changed). */
PIER_MUST_USE
pier_err lease_forget_failures(struct ctx *c, long long rule_id, struct perr *e);
/* The digests of rule rule_id's blobs that are being downloaded right now
 * (a running lease that is alive): *out (arena), *n. */
PIER_MUST_USE
pier_err lease_downloads(struct ctx *c, long long rule_id, const char ***out, int *n,
                         struct perr *e);
/* Is a live, running lease writing tmp_path? */
PIER_MUST_USE
pier_err lease_tmp_in_use(struct ctx *c, const char *tmp_path, bool *in_use, struct perr *e);
/* Remove leases that expired more than an hour ago; *removed counts them. */
PIER_MUST_USE
pier_err lease_expire(struct ctx *c, long long *removed, struct perr *e);

#endif
