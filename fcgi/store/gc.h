/* gc: garbage collection of blobs — the sweep and its history. A sweep runs
 * once at a time cluster-wide (an advisory lock) and walks the candidates of
 * repo_gc_candidates() in batches, collecting each with repo_gc_collect();
 * the protocol that keeps it safe against concurrent pushes, mounts and
 * pull-through imports on any node is in docs/storage.md. Owns gc_runs. */
#ifndef PIER_GC_H
#define PIER_GC_H

#include <stdbool.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

struct gc_report {
    bool dry_run;
    int grace;
    long long links, blobs, bytes, busy; /* as struct repo_gc_result */
    long long finished;                  /* deletions a dead sweep left, finished */
    long long seconds_ms;                /* how long it took */
    long long paused_ms;                 /* of which it slept between rounds (gc_duty) */
};

#define GC_MAX_PAUSE_MS 5000 /* the longest pause between two rounds */

/* One sweep with grace seconds (negative: the configured gc_grace), working
 * duty percent of the time (0: the configured gc_duty; 100: without pauses):
 * after each round it sleeps (100 - duty) / duty times as long as the round
 * took, at most GC_MAX_PAUSE_MS, so that a sweep leaves the database and
 * the CPUs to the requests.
 * PIER_E_CONFLICT when another sweep runs somewhere. Records the run. */
PIER_MUST_USE
pier_err gc_sweep(struct ctx *c, int grace, int duty, bool dry_run, struct gc_report *out,
                  struct perr *e);

/* Is a sweep due (gc_interval seconds since the last completed one)? */
PIER_MUST_USE
pier_err gc_due(struct ctx *c, bool *due, struct perr *e);

struct gc_run {
    long long started_at;                /* seconds since the epoch */
    long long seconds_ms;                /* -1: did not finish */
    const char *node;
    bool dry_run;
    int grace;
    long long links, blobs, bytes, busy, finished;
    const char *error;                   /* NULL when it completed */
};

/* The last n sweeps, newest first: *out (arena), *nout. */
PIER_MUST_USE
pier_err gc_history(struct ctx *c, int n, struct gc_run **out, int *nout, struct perr *e);

#endif
