/* observe: health checks, /metrics and request counting (see observe.h). */
#include "server/observe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "auth/authz.h"
#include "cache/upstream.h"
#include "db/db.h"
#include "db/migrate.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/netpolicy.h"
#include "lib/util.h"
#include "registry/route.h"
#include "server/pool.h"
#include "store/blobstore.h"
#include "store/gc.h"
#include "store/lifecycle_store.h"
#include "store/rules.h"

bool observe_path(const char *path)
{
    return !strcmp(path, "/healthz") || !strcmp(path, "/readyz") || !strcmp(path, "/metrics");
}

static void plain(struct req *r, int status, const char *text)
{
    resp_status(r, status);
    resp_header(r, "Cache-Control", "no-store");
    resp_send(r, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- /readyz ---- */

/* Can the blob root take a new file? The probe goes where downloads and
 * uploads write first (tmp/), and is removed at once. */
static const char *blob_root_check(const struct ctx *c)
{
    char path[BLOBSTORE_ROOT_MAX + 64];
    snprintf(path, sizeof path, "%s/tmp/.readyz-%ld", c->bs->root, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_warn("readyz: cannot create a file under the blob root: %s", strerror(errno));
        return "not writable";
    }
    bool ok = write(fd, "ok", 2) == 2;
    if (close(fd) != 0)
        ok = false;
    unlink(path);
    if (!ok) {
        log_warn("readyz: cannot write a file under the blob root");
        return "not writable";
    }
    return "ok";
}

static void readyz(struct ctx *c, struct req *r)
{
    struct perr e;
    const char *db = "ok", *migrations = "ok";
    char behind[96];
    int missing = 0;
    if (db_ensure(c->db, &e) != PIER_OK) {
        db = "unreachable";
        migrations = "unknown";
    } else if (migrate_pending(c->db, &missing, &e) != PIER_OK) {
        if (e.code == PIER_E_UNAVAILABLE) {
            db = "unreachable";
            migrations = "unknown";
        } else {
            migrations = "unknown (no schema: run pierctl migrate)";
        }
    } else if (missing) {
        snprintf(behind, sizeof behind, "%d pending: run pierctl migrate", missing);
        migrations = behind;
    }
    const char *blobs = blob_root_check(c);
    bool ready = !strcmp(db, "ok") && !strcmp(migrations, "ok") && !strcmp(blobs, "ok");
    json_t *body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "status", ready ? "ready" : "not ready",
                             "checks", "database", db, "migrations", migrations, "blob_root",
                             blobs);
    resp_header(r, "Cache-Control", "no-store");
    if (!ready)
        resp_header(r, "Retry-After", "5");
    resp_json(r, ready ? 200 : 503, "application/json", body);
    json_decref(body);
}

/* ---- /metrics ---- */

static void clear_identity(void *p)
{
    identity_clear(p);
}

/* May this request read /metrics? Answers the refusal itself when not. */
static bool metrics_access(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    struct perr e;
    struct netpolicy np;
    if (config_metrics_allow(c->cfg, &np, &e) == PIER_OK && netpolicy_contains(&np, r->remote_addr))
        return true;
    if (!req_header(r, "Authorization")) {
        resp_header(r, "WWW-Authenticate", "Basic realm=\"Pier metrics\"");
        plain(r, 401, "credentials required: an administrator's access key or login password\n");
        return false;
    }
    if (db_ensure(c->db, &e) != PIER_OK) {
        resp_header(r, "Retry-After", "5");
        plain(r, 503, "the registry database is unavailable: credentials cannot be checked\n");
        return false;
    }
    struct identity *id = arena_alloc(c->a, sizeof *id);
    pier_err rc = authn_identify(c, ac, r, id, &e);
    arena_defer(c->a, clear_identity, id);
    c->who = id;
    if (rc == PIER_OK && !id->authenticated)
        rc = perr_set(&e, PIER_E_UNAUTHORIZED, "credentials required");
    if (rc == PIER_OK)
        rc = authz_check_arn(c, OBSERVE_METRICS_ACTION, authz_registry_arn(c), &e);
    if (rc == PIER_OK)
        return true;
    if (rc == PIER_E_UNAUTHORIZED) {
        resp_header(r, "WWW-Authenticate", "Basic realm=\"Pier metrics\"");
        plain(r, 401, "the credentials were not accepted\n");
    } else if (rc == PIER_E_TOOMANYREQUESTS) {
        plain(r, 429, "too many failed logins from this address; retry later\n");
    } else if (rc == PIER_E_UNAVAILABLE) {
        resp_header(r, "Retry-After", "5");
        plain(r, 503, "the registry database is unavailable: credentials cannot be checked\n");
    } else {
        plain(r, 403,
              "not allowed: reading /metrics needs " OBSERVE_METRICS_ACTION " on the registry\n");
    }
    return false;
}

struct rule_names {
    long long *ids;
    const char **prefixes;
    int n;
};

static const char *rule_name(void *arg, long long rule_id)
{
    const struct rule_names *rn = arg;
    for (int i = 0; i < rn->n; i++)
        if (rn->ids[i] == rule_id)
            return rn->prefixes[i];
    return NULL;
}

static const char *class_name(int i)
{
    if (i <= UPF_NONE || i > UPF_NOT_REGISTRY)
        return NULL;
    return upstream_failure_name((enum up_failure)i);
}

/* The last garbage-collection sweep of the registry (any node), from gc_runs:
 * written only when the database answers. */
static void gc_series(struct ctx *c, struct metrics_out *o)
{
    struct perr e;
    struct gc_run *runs = NULL;
    int n = 0;
    if (gc_history(c, 1, &runs, &n, &e) != PIER_OK || n == 0)
        return;
    const struct gc_run *g = &runs[0];
    bool finished = g->seconds_ms >= 0;
    metrics_family(o, "pier_gc_last_run_start_timestamp_seconds", "gauge",
                   "When the registry's newest garbage-collection sweep started (any node).");
    metrics_sample(o, "pier_gc_last_run_start_timestamp_seconds", NULL, (double)g->started_at);
    metrics_family(o, "pier_gc_last_run_success", "gauge",
                   "1 when the newest sweep completed without an error, else 0.");
    metrics_sample(o, "pier_gc_last_run_success", NULL, finished && !g->error ? 1 : 0);
    metrics_family(o, "pier_gc_last_run_duration_seconds", "gauge",
                   "How long the newest finished sweep took (absent while it runs).");
    if (finished)
        metrics_sample(o, "pier_gc_last_run_duration_seconds", NULL, (double)g->seconds_ms / 1000);
    metrics_family(o, "pier_gc_last_run_removed_blobs", "gauge",
                   "Blob files the newest sweep removed.");
    metrics_sample(o, "pier_gc_last_run_removed_blobs", NULL, (double)g->blobs);
    metrics_family(o, "pier_gc_last_run_removed_links", "gauge",
                   "Repository links to blobs the newest sweep removed.");
    metrics_sample(o, "pier_gc_last_run_removed_links", NULL, (double)g->links);
    metrics_family(o, "pier_gc_last_run_reclaimed_bytes", "gauge",
                   "Bytes the newest sweep reclaimed on the blob root.");
    metrics_sample(o, "pier_gc_last_run_reclaimed_bytes", NULL, (double)g->bytes);
}

/* Lifecycle policies of the registry (any node ran them), from their table. */
static void lifecycle_series(struct ctx *c, struct metrics_out *o)
{
    struct perr e;
    long long policies, oldest;
    if (lifecycle_policy_staleness(c, &policies, &oldest, &e) != PIER_OK)
        return;
    metrics_family(o, "pier_lifecycle_policies", "gauge",
                   "Repositories of the registry that have a lifecycle policy.");
    metrics_sample(o, "pier_lifecycle_policies", NULL, (double)policies);
    metrics_family(o, "pier_lifecycle_oldest_evaluation_timestamp_seconds", "gauge",
                   "The oldest last run among the lifecycle policies (a policy never run: when "
                   "it was put); far behind now means housekeeping stopped running them.");
    if (policies)
        metrics_sample(o, "pier_lifecycle_oldest_evaluation_timestamp_seconds", NULL,
                       (double)oldest);
}

static void metrics(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    if (!metrics_access(c, ac, r))
        return;
    struct buf b;
    buf_init_arena(&b, c->a, OBSERVE_METRICS_MAX);
    struct metrics_out o = {.b = &b, .rc = PIER_OK};
    struct perr e;
    /* Rule prefixes label the cache series when the database answers; the
     * counters themselves never need it. */
    struct rule_names rn = {NULL, NULL, 0};
    bool db_up = db_ensure(c->db, &e) == PIER_OK;
    if (db_up && rules_prefixes(c, &rn.ids, &rn.prefixes, &rn.n, &e) != PIER_OK)
        rn.n = 0;
    metrics_write(&o, rule_name, &rn, class_name);

    int alive, busy, bodies;
    pool_counts(&alive, &busy, &bodies);
    metrics_family(&o, "pier_pool_workers", "gauge",
                   "This node's FastCGI workers, by state (busy: serving a request, this one "
                   "included).");
    const char *lb[] = {"state", "busy", NULL};
    metrics_sample(&o, "pier_pool_workers", lb, busy);
    const char *li[] = {"state", "idle", NULL};
    metrics_sample(&o, "pier_pool_workers", li, alive - busy);
    metrics_family(&o, "pier_pool_body_workers", "gauge",
                   "Workers receiving a request body now (bounded by body_workers).");
    metrics_sample(&o, "pier_pool_body_workers", NULL, bodies);
    metrics_family(&o, "pier_pool_configured_workers", "gauge",
                   "The workers setting of this node.");
    metrics_sample(&o, "pier_pool_configured_workers", NULL, c->cfg->workers);
    metrics_family(&o, "pier_db_up", "gauge",
                   "1 when the worker answering this scrape had a database connection.");
    metrics_sample(&o, "pier_db_up", NULL, db_up ? 1 : 0);
    if (db_up) {
        gc_series(c, &o);
        lifecycle_series(c, &o);
    }
    if (o.rc) {
        log_error("/metrics: the exposition passed %u bytes", OBSERVE_METRICS_MAX);
        plain(r, 500, "the metrics exceed their size limit\n");
        return;
    }
    resp_status(r, 200);
    resp_header(r, "Cache-Control", "no-store");
    resp_send(r, "text/plain; version=0.0.4; charset=utf-8", buf_str(&b), buf_len(&b));
}

void observe_handle(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        req_refuse_body(r);
        resp_header(r, "Allow", "GET, HEAD");
        plain(r, 405, "method not allowed\n");
    } else if (!strcmp(r->path, "/healthz")) {
        plain(r, 200, "ok\n");
    } else if (!strcmp(r->path, "/readyz")) {
        readyz(c, r);
    } else {
        metrics(c, ac, r);
    }
}

/* ---- counting ---- */

static enum metrics_route route_of(const struct req *r)
{
    const char *p = r->path;
    if (!strncmp(p, "/v2", 3) && (p[3] == '\0' || p[3] == '/')) {
        struct route rt;
        struct perr e;
        if (route_parse(p, &rt, &e) != PIER_OK)
            return MR_OTHER;
        switch (rt.kind) {
        case ROUTE_BASE:
            return MR_BASE;
        case ROUTE_CATALOG:
            return MR_CATALOG;
        case ROUTE_TAGS:
            return MR_TAGS;
        case ROUTE_MANIFEST:
            return MR_MANIFEST;
        case ROUTE_BLOB:
            return MR_BLOB;
        case ROUTE_UPLOAD_START:
        case ROUTE_UPLOAD:
            return MR_UPLOAD;
        case ROUTE_REFERRERS:
            return MR_REFERRERS;
        default:
            return MR_OTHER;
        }
    }
    if (!strcmp(p, "/token"))
        return MR_TOKEN;
    if (!strcmp(p, "/"))
        return MR_ECR_API;
    if (!strncmp(p, "/console/", 9))
        return MR_CONSOLE;
    if (!strcmp(p, "/metrics"))
        return MR_METRICS;
    if (!strcmp(p, "/healthz") || !strcmp(p, "/readyz"))
        return MR_HEALTH;
    return MR_OTHER;
}

int64_t observe_begin(void)
{
    pool_busy(true);
    return now_us();
}

void observe_end(const struct req *r, int64_t started)
{
    struct perr e;
    /* A response that failed while it was built went out as a bare 500. */
    int status = resp_failed(r, &e) != PIER_OK ? 500 : r->status;
    metrics_request(route_of(r), status, now_us() - started);
    pool_busy(false);
}
