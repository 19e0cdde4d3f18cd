/* lease: fetch_leases rows. */
#include "cache/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db/db.h"
#include "lib/util.h"

static const struct db_stmt st_acquire = {
    "lease_acquire",
    "INSERT INTO fetch_leases(key, holder, expires_at)"
    " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
    " ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,"
    " tmp_path = NULL, total_size = NULL, durable = 0, state = 'running', message = NULL,"
    " error_code = NULL, followers = 0, created_at = now()"
    " WHERE fetch_leases.expires_at < now()"
    " RETURNING key", 3};
static const struct db_stmt st_read = {
    "lease_read",
    "SELECT state, expires_at < now(), coalesce(tmp_path, ''), coalesce(total_size, -1), durable,"
    " coalesce(message, ''), coalesce(error_code, '') FROM fetch_leases WHERE key = $1", 1};
static const struct db_stmt st_progress = {
    "lease_progress",
    "UPDATE fetch_leases SET tmp_path = coalesce($3, tmp_path),"
    " total_size = CASE WHEN $4::bigint >= 0 THEN $4::bigint ELSE total_size END,"
    " durable = $5::bigint, expires_at = now() + make_interval(secs => $6::int)"
    " WHERE key = $1 AND holder = $2 AND state = 'running' RETURNING followers", 6};
static const struct db_stmt st_renew = {
    "lease_renew",
    "UPDATE fetch_leases SET expires_at = now() + make_interval(secs => $3::int)"
    " WHERE key = $1 AND holder = $2 AND state = 'running' RETURNING 1", 3};
static const struct db_stmt st_follow = {
    "lease_follow",
    "UPDATE fetch_leases SET followers = followers + 1 WHERE key = $1 AND state = 'running'", 1};
static const struct db_stmt st_release = {
    "lease_release", "DELETE FROM fetch_leases WHERE key = $1 AND holder = $2", 2};
static const struct db_stmt st_fail = {
    "lease_fail",
    "UPDATE fetch_leases SET state = 'failed', message = $3, error_code = $4,"
    " expires_at = now() + make_interval(secs => $5::int) WHERE key = $1 AND holder = $2", 5};

pier_err lease_acquire(struct ctx *c, const char *key, const char *holder, bool *acquired,
                       struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_acquire, e, key, holder, c->cfg->lease_ttl);
    if (!res)
        return e->code;
    *acquired = PQntuples(res) == 1;
    return PIER_OK;
}

pier_err lease_read(struct ctx *c, const char *key, struct lease *l, struct perr *e)
{
    memset(l, 0, sizeof *l);
    l->total = -1;
    PGresult *res = db_exec(c->db, c->a, &st_read, e, key);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return PIER_OK;
    l->state = strcmp(PQgetvalue(res, 0, 0), "failed") == 0 ? LEASE_FAILED : LEASE_RUNNING;
    l->expired = PQgetvalue(res, 0, 1)[0] == 't';
    snprintf(l->tmp_path, sizeof l->tmp_path, "%s", PQgetvalue(res, 0, 2));
    l->total = db_int(res, 0, 3);
    l->durable = db_int(res, 0, 4);
    snprintf(l->message, sizeof l->message, "%s", PQgetvalue(res, 0, 5));
    l->code = PQgetvalue(res, 0, 6)[0] ? perr_from_name(PQgetvalue(res, 0, 6)) : PIER_E_UPSTREAM;
    return PIER_OK;
}

pier_err lease_follow(struct ctx *c, const char *key, struct perr *e)
{
    return db_exec(c->db, c->a, &st_follow, e, key) ? PIER_OK : e->code;
}

pier_err lease_progress(struct ctx *c, const char *key, const char *holder, const char *tmp_path,
                        long long total, long long durable, int *followers, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_progress, e, key, holder, tmp_path, total, durable,
                            c->cfg->lease_ttl);
    if (!res)
        return e->code;
    if (PQntuples(res) != 1)
        return perr_set(e, PIER_E_CONFLICT, "fetch lease %s was taken over", key);
    if (followers)
        *followers = (int)db_int(res, 0, 0);
    return PIER_OK;
}

pier_err lease_release(struct ctx *c, const char *key, const char *holder, struct perr *e)
{
    return db_exec(c->db, c->a, &st_release, e, key, holder) ? PIER_OK : e->code;
}

void lease_fail(struct ctx *c, const char *key, const char *holder, pier_err code,
                const char *message, int keep_s)
{
    struct perr ignore;
    db_exec(c->db, c->a, &st_fail, &ignore, key, holder, message, perr_name(code),
            keep_s > 0 ? keep_s : 0);
}

pier_err lease_renew(struct ctx *c, const char *key, const char *holder, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_renew, e, key, holder, c->cfg->lease_ttl);
    if (!res)
        return e->code;
    if (PQntuples(res) != 1)
        return perr_set(e, PIER_E_CONFLICT, "fetch lease %s was taken over", key);
    return PIER_OK;
}

int lease_renew_ms(const struct ctx *c)
{
    int ms = c->cfg->lease_ttl * 250;
    return ms < 500 ? 500 : ms;
}

void lease_keeper_tick(void *arg)
{
    struct lease_keeper *k = arg;
    int64_t now = now_ms();
    if (now - k->last < lease_renew_ms(k->c))
        return;
    k->last = now;
    struct perr ignore;
    (void)lease_renew(k->c, k->key, k->holder, &ignore); /* a lost lease shows at its release */
}

/* ---- housekeeping and rule changes ---- */

/* Failures remembered for a rule's blobs are keyed b:<rule id>:<digest>. */
static const struct db_stmt st_forget_failures = {
    "lease_forget_failures",
    "DELETE FROM fetch_leases WHERE state = 'failed'"
    " AND left(key, length($1) + 3) = 'b:' || $1 || ':'", 1};
static const struct db_stmt st_downloads = {
    "lease_downloads",
    "SELECT substr(key, length($1) + 4) FROM fetch_leases"
    " WHERE left(key, length($1) + 3) = 'b:' || $1 || ':' AND state = 'running'"
    " AND expires_at > now()",
    1};
static const struct db_stmt st_tmp_in_use = {
    "lease_tmp_in_use",
    "SELECT 1 FROM fetch_leases WHERE tmp_path = $1 AND state = 'running' AND expires_at > now()",
    1};
static const struct db_stmt st_expire = {
    "lease_expire", "DELETE FROM fetch_leases WHERE expires_at < now() - interval '1 hour'", 0};

pier_err lease_forget_failures(struct ctx *c, long long rule_id, struct perr *e)
{
    return db_exec(c->db, c->a, &st_forget_failures, e, rule_id) ? PIER_OK : e->code;
}

pier_err lease_downloads(struct ctx *c, long long rule_id, const char ***out, int *n,
                         struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_downloads, e, rule_id);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++)
        (*out)[i] = PQgetvalue(res, i, 0);
    return PIER_OK;
}

pier_err lease_tmp_in_use(struct ctx *c, const char *tmp_path, bool *in_use, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tmp_in_use, e, tmp_path);
    if (!res)
        return e->code;
    *in_use = PQntuples(res) > 0;
    return PIER_OK;
}

pier_err lease_expire(struct ctx *c, long long *removed, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_expire, e);
    if (!res)
        return e->code;
    *removed = atoll(PQcmdTuples(res));
    return PIER_OK;
}
