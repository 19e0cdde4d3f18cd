/* budget: least recently pulled images go until the cache fits its budgets. */
#include "cache/budget.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cache/lease.h"
#include "cache/stats.h"
#include "db/db.h"
#include "lib/arena.h"
#include "lib/log.h"
#include "store/audit.h"
#include "store/repo.h"
#include "store/rules.h"

#define BUDGET_LOCK_KEY "1885955442012"
/* Images read per query of the least recently pulled. */
#define BUDGET_BATCH 64

static const struct db_stmt st_lock = {"budget_lock",
                                       "SELECT pg_try_advisory_lock(" BUDGET_LOCK_KEY ")", 0};
static const struct db_stmt st_unlock = {"budget_unlock",
                                         "SELECT pg_advisory_unlock(" BUDGET_LOCK_KEY ")", 0};

enum outcome {
    EXPIRED,       /* an image with blobs */
    EXPIRED_INDEX, /* an image index: its children may go now */
    KEPT,
    GONE,
};

/* One budget: a rule's (rule_id > 0) or the registry's (rule_id 0). */
struct budget {
    long long rule_id;
    const char *what; /* "rule <prefix>" or "the registry-wide budget" */
    long long max_bytes;
};

static void utc(long long t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "never");
}

static bool downloading(const struct repo_gc_candidate *blobs, int n, const char *const *busy,
                        int nbusy)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nbusy; j++)
            if (strcmp(blobs[i].digest, busy[j]) == 0)
                return true;
    return false;
}

/* Expire image m and collect its blobs; *freed: the bytes that removed from
 * the blob root. */
static pier_err expire(struct ctx *c, const struct repo_cache_image *m, enum outcome *out,
                       long long *freed, struct perr *e)
{
    *freed = 0;
    struct repo_gc_candidate *blobs;
    const char **busy;
    int n, nbusy;
    pier_err rc;
    if ((rc = repo_image_blobs(c, m->name, m->digest, &blobs, &n, e)) ||
        (rc = lease_downloads(c, m->rule_id, &busy, &nbusy, e)))
        return rc;
    if (downloading(blobs, n, busy, nbusy)) {
        log_debug("budget: kept %s@%s: one of its blobs is being downloaded", m->name, m->digest);
        *out = KEPT;
        return PIER_OK;
    }
    rc = repo_image_delete(c, m->name, m->digest, e);
    if (rc == PIER_E_CONFLICT) {
        log_debug("budget: kept %s@%s: %s", m->name, m->digest, e->msg);
        *out = KEPT;
        return PIER_OK;
    }
    if (rc == PIER_E_MANIFEST_UNKNOWN || rc == PIER_E_NAME_UNKNOWN) {
        *out = GONE; /* someone else deleted it meanwhile */
        return PIER_OK;
    }
    if (rc)
        return rc;
    *out = n > 0 ? EXPIRED : EXPIRED_INDEX;
    /* What the store holds of them goes; a blob never fetched has nothing to collect. */
    int held = 0;
    for (int i = 0; i < n; i++)
        if (blobs[i].size >= 0)
            blobs[held++] = blobs[i];
    char pulled[32], stored[32];
    utc(m->last_pulled_at, pulled);
    utc(m->pushed_at, stored);
    /* Now that no manifest of the repository references them, the image's
     * blobs go at once, whatever their age in the rule's repositories; a
     * layer another manifest still references, here or elsewhere, stays. */
    struct repo_gc_result r;
    memset(&r, 0, sizeof r);
    struct perr ge;
    if (held > 0 &&
        repo_gc_collect(c, blobs, held, c->cfg->gc_grace, m->rule_id, false, &r, &ge) != PIER_OK)
        log_warn("budget: the blobs of %s@%s were not all collected (garbage collection will): %s",
                 m->name, m->digest, ge.msg);
    *freed = r.bytes;
    log_info("budget: expired %s@%s (rule %s, last pulled %s%s%s): %lld bytes removed from the "
             "blob root",
             m->name, m->digest, m->rule_prefix, pulled, m->last_pulled_at ? "" : ", cached ",
             m->last_pulled_at ? "" : stored, r.bytes);
    struct audit_event ev = {.action = "budget:ExpireImage",
                             .repository = m->name,
                             .target = arena_printf(c->a, "%s (rule %s, %lld bytes)", m->digest,
                                                    m->rule_prefix, r.bytes)};
    audit_record(c, &ev);
    struct perr se;
    if (stats_note_expiry(c, m->rule_id, r.bytes, &se) != PIER_OK)
        log_warn("budget: the expiry of %s@%s was not counted: %s", m->name, m->digest, se.msg);
    return PIER_OK;
}

/* While the budget's repositories hold more than it allows, expire their
 * least recently pulled images. *room: how many more images this run may
 * expire. */
static pier_err enforce(const struct ctx *c, const struct budget *b, long long *room,
                        struct budget_report *out, struct perr *e)
{
    struct arena *a = arena_new();
    struct ctx ic = *c;
    ic.a = a;
    long long usage;
    pier_err rc = repo_cache_usage(&ic, b->rule_id, &usage, NULL, e);
    long long before = usage;
    int skip = 0;
    bool more = true;
    while (!rc && usage > b->max_bytes && more && *room > 0) {
        arena_reset(a);
        struct repo_cache_image *lru;
        int n;
        if ((rc = repo_cache_lru(&ic, b->rule_id, BUDGET_IDLE_S, skip, BUDGET_BATCH, &lru, &n, e)))
            break;
        more = n == BUDGET_BATCH;
        for (int i = 0; i < n && usage > b->max_bytes && *room > 0 && !rc; i++) {
            enum outcome o;
            long long freed;
            if ((rc = expire(&ic, &lru[i], &o, &freed, e)))
                break;
            if (o == KEPT) {
                out->kept++;
                skip++;
                continue;
            }
            if (o == GONE)
                continue;
            out->expired++;
            out->reclaimed += freed;
            (*room)--;
            if (o == EXPIRED_INDEX)
                skip = 0; /* the children it listed, passed over so far, may go now */
            /* Links, not files, are what leave the budget when a layer is
             * also someone else's: measure again. */
            rc = repo_cache_usage(&ic, b->rule_id, &usage, NULL, e);
            more = true;
        }
    }
    if (!rc && usage > b->max_bytes) {
        out->over++;
        log_warn("budget: %s holds %lld bytes, over its budget of %lld, and nothing more may go "
                 "now (images pulled within the last %d s, being downloaded or listed by an "
                 "index stay)",
                 b->what, usage, b->max_bytes, BUDGET_IDLE_S);
    } else if (!rc && before > b->max_bytes) {
        log_info("budget: %s holds %lld bytes again (budget %lld; it held %lld)", b->what, usage,
                 b->max_bytes, before);
    }
    arena_free(a);
    return rc;
}

static pier_err enforce_all(struct ctx *c, struct budget_report *out, struct perr *e)
{
    struct cache_rule *rules;
    int n;
    pier_err rc = rules_with_budget(c, &rules, &n, e);
    long long room = BUDGET_MAX_EXPIRIES;
    for (int i = 0; !rc && i < n; i++) {
        struct budget b = {rules[i].id, arena_printf(c->a, "rule %s", rules[i].prefix),
                           rules[i].max_bytes};
        out->budgets++;
        rc = enforce(c, &b, &room, out, e);
    }
    if (!rc && c->cfg->cache_max_bytes > 0) {
        struct budget b = {0, "the registry-wide cache budget", c->cfg->cache_max_bytes};
        out->budgets++;
        rc = enforce(c, &b, &room, out, e);
    }
    return rc;
}

pier_err budget_enforce(struct ctx *c, struct budget_report *out, struct perr *e)
{
    memset(out, 0, sizeof *out);
    PIER_ASSERT(c->bs && !db_in_tx(c->db));
    PGresult *res = db_exec(c->db, c->a, &st_lock, e);
    if (!res)
        return e->code;
    if (db_value(res, 0, 0)[0] != 't')
        return perr_set(e, PIER_E_CONFLICT, "another node is enforcing the cache budgets now");
    pier_err rc = enforce_all(c, out, e);
    struct perr ignore;
    db_exec(c->db, c->a, &st_unlock, &ignore);
    return rc;
}
