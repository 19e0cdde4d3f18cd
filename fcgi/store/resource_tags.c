/* resource_tags: the resource_tags table. */
#include "store/resource_tags.h"

#include "db/db.h"

static const struct db_stmt st_list = {
    "rtags_list", "SELECT key, value FROM resource_tags WHERE resource_arn = $1 ORDER BY key", 1};
static const struct db_stmt st_put = {
    "rtags_put",
    "INSERT INTO resource_tags(resource_arn, key, value) VALUES ($1, $2, $3)"
    " ON CONFLICT (resource_arn, key) DO UPDATE SET value = EXCLUDED.value", 3};
static const struct db_stmt st_add_json = {
    "rtags_add_json",
    "INSERT INTO resource_tags(resource_arn, key, value)"
    " SELECT $1, t->>'Key', coalesce(t->>'Value', '')"
    " FROM jsonb_array_elements($2::jsonb) t ON CONFLICT DO NOTHING", 2};
static const struct db_stmt st_delete = {
    "rtags_delete", "DELETE FROM resource_tags WHERE resource_arn = $1 AND key = $2", 2};
static const struct db_stmt st_drop = {
    "rtags_drop", "DELETE FROM resource_tags WHERE resource_arn = $1", 1};
static const struct db_stmt st_count = {
    "rtags_count", "SELECT count(*) FROM resource_tags WHERE resource_arn = $1", 1};

pier_err resource_tags_list(struct ctx *c, const char *arn, struct resource_tag **out, int *n,
                            struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_list, e, arn);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        (*out)[i].key = PQgetvalue(res, i, 0);
        (*out)[i].value = PQgetvalue(res, i, 1);
    }
    return PIER_OK;
}

pier_err resource_tags_put(struct ctx *c, const char *arn, const char *key, const char *value,
                           struct perr *e)
{
    return db_exec(c->db, c->a, &st_put, e, arn, key, value) ? PIER_OK : e->code;
}

pier_err resource_tags_add_json(struct ctx *c, const char *arn, const char *tags_json,
                                struct perr *e)
{
    return db_exec(c->db, c->a, &st_add_json, e, arn, tags_json) ? PIER_OK : e->code;
}

pier_err resource_tags_delete(struct ctx *c, const char *arn, const char *key, struct perr *e)
{
    return db_exec(c->db, c->a, &st_delete, e, arn, key) ? PIER_OK : e->code;
}

pier_err resource_tags_drop(struct ctx *c, const char *arn, struct perr *e)
{
    return db_exec(c->db, c->a, &st_drop, e, arn) ? PIER_OK : e->code;
}

pier_err resource_tags_count(struct ctx *c, const char *arn, long long *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_count, e, arn);
    if (!res)
        return e->code;
    *n = db_int(res, 0, 0);
    return PIER_OK;
}
