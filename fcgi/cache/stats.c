/* stats: a small per-worker table of counters, flushed with one UPSERT per rule. */
#include "cache/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/principals.h"
#include "cache/health.h"
#include "db/db.h"
#include "lib/arena.h"
#include "lib/grammar.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "store/repo.h"

#define STATS_RULES 64

#define PULLS 128

struct cache_stats {
    struct {
        long long rule_id;
        long long v[STAT__COUNT];
        long long attempts, errors; /* requests to the upstream, for its health */
    } rows[STATS_RULES];
    int n;
    struct {
        char repo[NAME_MAX_LEN + 1];
        char digest[DIGEST_MAX_LEN + 1];
        char principal[ARN_MAX]; /* "" for anonymous callers */
        long long count;
    } pulls[PULLS];
    int npulls;
    int64_t last_flush;
};

void stats_pulled(struct cache_stats *s, const char *repo, const char *digest,
                  const char *principal)
{
    if (!s)
        return;
    if (!principal || strlen(principal) >= ARN_MAX)
        principal = ""; /* ARNs are shorter; counted as anonymous rather than cut */
    for (int i = 0; i < s->npulls; i++)
        if (!strcmp(s->pulls[i].digest, digest) && !strcmp(s->pulls[i].repo, repo) &&
            !strcmp(s->pulls[i].principal, principal)) {
            s->pulls[i].count++;
            return;
        }
    if (s->npulls == PULLS)
        return; /* full until the next flush */
    snprintf(s->pulls[s->npulls].repo, sizeof s->pulls[0].repo, "%s", repo);
    snprintf(s->pulls[s->npulls].digest, sizeof s->pulls[0].digest, "%s", digest);
    snprintf(s->pulls[s->npulls].principal, sizeof s->pulls[0].principal, "%s", principal);
    s->pulls[s->npulls].count = 1;
    s->npulls++;
}

static const struct db_stmt st_add = {
    "stats_add",
    "INSERT INTO cache_stats(rule_id, hits, misses, stale, upstream_bytes, served_bytes,"
    " upstream_errors, storage_errors) SELECT $1::bigint, $2::bigint, $3::bigint, $4::bigint,"
    " $5::bigint, $6::bigint, $7::bigint, $8::bigint"
    " WHERE EXISTS (SELECT 1 FROM cache_rules WHERE id = $1::bigint)"
    " ON CONFLICT (rule_id) DO UPDATE SET hits = cache_stats.hits + EXCLUDED.hits,"
    " misses = cache_stats.misses + EXCLUDED.misses, stale = cache_stats.stale + EXCLUDED.stale,"
    " upstream_bytes = cache_stats.upstream_bytes + EXCLUDED.upstream_bytes,"
    " served_bytes = cache_stats.served_bytes + EXCLUDED.served_bytes,"
    " upstream_errors = cache_stats.upstream_errors + EXCLUDED.upstream_errors,"
    " storage_errors = cache_stats.storage_errors + EXCLUDED.storage_errors", 8};

static const struct db_stmt st_expiry = {
    "stats_expiry",
    "INSERT INTO cache_stats(rule_id, budget_expired, budget_reclaimed_bytes,"
    " budget_last_expired_at) SELECT $1::bigint, 1, $2::bigint, now()"
    " WHERE EXISTS (SELECT 1 FROM cache_rules WHERE id = $1::bigint)"
    " ON CONFLICT (rule_id) DO UPDATE SET budget_expired = cache_stats.budget_expired + 1,"
    " budget_reclaimed_bytes = cache_stats.budget_reclaimed_bytes + EXCLUDED.budget_reclaimed_bytes,"
    " budget_last_expired_at = now()",
    2};

struct cache_stats *stats_new(void)
{
    struct cache_stats *s = xcalloc(1, sizeof *s);
    s->last_flush = now_ms();
    return s;
}

void stats_free(struct cache_stats *s)
{
    free(s);
}

_Static_assert((int)STAT_HIT == (int)MC_HIT && (int)STAT_MISS == (int)MC_MISS &&
                   (int)STAT_STALE == (int)MC_STALE &&
                   (int)STAT_UPSTREAM_BYTES == (int)MC_FETCHED_BYTES &&
                   (int)STAT_SERVED_BYTES == (int)MC_SERVED_BYTES &&
                   (int)STAT_UPSTREAM_ERROR == (int)MC_UPSTREAM_FAILURE &&
                   (int)STAT_STORAGE_ERROR == (int)MC_STORAGE_ERROR &&
                   (int)STAT__COUNT == (int)MC__COUNT,
               "the node's metrics count the same cache events as the table");

/* The row of rule_id, added when missing; -1 when every slot is taken. */
static int row_of(struct cache_stats *s, long long rule_id)
{
    int i;
    for (i = 0; i < s->n && s->rows[i].rule_id != rule_id; i++)
        ;
    if (i == s->n) {
        if (s->n == STATS_RULES)
            return -1; /* more rules than slots: drop until the next flush */
        memset(&s->rows[i], 0, sizeof s->rows[i]);
        s->rows[i].rule_id = rule_id;
        s->n++;
    }
    return i;
}

void stats_add(struct cache_stats *s, long long rule_id, enum stat_kind k, long long n)
{
    /* The node's shared counters first: they do not wait for a flush. */
    if (rule_id > 0)
        metrics_cache_add(rule_id, (enum metrics_cache)k, n);
    if (!s || rule_id <= 0)
        return;
    int i = row_of(s, rule_id);
    if (i >= 0)
        s->rows[i].v[k] += n;
}

void stats_upstream(struct cache_stats *s, long long rule_id, bool failed)
{
    if (!s || rule_id <= 0)
        return;
    int i = row_of(s, rule_id);
    if (i < 0)
        return;
    s->rows[i].attempts++;
    if (failed)
        s->rows[i].errors++;
}

void stats_flush(struct ctx *c, int interval_ms)
{
    struct cache_stats *s = c->stats;
    if (!s || (s->n == 0 && s->npulls == 0) || now_ms() - s->last_flush < interval_ms)
        return;
    for (int i = 0; i < s->npulls; i++) {
        struct perr e;
        const char *who = s->pulls[i].principal[0] ? s->pulls[i].principal : NULL;
        (void)repo_note_pulls(c, s->pulls[i].repo, s->pulls[i].digest, who, s->pulls[i].count,
                              &e);
    }
    s->npulls = 0;
    int kept = 0;
    for (int i = 0; i < s->n; i++) {
        const long long *v = s->rows[i].v;
        _Static_assert(STAT__COUNT == 7, "st_add takes the rule and one value per counter");
        struct perr e;
        bool counters = false;
        for (int k = 0; k < STAT__COUNT; k++)
            counters = counters || v[k] != 0;
        if (counters && !db_exec(c->db, c->a, &st_add, &e, s->rows[i].rule_id, v[0], v[1], v[2],
                                 v[3], v[4], v[5], v[6])) {
            s->rows[kept++] = s->rows[i];
            continue;
        }
        if (s->rows[i].attempts > 0 && health_add_counts(c, s->rows[i].rule_id, s->rows[i].attempts,
                                                         s->rows[i].errors, &e) != PIER_OK) {
            /* The counters are written: keep only the health counts for next time. */
            s->rows[kept] = s->rows[i];
            memset(s->rows[kept].v, 0, sizeof s->rows[kept].v);
            kept++;
        }
    }
    s->n = kept;
    s->last_flush = now_ms();
}

bool stats_pending(const struct cache_stats *s)
{
    return s && (s->n > 0 || s->npulls > 0);
}

pier_err stats_note_expiry(struct ctx *c, long long rule_id, long long bytes, struct perr *e)
{
    return db_exec(c->db, c->a, &st_expiry, e, rule_id, bytes) ? PIER_OK : e->code;
}
