/* health: the shared health state of each rule's upstream, and its recent
 * error rate in per-minute buckets. */
#include "cache/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cache/stats.h"
#include "db/db.h"
#include "lib/log.h"
#include "lib/util.h"

static const struct db_stmt st_fail = {
    "health_fail",
    "INSERT INTO upstream_health(rule_id, failing_since, rate_limited_until, last_failure_at,"
    " last_failure_class, last_failure)"
    " SELECT $1::bigint, CASE WHEN $2::boolean THEN NULL ELSE now() END,"
    " CASE WHEN $2::boolean THEN now() + make_interval(secs => $3::bigint) END, now(), $4, $5"
    " WHERE EXISTS (SELECT 1 FROM cache_rules WHERE id = $1::bigint)"
    " ON CONFLICT (rule_id) DO UPDATE SET"
    " failing_since = CASE WHEN $2::boolean THEN upstream_health.failing_since"
    " ELSE coalesce(upstream_health.failing_since, now()) END,"
    " rate_limited_until = CASE WHEN $2::boolean THEN EXCLUDED.rate_limited_until"
    " ELSE upstream_health.rate_limited_until END,"
    " last_failure_at = now(), last_failure_class = EXCLUDED.last_failure_class,"
    " last_failure = EXCLUDED.last_failure",
    5};
static const struct db_stmt st_ok = {
    "health_ok",
    "INSERT INTO upstream_health(rule_id, last_success_at) SELECT $1::bigint, now()"
    " WHERE EXISTS (SELECT 1 FROM cache_rules WHERE id = $1::bigint)"
    " ON CONFLICT (rule_id) DO UPDATE SET failing_since = NULL, rate_limited_until = NULL,"
    " last_success_at = now()",
    1};
static const struct db_stmt st_count = {
    "health_count",
    "INSERT INTO upstream_health_minutes(rule_id, minute, attempts, errors)"
    " SELECT $1::bigint, date_trunc('minute', now()), $2::bigint, $3::bigint"
    " WHERE EXISTS (SELECT 1 FROM cache_rules WHERE id = $1::bigint)"
    " ON CONFLICT (rule_id, minute) DO UPDATE SET"
    " attempts = upstream_health_minutes.attempts + EXCLUDED.attempts,"
    " errors = upstream_health_minutes.errors + EXCLUDED.errors",
    3};
/* The window's minutes and a few more are kept. */
static const struct db_stmt st_trim = {
    "health_trim",
    "DELETE FROM upstream_health_minutes WHERE rule_id = $1::bigint"
    " AND minute < now() - interval '20 minutes'",
    1};
static const struct db_stmt st_get = {
    "health_get",
    "SELECT coalesce(extract(epoch FROM failing_since)::bigint, 0),"
    " CASE WHEN rate_limited_until > now() THEN extract(epoch FROM rate_limited_until)::bigint"
    " ELSE 0 END,"
    " coalesce(extract(epoch FROM last_success_at)::bigint, 0),"
    " coalesce(extract(epoch FROM last_failure_at)::bigint, 0),"
    " last_failure_class, last_failure FROM upstream_health WHERE rule_id = $1::bigint",
    1};
static const struct db_stmt st_recent = {
    "health_recent",
    "SELECT coalesce(sum(attempts), 0)::bigint, coalesce(sum(errors), 0)::bigint"
    " FROM upstream_health_minutes WHERE rule_id = $1::bigint"
    " AND minute > now() - make_interval(secs => $2::bigint)",
    2};

/* What this worker last wrote for a rule (process memory; a worker forgets
 * it when it exits, which only costs one more write). */
enum { KNOWN_NONE, KNOWN_OK, KNOWN_FAILING };
#define MEMO_RULES 64
static struct {
    long long rule_id;
    int state;
    int64_t written_ms;
} memo[MEMO_RULES];

static int memo_slot(long long rule_id)
{
    int oldest = 0;
    for (int i = 0; i < MEMO_RULES; i++) {
        if (memo[i].rule_id == rule_id)
            return i;
        if (memo[i].written_ms < memo[oldest].written_ms)
            oldest = i;
    }
    memo[oldest].rule_id = rule_id;
    memo[oldest].state = KNOWN_NONE;
    memo[oldest].written_ms = 0;
    return oldest;
}

void health_note(struct ctx *c, long long rule_id, const struct upstream_resp *resp,
                 bool has_credentials, bool force)
{
    if (rule_id <= 0 || resp->failure == UPF_ABORTED)
        return;
    const char *cls = upstream_failure_class(resp->failure);
    bool failed = cls && resp->failure != UPF_NONE;
    stats_upstream(c->stats, rule_id, failed);
    if (!c->db)
        return;
    int i = memo_slot(rule_id);
    int state = failed ? KNOWN_FAILING : KNOWN_OK;
    int64_t now = now_ms();
    /* A write inside someone's transaction would share its fate (and could
     * end it): left for the next request. */
    if (db_in_tx(c->db) ||
        (!force && memo[i].state == state && now - memo[i].written_ms < HEALTH_WRITE_MS))
        return;
    struct perr e;
    PGresult *res;
    if (failed) {
        bool limited = resp->failure == UPF_RATE_LIMITED;
        long long wait = resp->retry_after > 0 ? resp->retry_after : HEALTH_RATE_LIMIT_DEFAULT;
        const char *words = health_explain(c->a, resp, has_credentials);
        res = db_exec(c->db, c->a, &st_fail, &e, rule_id, limited, wait, cls, words);
    } else {
        res = db_exec(c->db, c->a, &st_ok, &e, rule_id);
    }
    if (!res) {
        log_warn("upstream health of rule %lld not written: %s", rule_id, e.msg);
        return;
    }
    memo[i].state = state;
    memo[i].written_ms = now;
}

pier_err health_add_counts(struct ctx *c, long long rule_id, long long attempts, long long errors,
                           struct perr *e)
{
    if (!db_exec(c->db, c->a, &st_count, e, rule_id, attempts, errors))
        return e->code;
    struct perr ignored; /* the old minutes go with a later flush */
    (void)db_exec(c->db, c->a, &st_trim, &ignored, rule_id);
    return PIER_OK;
}

pier_err health_get(struct ctx *c, long long rule_id, struct upstream_health *out, struct perr *e)
{
    memset(out, 0, sizeof *out);
    out->state = "unknown";
    out->last_failure_class = out->last_failure = "";
    PGresult *res = db_exec(c->db, c->a, &st_get, e, rule_id);
    if (!res)
        return e->code;
    if (PQntuples(res) == 1) {
        out->failing_since = db_int(res, 0, 0);
        out->rate_limited_until = db_int(res, 0, 1);
        out->last_success_at = db_int(res, 0, 2);
        out->last_failure_at = db_int(res, 0, 3);
        out->last_failure_class = db_value(res, 0, 4);
        out->last_failure = db_value(res, 0, 5);
        out->state = out->rate_limited_until ? "rate-limited"
                     : out->failing_since    ? "failing"
                     : out->last_success_at  ? "healthy"
                                             : "unknown";
    }
    res = db_exec(c->db, c->a, &st_recent, e, rule_id, (long long)HEALTH_WINDOW_SECONDS);
    if (!res)
        return e->code;
    out->recent_attempts = db_int(res, 0, 0);
    out->recent_errors = db_int(res, 0, 1);
    return PIER_OK;
}

static void set_time(json_t *j, const char *key, long long at)
{
    if (at > 0)
        json_object_set_new(j, key, json_integer(at));
}

json_t *health_json(const struct upstream_health *h)
{
    json_t *j = json_pack("{s:s, s:I, s:I, s:I}", "state", h->state, "recentAttempts",
                          (json_int_t)h->recent_attempts, "recentErrors",
                          (json_int_t)h->recent_errors, "recentWindowSeconds",
                          (json_int_t)HEALTH_WINDOW_SECONDS);
    set_time(j, "failingSince", h->failing_since);
    set_time(j, "rateLimitedUntil", h->rate_limited_until);
    set_time(j, "lastSuccessAt", h->last_success_at);
    set_time(j, "lastFailureAt", h->last_failure_at);
    if (h->last_failure_class[0]) {
        json_object_set_new(j, "lastFailureClass", json_string(h->last_failure_class));
        json_object_set_new(j, "lastFailure", json_string(h->last_failure));
    }
    return j;
}

const char *health_explain(struct arena *a, const struct upstream_resp *resp, bool has_credentials)
{
    const char *m = resp->message[0] ? resp->message : upstream_failure_name(resp->failure);
    switch (resp->failure) {
    case UPF_UNREACHABLE:
    case UPF_TIMEOUT:
        return arena_printf(a,
                            "Unreachable: Pier could not connect to the upstream (DNS, "
                            "connection or timeout): %s",
                            m);
    case UPF_TLS:
        return arena_printf(a,
                            "TLS failed: the upstream's certificate is not trusted or the "
                            "handshake failed (a private CA goes in the rule's CA bundle): %s",
                            m);
    case UPF_AUTH:
        return has_credentials
                   ? arena_printf(a,
                                  "Credentials refused: the upstream answered but did not "
                                  "accept the rule's credentials: %s",
                                  m)
                   : arena_printf(a,
                                  "Credentials needed: the upstream answered but wants "
                                  "credentials, and the rule has none: %s",
                                  m);
    case UPF_NOT_REGISTRY:
        return arena_printf(a,
                            "Not a registry: the server answered, but not as an OCI "
                            "registry does (check the URL): %s",
                            m);
    case UPF_RATE_LIMITED:
        return resp->retry_after > 0
                   ? arena_printf(a, "Rate-limited: the upstream asks Pier to wait %ld s: %s",
                                  resp->retry_after, m)
                   : arena_printf(a, "Rate-limited: the upstream refuses more requests for now: %s",
                                  m);
    case UPF_SERVER:
        return arena_printf(a, "Upstream error: the upstream answered with a server error: %s", m);
    case UPF_FORBIDDEN:
        return arena_printf(a, "Refused by Pier: %s", m);
    case UPF_PROTOCOL:
        return arena_printf(a, "Unexpected answer: %s", m);
    case UPF_NONE:
    case UPF_NOT_FOUND:
    case UPF_ABORTED:
        break;
    }
    return arena_printf(a, "%s", m);
}

void health_validation_json(struct arena *a, json_t *j, const struct upstream_resp *resp, bool ok,
                            bool has_credentials)
{
    json_object_set_new(j, "isValid", json_boolean(ok));
    const char *cls = ok ? "ok" : upstream_failure_class(resp->failure);
    json_object_set_new(j, "pierFailureClass", json_string(cls ? cls : "protocol-error"));
    if (ok)
        return;
    json_object_set_new(j, "failure", json_string(health_explain(a, resp, has_credentials)));
    if (resp->failure == UPF_RATE_LIMITED && resp->retry_after > 0)
        json_object_set_new(j, "pierRetryAfterSeconds", json_integer(resp->retry_after));
}
