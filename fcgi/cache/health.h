/* health: is a rule's upstream answering now? The state every node shares
 * (healthy, failing since a time, rate-limited until a time), the last
 * success and the last failure with its class, and the recent error rate
 * from per-minute counters. Workers write the state when it changes and
 * otherwise at most once every HEALTH_WRITE_MS per rule; the counters travel
 * with the cache statistics (cache/stats.h), flushed every few seconds. The
 * only module with SQL on upstream_health and upstream_health_minutes. */
#ifndef PIER_HEALTH_H
#define PIER_HEALTH_H

#include <stdbool.h>
#include <jansson.h>
#include "cache/upstream.h"
#include "lib/arena.h"
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

/* The recent error rate counts the requests of the last 15 minutes. */
#define HEALTH_WINDOW_SECONDS 900
/* A worker writes an unchanged state at most this often per rule. */
#define HEALTH_WRITE_MS 5000
/* A 429 without Retry-After: rate-limited for this long. */
#define HEALTH_RATE_LIMIT_DEFAULT 60

struct upstream_health {
    const char *state;              /* "healthy", "failing", "rate-limited", or "unknown"
                                     (no request to the upstream recorded yet) */
    long long failing_since;        /* epoch seconds; 0 unless failing */
    long long rate_limited_until;   /* epoch seconds; 0 unless rate-limited now */
    long long last_success_at;      /* epoch seconds, 0: never */
    long long last_failure_at;      /* epoch seconds, 0: never */
    const char *last_failure_class; /* upstream_failure_class() name, "" when none */
    const char *last_failure;       /* what happened, in words ("" when none) */
    long long recent_attempts;      /* requests to the upstream in the window */
    long long recent_errors;        /* of which failed */
};

/* One request to rule_id's upstream ended as resp says. Counts it for the
 * error rate and writes the shared state when it changed (a failure after
 * success, a success after failure) or when this worker last wrote it more
 * than HEALTH_WRITE_MS ago; force writes at once (validation). A failure that
 * says nothing about the upstream (a 404, a transfer Pier stopped) counts as
 * an answer, resp->failure UPF_ABORTED not at all. Never fails the caller:
 * a database error only loses the note. */
void health_note(struct ctx *c, long long rule_id, const struct upstream_resp *resp,
                 bool has_credentials, bool force);

/* Add a worker's counters for rule_id to the current minute and drop its
 * minutes older than the window (called by stats_flush). */
PIER_MUST_USE
pier_err health_add_counts(struct ctx *c, long long rule_id, long long attempts, long long errors,
                           struct perr *e);

/* Rule rule_id's health now; strings in arena memory. */
PIER_MUST_USE
pier_err health_get(struct ctx *c, long long rule_id, struct upstream_health *out, struct perr *e);

/* The health as JSON (times in epoch seconds; absent when never), for the
 * console and Pier's extension field pierUpstreamHealth. New reference. */
json_t *health_json(const struct upstream_health *h);

/* A failed request (resp->failure set) in words for people: what kind of
 * failure, then the detail. Arena memory. */
const char *health_explain(struct arena *a, const struct upstream_resp *resp, bool has_credentials);

/* Set what a validation found on j: isValid, pierFailureClass ("ok" or an
 * upstream_failure_class() name), and when it failed failure (in words) and
 * pierRetryAfterSeconds (rate-limited with a Retry-After). */
void health_validation_json(struct arena *a, json_t *j, const struct upstream_resp *resp, bool ok,
                            bool has_credentials);

#endif
