/* stats: cache counters per rule (hits, misses, stale serves, bytes from
 * upstreams and to clients, upstream errors, local storage errors). A worker adds to its own table
 * and flushes it to cache_stats every few seconds, so the hot path never
 * writes to the database; a crash loses at most those few seconds. */
#ifndef PIER_STATS_H
#define PIER_STATS_H

#include <stdbool.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

enum stat_kind { STAT_HIT, STAT_MISS, STAT_STALE, STAT_UPSTREAM_BYTES, STAT_SERVED_BYTES,
                 STAT_UPSTREAM_ERROR, STAT_STORAGE_ERROR, STAT__COUNT };

struct cache_stats;

struct cache_stats *stats_new(void);
void stats_free(struct cache_stats *s);
void stats_add(struct cache_stats *s, long long rule_id, enum stat_kind k, long long n);
/* One request to rule_id's upstream, failed or not: counted for the
 * upstream's recent error rate (cache/health.h), flushed with the counters. */
void stats_upstream(struct cache_stats *s, long long rule_id, bool failed);
/* Remember that principal (an ARN; NULL for anonymous callers) pulled a
 * manifest (for DescribeImages' lastRecordedPullTime, which the pulls of
 * principals excluded from pull-time updates leave alone); written with the
 * counters. */
void stats_pulled(struct cache_stats *s, const char *repo, const char *digest,
                  const char *principal);
/* Write the counters to the database if the last flush is older than
 * interval_ms (0: now). Counters that fail to flush are kept for next time. */
void stats_flush(struct ctx *c, int interval_ms);
/* True when counters wait to be flushed. */
bool stats_pending(const struct cache_stats *s);

/* The byte budget expired one image of rule rule_id, which removed bytes
 * from the blob root: written at once (enforcement is rare and not on any
 * request's path). */
PIER_MUST_USE
pier_err stats_note_expiry(struct ctx *c, long long rule_id, long long bytes, struct perr *e);

#endif
