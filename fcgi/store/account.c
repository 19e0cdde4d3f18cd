/* account: the pull_time_exclusions table. */
#include "store/account.h"

#include <string.h>
#include "db/db.h"

/* Inserts nothing (no row) when the ARN is there already or the list is
 * full; st_exclusion_has tells the two apart. */
static const struct db_stmt st_exclusion_add = {
    "acct_exclusion_add",
    "INSERT INTO pull_time_exclusions(principal_arn) SELECT $1"
    " WHERE (SELECT count(*) FROM pull_time_exclusions) < $2::int"
    " ON CONFLICT (principal_arn) DO NOTHING"
    " RETURNING extract(epoch FROM created_at)::bigint", 2};
static const struct db_stmt st_exclusion_has = {
    "acct_exclusion_has", "SELECT 1 FROM pull_time_exclusions WHERE principal_arn = $1", 1};
static const struct db_stmt st_exclusion_delete = {
    "acct_exclusion_delete", "DELETE FROM pull_time_exclusions WHERE principal_arn = $1", 1};
static const struct db_stmt st_exclusion_list = {
    "acct_exclusion_list",
    "SELECT principal_arn FROM pull_time_exclusions ORDER BY principal_arn"
    " LIMIT $1::bigint OFFSET $2::bigint", 2};

pier_err account_exclusion_add(struct ctx *c, const char *principal_arn, long long *created_at,
                               struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_exclusion_add, e, principal_arn,
                            ACCOUNT_EXCLUSIONS_MAX);
    if (!res)
        return e->code;
    if (PQntuples(res) == 1) {
        *created_at = db_int(res, 0, 0);
        return PIER_OK;
    }
    PGresult *has = db_exec(c->db, c->a, &st_exclusion_has, e, principal_arn);
    if (!has)
        return e->code;
    if (PQntuples(has) > 0)
        return perr_set(e, PIER_E_CONFLICT, "%s is already excluded from pull-time updates",
                        principal_arn);
    return perr_set(e, PIER_E_TOO_LARGE,
                    "the registry already has %d pull-time update exclusions, the limit",
                    ACCOUNT_EXCLUSIONS_MAX);
}

pier_err account_exclusion_delete(struct ctx *c, const char *principal_arn, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_exclusion_delete, e, principal_arn);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "%s is not excluded from pull-time updates",
                        principal_arn);
    return PIER_OK;
}

pier_err account_exclusion_list(struct ctx *c, long long limit, long long offset,
                                const char ***arns, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_exclusion_list, e, limit, offset);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *arns = arena_alloc(c->a, sizeof **arns * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++)
        (*arns)[i] = PQgetvalue(res, i, 0);
    return PIER_OK;
}
