/* memo: what the pull-through cache remembers about upstreams besides the
 * registry content itself — "not found" answers (the cache_negative table,
 * kept for a rule's negative_seconds) and referrers lists (the
 * cache_referrers table, refreshed like tags and dropped with their
 * repository). The only module with SQL on those two tables. */
#ifndef PIER_MEMO_H
#define PIER_MEMO_H

#include <stdbool.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

/* Did the upstream recently answer "not found" for repo:ref? */
PIER_MUST_USE
pier_err memo_negative_get(struct ctx *c, const char *repo, const char *ref, bool *remembered,
                           struct perr *e);
/* Remember for seconds (> 0) that the upstream has no repo:ref. */
PIER_MUST_USE
pier_err memo_negative_put(struct ctx *c, const char *repo, const char *ref, int seconds,
                           struct perr *e);
/* The upstream has repo:ref (again). */
PIER_MUST_USE
pier_err memo_negative_clear(struct ctx *c, const char *repo, const char *ref, struct perr *e);

/* The referrers list of subject stored for repository repo: *manifests (JSON
 * text in the arena; NULL when none is stored) and *fresh, true when it was
 * fetched within refresh_seconds. */
PIER_MUST_USE
pier_err memo_referrers_get(struct ctx *c, const char *repo, const char *subject,
                            int refresh_seconds, const char **manifests, bool *fresh,
                            struct perr *e);
/* Store the referrers list (a JSON array) of subject fetched just now, if
 * repository repo exists (a referrers query alone never creates one). */
PIER_MUST_USE
pier_err memo_referrers_put(struct ctx *c, const char *repo, const char *subject,
                            const char *manifests, struct perr *e);

/* Housekeeping: drop expired "not found" answers and referrers lists nobody
 * refreshed for a week; *removed counts the rows. */
PIER_MUST_USE
pier_err memo_expire(struct ctx *c, long long *removed, struct perr *e);

#endif
