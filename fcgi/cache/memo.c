/* memo: the cache_negative and cache_referrers tables. */
#include "cache/memo.h"

#include <stdio.h>
#include <stdlib.h>
#include "db/db.h"

static const struct db_stmt st_negative_get = {
    "memo_negative_get",
    "SELECT 1 FROM cache_negative WHERE repository = $1 AND reference = $2 AND until > now()", 2};
static const struct db_stmt st_negative_put = {
    "memo_negative_put",
    "INSERT INTO cache_negative(repository, reference, until)"
    " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
    " ON CONFLICT (repository, reference) DO UPDATE SET until = EXCLUDED.until", 3};
static const struct db_stmt st_negative_clear = {
    "memo_negative_clear", "DELETE FROM cache_negative WHERE repository = $1 AND reference = $2",
    2};
static const struct db_stmt st_referrers_get = {
    "memo_referrers_get",
    "SELECT cr.manifests::text, cr.fetched_at > now() - make_interval(secs => $3::int)"
    " FROM cache_referrers cr JOIN repositories r ON r.id = cr.repository_id"
    " WHERE r.name = $1 AND cr.subject = $2", 3};
static const struct db_stmt st_referrers_put = {
    "memo_referrers_put",
    "INSERT INTO cache_referrers(repository_id, subject, manifests)"
    " SELECT id, $2, $3::jsonb FROM repositories WHERE name = $1"
    " ON CONFLICT (repository_id, subject) DO UPDATE SET manifests = EXCLUDED.manifests,"
    " fetched_at = now()", 3};
static const struct db_stmt st_expire = {
    "memo_expire",
    "WITH n AS (DELETE FROM cache_negative WHERE until < now() RETURNING 1),"
    " r AS (DELETE FROM cache_referrers WHERE fetched_at < now() - interval '7 days' RETURNING 1)"
    " SELECT (SELECT count(*) FROM n) + (SELECT count(*) FROM r)", 0};

pier_err memo_negative_get(struct ctx *c, const char *repo, const char *ref, bool *remembered,
                           struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_negative_get, e, repo, ref);
    if (!res)
        return e->code;
    *remembered = PQntuples(res) > 0;
    return PIER_OK;
}

pier_err memo_negative_put(struct ctx *c, const char *repo, const char *ref, int seconds,
                           struct perr *e)
{
    return db_exec(c->db, c->a, &st_negative_put, e, repo, ref, seconds) ? PIER_OK : e->code;
}

pier_err memo_negative_clear(struct ctx *c, const char *repo, const char *ref, struct perr *e)
{
    return db_exec(c->db, c->a, &st_negative_clear, e, repo, ref) ? PIER_OK : e->code;
}

pier_err memo_referrers_get(struct ctx *c, const char *repo, const char *subject,
                            int refresh_seconds, const char **manifests, bool *fresh,
                            struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_referrers_get, e, repo, subject, refresh_seconds);
    if (!res)
        return e->code;
    *manifests = PQntuples(res) ? PQgetvalue(res, 0, 0) : NULL;
    *fresh = PQntuples(res) && PQgetvalue(res, 0, 1)[0] == 't';
    return PIER_OK;
}

pier_err memo_referrers_put(struct ctx *c, const char *repo, const char *subject,
                            const char *manifests, struct perr *e)
{
    return db_exec(c->db, c->a, &st_referrers_put, e, repo, subject, manifests) ? PIER_OK
                                                                                 : e->code;
}

pier_err memo_expire(struct ctx *c, long long *removed, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_expire, e);
    if (!res)
        return e->code;
    *removed = db_int(res, 0, 0);
    return PIER_OK;
}
