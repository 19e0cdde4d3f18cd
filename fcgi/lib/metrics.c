/* metrics: shared atomic counters of one node and their exposition (see metrics.h). */
#include "lib/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "lib/log.h"

const double metrics_bucket_bounds[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                       1,     2.5,  5,     10,   30,  60};

#define STATUS_MIN 100
#define STATUS_N 500 /* 100 .. 599 */

struct hist {
    atomic_ullong bucket[METRICS_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    atomic_ullong sum_us;
};

struct rule_row {
    atomic_llong id; /* 0: free; claimed once, never given back */
    atomic_ullong v[MC__COUNT];
    atomic_ullong upstream_failures[METRICS_UPSTREAM_CLASSES];
    struct hist upstream;
};

struct shared {
    atomic_ullong requests[MR__COUNT][STATUS_N];
    struct hist latency[MR__COUNT];
    struct rule_row rules[METRICS_RULES];
    struct rule_row overflow; /* rules beyond METRICS_RULES */
    atomic_ullong db[MDB__COUNT];
    atomic_ullong maint[MM__COUNT];
    atomic_llong maint_last; /* unix time of the last run that held the lock; 0: none */
};

static struct shared *shm;

bool metrics_init(void)
{
    void *p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_warn("cannot map the node's shared metrics; /metrics reports nothing");
        return false;
    }
    memset(p, 0, sizeof *shm);
    shm = p;
    return true;
}

bool metrics_enabled(void)
{
    return shm != NULL;
}

static void observe(struct hist *h, int64_t micros)
{
    if (micros < 0)
        micros = 0;
    double s = (double)micros / 1e6;
    int i = 0;
    while (i < METRICS_BUCKETS && s > metrics_bucket_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)micros, memory_order_relaxed);
}

void metrics_request(enum metrics_route route, int status, int64_t micros)
{
    if (!shm)
        return;
    if ((unsigned)route >= MR__COUNT)
        route = MR_OTHER;
    if (status < STATUS_MIN || status >= STATUS_MIN + STATUS_N)
        status = 500; /* nothing valid was sent: the client saw a failure */
    atomic_fetch_add_explicit(&shm->requests[route][status - STATUS_MIN], 1, memory_order_relaxed);
    observe(&shm->latency[route], micros);
}

/* The row of rule_id, claimed on first use. Claimed rows are never freed, so
 * a reader never sees one change its rule; a deleted rule keeps its row. */
static struct rule_row *rule_row(long long rule_id)
{
    if (rule_id <= 0)
        return &shm->overflow;
    size_t start = (size_t)((unsigned long long)rule_id * 11400714819323198485ULL >> 56);
    for (size_t k = 0; k < METRICS_RULES; k++) {
        struct rule_row *r = &shm->rules[(start + k) % METRICS_RULES];
        long long id = atomic_load(&r->id);
        if (id == rule_id)
            return r;
        if (id == 0) {
            long long expect = 0;
            if (atomic_compare_exchange_strong(&r->id, &expect, rule_id) || expect == rule_id)
                return r;
        }
    }
    return &shm->overflow;
}

void metrics_cache_add(long long rule_id, enum metrics_cache k, long long n)
{
    if (!shm || (unsigned)k >= MC__COUNT || n <= 0)
        return;
    atomic_fetch_add_explicit(&rule_row(rule_id)->v[k], (unsigned long long)n,
                              memory_order_relaxed);
}

void metrics_upstream(long long rule_id, int failure_class, int64_t micros)
{
    if (!shm)
        return;
    struct rule_row *r = rule_row(rule_id);
    observe(&r->upstream, micros);
    if (failure_class > 0 && failure_class < METRICS_UPSTREAM_CLASSES)
        atomic_fetch_add_explicit(&r->upstream_failures[failure_class], 1, memory_order_relaxed);
}

void metrics_db(enum metrics_db k)
{
    if (shm && (unsigned)k < MDB__COUNT)
        atomic_fetch_add_explicit(&shm->db[k], 1, memory_order_relaxed);
}

void metrics_maint_add(enum metrics_maint k, long long n)
{
    if (shm && (unsigned)k < MM__COUNT && n > 0)
        atomic_fetch_add_explicit(&shm->maint[k], (unsigned long long)n, memory_order_relaxed);
}

void metrics_maint_done(int64_t t)
{
    if (shm)
        atomic_store_explicit(&shm->maint_last, (long long)t, memory_order_relaxed);
}

/* ---- exposition ---- */

static void out(struct metrics_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct metrics_out *o, const char *fmt, ...)
{
    if (o->rc)
        return;
    va_list ap;
    va_start(ap, fmt);
    o->rc = buf_vaddf(o->b, fmt, ap);
    va_end(ap);
}

void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help)
{
    out(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(struct metrics_out *o, const char *v)
{
    for (; *v && !o->rc; v++) {
        if (*v == '\\')
            out(o, "\\\\");
        else if (*v == '"')
            out(o, "\\\"");
        else if (*v == '\n')
            out(o, "\\n");
        else
            out(o, "%c", *v);
    }
}

static void number(struct metrics_out *o, double v)
{
    if (isnan(v))
        out(o, "NaN");
    else if (isinf(v))
        out(o, v > 0 ? "+Inf" : "-Inf");
    else if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        out(o, "%.0f", v);
    else {
        /* The shortest form that reads back as the same double. */
        char text[40];
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(text, sizeof text, "%.*g", digits, v);
            if (strtod(text, NULL) == v)
                break;
        }
        out(o, "%s", text);
    }
}

void metrics_sample(struct metrics_out *o, const char *name, const char *const *labels,
                    double value)
{
    out(o, "%s", name);
    if (labels && labels[0]) {
        out(o, "{");
        for (int i = 0; labels[i] && labels[i + 1]; i += 2) {
            out(o, "%s%s=\"", i ? "," : "", labels[i]);
            label_value(o, labels[i + 1]);
            out(o, "\"");
        }
        out(o, "}");
    }
    out(o, " ");
    number(o, value);
    out(o, "\n");
}

static const char *const route_names[MR__COUNT] = {
    "base",  "catalog", "tags",    "manifest", "blob",    "upload", "referrers",
    "token", "ecr_api", "console", "health",   "metrics", "other"};

const char *metrics_route_name(enum metrics_route r)
{
    return (unsigned)r < MR__COUNT ? route_names[r] : "other";
}

/* The samples of one histogram: _bucket (cumulative), _sum, _count. pairs
 * holds at most two label pairs, NULL-terminated. */
static void histogram(struct metrics_out *o, const char *name, const char *const *pairs,
                      const struct hist *h)
{
    char bname[128], sname[128], cname[128], le[32];
    snprintf(bname, sizeof bname, "%s_bucket", name);
    snprintf(sname, sizeof sname, "%s_sum", name);
    snprintf(cname, sizeof cname, "%s_count", name);
    const char *labels[7] = {NULL};
    int n = 0;
    while (n < 4 && pairs[n] && pairs[n + 1]) {
        labels[n] = pairs[n];
        labels[n + 1] = pairs[n + 1];
        n += 2;
    }
    unsigned long long cum = 0;
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < METRICS_BUCKETS)
            snprintf(le, sizeof le, "%g", metrics_bucket_bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        labels[n] = "le";
        labels[n + 1] = le;
        metrics_sample(o, bname, labels, (double)cum);
    }
    labels[n] = NULL;
    metrics_sample(o, sname, labels,
                   (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    metrics_sample(o, cname, labels, (double)cum);
}

static const struct {
    const char *name, *help;
} cache_families[MC__COUNT] = {
    {"pier_cache_hits_total", "Pulls answered from what the rule had cached."},
    {"pier_cache_misses_total", "Pulls the rule's upstream had to answer."},
    {"pier_cache_stale_serves_total", "Cached content served because the upstream failed."},
    {"pier_cache_fetched_bytes_total", "Bytes downloaded from the rule's upstream."},
    {"pier_cache_served_bytes_total", "Bytes of the rule's content served to clients."},
    {"pier_cache_upstream_failures_total",
     "Pulls that failed or went stale because of the upstream (client-visible)."},
    {"pier_cache_storage_errors_total", "Downloads refused or failed on the local blob root."},
};

static const char *const db_names[MDB__COUNT] = {"connect_failed", "reconnect", "unavailable",
                                                 "timeout",        "lost",      "error"};

/* The rule labels of row r: rule_id and prefix. */
static void rule_labels(const struct rule_row *r, bool overflow, metrics_rule_name_fn rule_name,
                        void *arg, char *id, size_t idsz, const char **prefix)
{
    long long rid = overflow ? -1 : atomic_load(&r->id);
    snprintf(id, idsz, "%lld", rid);
    const char *p = !overflow && rule_name ? rule_name(arg, rid) : NULL;
    *prefix = p ? p : "";
}

static bool row_used(const struct rule_row *r, bool overflow)
{
    if (!overflow)
        return atomic_load(&r->id) != 0;
    for (int k = 0; k < MC__COUNT; k++)
        if (atomic_load(&r->v[k]))
            return true;
    for (int i = 0; i <= METRICS_BUCKETS; i++)
        if (atomic_load(&r->upstream.bucket[i]))
            return true;
    return false;
}

static unsigned long long maint(enum metrics_maint k)
{
    return atomic_load_explicit(&shm->maint[k], memory_order_relaxed);
}

/* The maintenance process's counters (one node's share of the cluster's
 * work: the lock lets one node at a time do it, so a sum over nodes is the
 * registry's). */
static void maint_write(struct metrics_out *o)
{
    static const struct {
        const char *result;
        enum metrics_maint k;
    } runs[] = {{"done", MM_RUN}, {"elsewhere", MM_ELSEWHERE}, {"failed", MM_FAILED}};
    metrics_family(o, "pier_maintenance_runs_total", "counter",
                   "Housekeeping runs of this node by result (elsewhere: another node held the "
                   "cluster's maintenance lock).");
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const char *labels[] = {"result", runs[i].result, NULL};
        metrics_sample(o, "pier_maintenance_runs_total", labels, (double)maint(runs[i].k));
    }
    metrics_family(o, "pier_maintenance_last_run_timestamp_seconds", "gauge",
                   "When this node's last housekeeping run that held the lock ended (0: none "
                   "since it started).");
    metrics_sample(o, "pier_maintenance_last_run_timestamp_seconds", NULL,
                   (double)atomic_load_explicit(&shm->maint_last, memory_order_relaxed));
    static const struct {
        const char *name, *help;
        enum metrics_maint k;
    } fam[] = {
        {"pier_lifecycle_repositories_total",
         "Repositories whose lifecycle policy this node's housekeeping ran to the end.",
         MM_LIFECYCLE_REPOS},
        {"pier_lifecycle_expired_images_total",
         "Images lifecycle policies expired in this node's housekeeping.", MM_LIFECYCLE_EXPIRED},
        {"pier_lifecycle_kept_images_total",
         "Images a lifecycle plan expired that were kept (tags or an index changed meanwhile).",
         MM_LIFECYCLE_KEPT},
        {"pier_lifecycle_failed_repositories_total",
         "Repositories whose lifecycle run failed (logged; retried at the next run).",
         MM_LIFECYCLE_FAILED},
        {"pier_budget_expired_images_total",
         "Cache images this node's housekeeping expired to keep the byte budgets.",
         MM_BUDGET_EXPIRED},
        {"pier_budget_reclaimed_bytes_total",
         "Bytes the byte budgets' expiry removed from the blob root.", MM_BUDGET_RECLAIMED},
    };
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        metrics_family(o, fam[i].name, "counter", fam[i].help);
        metrics_sample(o, fam[i].name, NULL, (double)maint(fam[i].k));
    }
}

void metrics_write(struct metrics_out *o, metrics_rule_name_fn rule_name, void *arg,
                   metrics_class_name_fn class_name)
{
    if (!shm)
        return;
    char code[8];
    metrics_family(o, "pier_http_requests_total", "counter",
                   "Requests this node answered, by route kind and HTTP status code.");
    for (int r = 0; r < MR__COUNT; r++)
        for (int s = 0; s < STATUS_N; s++) {
            unsigned long long n = atomic_load_explicit(&shm->requests[r][s], memory_order_relaxed);
            if (!n)
                continue;
            snprintf(code, sizeof code, "%d", s + STATUS_MIN);
            const char *labels[] = {"route", route_names[r], "code", code, NULL};
            metrics_sample(o, "pier_http_requests_total", labels, (double)n);
        }
    metrics_family(o, "pier_http_request_duration_seconds", "histogram",
                   "Time from accepting a request to its end in the worker, by route kind.");
    for (int r = 0; r < MR__COUNT; r++) {
        const char *labels[] = {"route", route_names[r], NULL};
        histogram(o, "pier_http_request_duration_seconds", labels, &shm->latency[r]);
    }

    /* Per cache rule: the rows in use, then the overflow row if it counted anything. */
    const struct rule_row *rows[METRICS_RULES + 1];
    bool over[METRICS_RULES + 1];
    int n = 0;
    for (int i = 0; i < METRICS_RULES; i++)
        if (row_used(&shm->rules[i], false)) {
            rows[n] = &shm->rules[i];
            over[n++] = false;
        }
    if (row_used(&shm->overflow, true)) {
        rows[n] = &shm->overflow;
        over[n++] = true;
    }
    char id[24];
    const char *prefix;
    for (int k = 0; k < MC__COUNT; k++) {
        metrics_family(o, cache_families[k].name, "counter", cache_families[k].help);
        for (int i = 0; i < n; i++) {
            rule_labels(rows[i], over[i], rule_name, arg, id, sizeof id, &prefix);
            const char *labels[] = {"rule_id", id, "rule", prefix, NULL};
            metrics_sample(o, cache_families[k].name, labels,
                           (double)atomic_load_explicit(&rows[i]->v[k], memory_order_relaxed));
        }
    }
    metrics_family(o, "pier_cache_upstream_errors_total", "counter",
                   "Requests to the rule's upstream that failed, by failure class.");
    for (int i = 0; i < n; i++) {
        rule_labels(rows[i], over[i], rule_name, arg, id, sizeof id, &prefix);
        for (int c = 1; c < METRICS_UPSTREAM_CLASSES; c++) {
            const char *cls = class_name ? class_name(c) : NULL;
            if (!cls)
                continue;
            const char *labels[] = {"rule_id", id, "rule", prefix, "class", cls, NULL};
            metrics_sample(
                o, "pier_cache_upstream_errors_total", labels,
                (double)atomic_load_explicit(&rows[i]->upstream_failures[c], memory_order_relaxed));
        }
    }
    metrics_family(o, "pier_cache_upstream_request_duration_seconds", "histogram",
                   "Duration of requests to the rule's upstream (a blob download: all of it).");
    for (int i = 0; i < n; i++) {
        rule_labels(rows[i], over[i], rule_name, arg, id, sizeof id, &prefix);
        const char *labels[] = {"rule_id", id, "rule", prefix, NULL};
        histogram(o, "pier_cache_upstream_request_duration_seconds", labels, &rows[i]->upstream);
    }

    metrics_family(o, "pier_db_events_total", "counter",
                   "Database connection failures, reconnects and failed statements, by kind.");
    for (int k = 0; k < MDB__COUNT; k++) {
        const char *labels[] = {"kind", db_names[k], NULL};
        metrics_sample(o, "pier_db_events_total", labels,
                       (double)atomic_load_explicit(&shm->db[k], memory_order_relaxed));
    }
    maint_write(o);
}
