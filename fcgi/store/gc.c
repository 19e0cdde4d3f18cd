/* gc: the garbage-collection sweep and its history (gc_runs). */
#include "store/gc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "db/db.h"
#include "lib/arena.h"
#include "lib/config.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "store/repo.h"

/* One sweep at a time, cluster-wide ("pier" in ASCII, then 3). */
#define GC_LOCK_KEY "1885955442003"
/* Candidates per round: one lock statement, one transaction, one unlock. */
#define GC_BATCH 500

static const struct db_stmt st_lock = {
    "gc_lock", "SELECT pg_try_advisory_lock(" GC_LOCK_KEY ")", 0};
static const struct db_stmt st_unlock = {
    "gc_unlock", "SELECT pg_advisory_unlock(" GC_LOCK_KEY ")", 0};
static const struct db_stmt st_run_start = {
    "gc_run_start",
    "INSERT INTO gc_runs(node, dry_run, grace) VALUES ($1, $2::bool, $3::int) RETURNING id", 3};
static const struct db_stmt st_run_end = {
    "gc_run_end",
    "UPDATE gc_runs SET duration_ms = $2::bigint, links = $3::bigint, blobs = $4::bigint,"
    " bytes = $5::bigint, busy = $6::bigint, finished = $7::bigint, error = $8"
    " WHERE id = $1::bigint", 8};
/* Keep the last 1000 sweeps. */
static const struct db_stmt st_prune = {
    "gc_prune",
    "DELETE FROM gc_runs WHERE id < (SELECT min(id) FROM"
    " (SELECT id FROM gc_runs ORDER BY id DESC LIMIT 1000) AS keep)", 0};
static const struct db_stmt st_history = {
    "gc_history",
    "SELECT extract(epoch FROM started_at)::bigint, coalesce(duration_ms, -1), node, dry_run,"
    " grace, links, blobs, bytes, busy, finished, error FROM gc_runs"
    " ORDER BY id DESC LIMIT $1::int", 1};
static const struct db_stmt st_since_last = {
    "gc_since_last",
    "SELECT coalesce(extract(epoch FROM now() - max(started_at))::bigint, -1) FROM gc_runs"
    " WHERE NOT dry_run AND error IS NULL AND duration_ms IS NOT NULL", 0};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Collect one round; a round that fails as a whole (a statement refused)
 * is retried digest by digest so that one bad digest does not stop every
 * sweep after it. */
static pier_err collect(struct ctx *c, const struct repo_gc_candidate *cand, int n, int grace,
                        bool dry_run, struct repo_gc_result *r, struct perr *e)
{
    pier_err rc = repo_gc_collect(c, cand, n, grace, 0, dry_run, r, e);
    if (rc != PIER_E_INTERNAL)
        return rc;
    log_warn("gc: a round of %d digests failed (%s); collecting them one by one", n, e->msg);
    for (int i = 0; i < n; i++) {
        struct perr one;
        rc = repo_gc_collect(c, &cand[i], 1, grace, 0, dry_run, r, &one);
        if (rc == PIER_E_UNAVAILABLE) {
            *e = one;
            return rc;
        }
        if (rc)
            log_warn("gc: %s stays: %s", cand[i].digest, one.msg);
    }
    return PIER_OK;
}

/* Sleep after a round of round_ms so that the sweep works duty percent of
 * the time. */
static long long pause_after(long long round_ms, int duty)
{
    if (duty >= 100 || round_ms <= 0)
        return 0;
    long long ms = round_ms * (100 - duty) / duty;
    if (ms > GC_MAX_PAUSE_MS)
        ms = GC_MAX_PAUSE_MS;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return ms;
}

static pier_err sweep(struct ctx *c, int grace, int duty, bool dry_run, struct gc_report *out,
                      struct perr *e)
{
    pier_err rc;
    if (!dry_run && (rc = repo_gc_finish(c, &out->finished, e)) != PIER_OK)
        return rc;
    struct repo_gc_result r = {0};
    char after[DIGEST_MAX_LEN + 2] = "";
    struct arena *a = arena_new(); /* reset every round: memory stays flat */
    struct ctx bc = *c;
    bc.a = a;
    for (;;) {
        struct repo_gc_candidate *cand;
        int n;
        long long t0 = now_ms();
        if ((rc = repo_gc_candidates(&bc, after, grace, 0, GC_BATCH, &cand, &n, e)) != PIER_OK)
            break;
        if (n == 0)
            break;
        snprintf(after, sizeof after, "%s", cand[n - 1].digest);
        if ((rc = collect(&bc, cand, n, grace, dry_run, &r, e)) != PIER_OK)
            break;
        arena_reset(a);
        if (n < GC_BATCH)
            break;
        out->paused_ms += pause_after(now_ms() - t0, duty);
    }
    arena_free(a);
    out->links = r.links;
    out->blobs = r.blobs;
    out->bytes = r.bytes;
    out->busy = r.busy;
    return rc;
}

pier_err gc_sweep(struct ctx *c, int grace, int duty, bool dry_run, struct gc_report *out,
                  struct perr *e)
{
    if (duty <= 0 || duty > 100)
        duty = c->cfg->gc_duty > 0 ? c->cfg->gc_duty : 100;
    memset(out, 0, sizeof *out);
    out->dry_run = dry_run;
    out->grace = grace = grace >= 0 ? grace : c->cfg->gc_grace;
    PGresult *res = db_exec(c->db, c->a, &st_lock, e);
    if (!res)
        return e->code;
    if (db_value(res, 0, 0)[0] != 't')
        return perr_set(e, PIER_E_CONFLICT, "another garbage-collection sweep is running");
    long long t0 = now_ms();
    char node[256] = "";
    if (gethostname(node, sizeof node - 1) != 0)
        snprintf(node, sizeof node, "unknown");
    PGresult *run = db_exec(c->db, c->a, &st_run_start, e, node, dry_run, grace);
    pier_err rc = run ? sweep(c, grace, duty, dry_run, out, e) : e->code;
    out->seconds_ms = now_ms() - t0;
    if (run) {
        struct perr ignore;
        (void)db_exec(c->db, c->a, &st_run_end, &ignore, db_value(run, 0, 0), out->seconds_ms,
                      out->links, out->blobs, out->bytes, out->busy, out->finished,
                      rc ? e->msg : NULL);
        (void)db_exec(c->db, c->a, &st_prune, &ignore);
    }
    if (!dry_run && (out->blobs || out->links || out->finished))
        log_info("gc: removed %lld blobs (%lld bytes) and %lld links; %lld busy digests skipped; "
                 "%lld interrupted deletions finished; %lld ms", out->blobs, out->bytes,
                 out->links, out->busy, out->finished, out->seconds_ms);
    if (rc)
        log_warn("gc: the sweep stopped: %s", e->msg);
    struct perr ignore;
    (void)db_exec(c->db, c->a, &st_unlock, &ignore);
    return rc;
}

pier_err gc_due(struct ctx *c, bool *due, struct perr *e)
{
    *due = false;
    if (c->cfg->gc_interval <= 0)
        return PIER_OK;
    PGresult *res = db_exec(c->db, c->a, &st_since_last, e);
    if (!res)
        return e->code;
    long long since = db_int(res, 0, 0);
    *due = since < 0 || since >= c->cfg->gc_interval;
    return PIER_OK;
}

pier_err gc_history(struct ctx *c, int n, struct gc_run **out, int *nout, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_history, e, n);
    if (!res)
        return e->code;
    *nout = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*nout ? *nout : 1));
    for (int i = 0; i < *nout; i++) {
        struct gc_run *g = &(*out)[i];
        g->started_at = db_int(res, i, 0);
        g->seconds_ms = db_int(res, i, 1);
        g->node = PQgetvalue(res, i, 2);
        g->dry_run = PQgetvalue(res, i, 3)[0] == 't';
        g->grace = (int)db_int(res, i, 4);
        g->links = db_int(res, i, 5);
        g->blobs = db_int(res, i, 6);
        g->bytes = db_int(res, i, 7);
        g->busy = db_int(res, i, 8);
        g->finished = db_int(res, i, 9);
        g->error = db_isnull(res, i, 10) ? NULL : PQgetvalue(res, i, 10);
    }
    return PIER_OK;
}
