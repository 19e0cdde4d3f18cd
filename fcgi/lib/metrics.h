/* metrics: the node's counters for /metrics, in one region of shared memory
 * the master maps before it forks the workers. Every worker adds to the same
 * counters with atomic operations, so whichever worker answers a scrape
 * reports the whole node, and a worker that dies loses nothing it counted.
 * Also the Prometheus text exposition format (version 0.0.4) that writes
 * them out. Nothing here touches the database: series that come from tables
 * (cache rule names, garbage-collection runs) are added by the caller. */
#ifndef PIER_METRICS_H
#define PIER_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include "lib/buf.h"
#include "lib/err.h"

/* What a request was for: a small fixed set, never a repository name. */
enum metrics_route {
    MR_BASE,
    MR_CATALOG,
    MR_TAGS,
    MR_MANIFEST,
    MR_BLOB,
    MR_UPLOAD,
    MR_REFERRERS,
    MR_TOKEN,
    MR_ECR_API,
    MR_CONSOLE,
    MR_HEALTH,
    MR_METRICS,
    MR_OTHER,
    MR__COUNT
};

/* Cache counters per rule, in the order of cache/stats.h's stat_kind. */
enum metrics_cache {
    MC_HIT,
    MC_MISS,
    MC_STALE,
    MC_FETCHED_BYTES,
    MC_SERVED_BYTES,
    MC_UPSTREAM_FAILURE,
    MC_STORAGE_ERROR,
    MC__COUNT
};

/* Upstream requests fail in at most this many classes (cache/upstream.h). */
#define METRICS_UPSTREAM_CLASSES 16

enum metrics_db {
    MDB_CONNECT_FAILED, /* a connection attempt that did not succeed */
    MDB_RECONNECT,      /* a new connection after an earlier one was lost or dropped */
    MDB_UNAVAILABLE,    /* the server refused for now (shutting down, too many connections...) */
    MDB_TIMEOUT,        /* no answer in db_timeout_ms */
    MDB_LOST,           /* the connection broke during a statement */
    MDB_ERROR,          /* any other failed statement */
    MDB__COUNT
};

/* What the node's maintenance process did (pierd's housekeeping child; a
 * `pierctl` run outside pierd is not counted: its audit events are). */
enum metrics_maint {
    MM_RUN,                 /* runs that held the cluster's maintenance lock */
    MM_ELSEWHERE,           /* runs that found another node at it */
    MM_FAILED,              /* runs that failed (database, blob root) */
    MM_LIFECYCLE_REPOS,     /* repositories whose lifecycle policy ran to the end */
    MM_LIFECYCLE_EXPIRED,   /* images lifecycle policies expired */
    MM_LIFECYCLE_KEPT,      /* images a plan expired that were kept (changed meanwhile) */
    MM_LIFECYCLE_FAILED,    /* repositories whose lifecycle run failed */
    MM_BUDGET_EXPIRED,      /* cache images expired to keep the byte budgets */
    MM_BUDGET_RECLAIMED,    /* bytes that expiry reclaimed */
    MM__COUNT
};

/* Rules the shared table can tell apart; the rest share one row (rule_id -1). */
#define METRICS_RULES 256

/* Upper bounds of the latency histograms' buckets, in seconds (+Inf implied). */
#define METRICS_BUCKETS 13
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

/* Master, before the first fork (tests: once): map the counters, all zero.
 * false (and a warning) when that fails: counting is then a no-op. */
bool metrics_init(void);
/* Are the counters mapped? */
bool metrics_enabled(void);

/* A request is over: route, HTTP status, time it took. */
void metrics_request(enum metrics_route route, int status, int64_t micros);
/* Cache counter k of rule rule_id grows by n. */
void metrics_cache_add(long long rule_id, enum metrics_cache k, long long n);
/* One request to rule rule_id's upstream took micros; failure_class is 0
 * when it succeeded, else its class (< METRICS_UPSTREAM_CLASSES). */
void metrics_upstream(long long rule_id, int failure_class, int64_t micros);
/* A database event. */
void metrics_db(enum metrics_db k);
/* Maintenance counter k grows by n. */
void metrics_maint_add(enum metrics_maint k, long long n);
/* A maintenance run that held the lock finished at unix time t. */
void metrics_maint_done(int64_t t);

/* Text of a metric family and its samples, in the exposition format. An
 * error in any call (the buffer's cap) is kept in o->rc and makes the
 * following calls no-ops, so a caller checks once at the end. */
struct metrics_out {
    struct buf *b;
    pier_err rc;
};
/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, histogram). */
void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help);
/* One sample line: name{labels} value. labels is NULL or alternating
 * label names and values ending with NULL; values are escaped as the format
 * wants (backslash, double quote, newline). */
void metrics_sample(struct metrics_out *o, const char *name, const char *const *labels,
                    double value);

/* The rule labels of the cache series: the prefix of rule id, or NULL when
 * it is not known (deleted, or the database is unavailable). */
typedef const char *(*metrics_rule_name_fn)(void *arg, long long rule_id);
/* The name of upstream failure class i, or NULL for an unused one. */
typedef const char *(*metrics_class_name_fn)(int i);

/* Every counter of the shared region, with HELP and TYPE. Families whose
 * series are all zero are still written (with their HELP), so dashboards
 * and alerts see the name from the start. */
void metrics_write(struct metrics_out *o, metrics_rule_name_fn rule_name, void *arg,
                   metrics_class_name_fn class_name);

/* The route label of r. */
const char *metrics_route_name(enum metrics_route r);

#endif
