/* lifecycle_store: the lifecycle_policies, lifecycle_previews and
 * lifecycle_preview_results tables. */
#include "store/lifecycle_store.h"

#include <stdlib.h>
#include <string.h>
#include "db/db.h"
#include "lib/log.h"
#include "store/lifecycle.h"

/* Preview results are inserted this many per statement, so that no
 * parameter grows with the size of a repository. */
#define PREVIEW_BATCH 500

static const struct db_stmt st_put = {
    "lc_put",
    "INSERT INTO lifecycle_policies(repository_id, policy_text)"
    " SELECT id, $2 FROM repositories WHERE name = $1"
    " ON CONFLICT (repository_id) DO UPDATE SET policy_text = EXCLUDED.policy_text,"
    " updated_at = now(), last_evaluated_at = NULL RETURNING repository_id",
    2};
static const struct db_stmt st_get = {
    "lc_get",
    "SELECT p.repository_id IS NOT NULL, p.policy_text,"
    " coalesce(extract(epoch FROM p.last_evaluated_at)::bigint, 0)"
    " FROM repositories r LEFT JOIN lifecycle_policies p ON p.repository_id = r.id"
    " WHERE r.name = $1",
    1};
static const struct db_stmt st_delete = {
    "lc_delete",
    "DELETE FROM lifecycle_policies p USING repositories r"
    " WHERE p.repository_id = r.id AND r.name = $1"
    " RETURNING p.policy_text, coalesce(extract(epoch FROM p.last_evaluated_at)::bigint, 0)",
    1};
static const struct db_stmt st_init = {
    "lc_init",
    "INSERT INTO lifecycle_policies(repository_id, policy_text) VALUES ($1::bigint, $2)"
    " ON CONFLICT (repository_id) DO UPDATE SET policy_text = EXCLUDED.policy_text,"
    " updated_at = now(), last_evaluated_at = NULL",
    2};
static const struct db_stmt st_evaluated = {
    "lc_evaluated",
    "UPDATE lifecycle_policies p SET last_evaluated_at = now() FROM repositories r"
    " WHERE p.repository_id = r.id AND r.name = $1",
    1};
static const struct db_stmt st_due = {
    "lc_due",
    "SELECT r.name FROM lifecycle_policies p JOIN repositories r ON r.id = p.repository_id"
    " ORDER BY p.last_evaluated_at NULLS FIRST, r.name LIMIT $1::int",
    1};

static const struct db_stmt st_staleness = {
    "lc_staleness",
    "SELECT count(*), coalesce(extract(epoch FROM min(coalesce(last_evaluated_at, updated_at))),"
    " 0)::bigint FROM lifecycle_policies",
    0};

/* Previews. The lock is per repository name, for one transaction. */
static const struct db_stmt st_preview_lock = {
    "lc_preview_lock", "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7040))", 1};
static const struct db_stmt st_preview_upsert = {
    "lc_preview_upsert",
    "INSERT INTO lifecycle_previews(repository_id, policy_text, status, expiring)"
    " SELECT id, $2, 'COMPLETE', $3::bigint FROM repositories WHERE name = $1"
    " ON CONFLICT (repository_id) DO UPDATE SET policy_text = EXCLUDED.policy_text,"
    " status = EXCLUDED.status, expiring = EXCLUDED.expiring, created_at = now()"
    " RETURNING repository_id",
    3};
static const struct db_stmt st_preview_clear = {
    "lc_preview_clear", "DELETE FROM lifecycle_preview_results WHERE repository_id = $1::bigint",
    1};
static const struct db_stmt st_preview_insert = {
    "lc_preview_insert",
    "INSERT INTO lifecycle_preview_results(repository_id, ordinal, digest, tags, pushed_at,"
    " rule_priority) SELECT $1::bigint, $3::int + (x.n - 1)::int, x.v->>'d', x.v->'t',"
    " (x.v->>'p')::bigint, (x.v->>'r')::int"
    " FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS x(v, n)",
    3};
static const struct db_stmt st_preview_get = {
    "lc_preview_get",
    "SELECT p.repository_id IS NOT NULL, p.policy_text, p.status, p.expiring,"
    " extract(epoch FROM p.created_at)::bigint"
    " FROM repositories r LEFT JOIN lifecycle_previews p ON p.repository_id = r.id"
    " WHERE r.name = $1",
    1};
static const struct db_stmt st_preview_results = {
    "lc_preview_results",
    "SELECT x.digest, x.tags::text, x.pushed_at, x.rule_priority"
    " FROM lifecycle_preview_results x JOIN repositories r ON r.id = x.repository_id"
    " WHERE r.name = $1 AND ($2 = 'ANY' OR ($2 = 'TAGGED') = (jsonb_array_length(x.tags) > 0))"
    " AND ($3::text IS NULL OR x.digest = $3)"
    " AND ($4::text IS NULL OR x.tags @> jsonb_build_array($4::text))"
    " ORDER BY x.ordinal LIMIT $5::bigint OFFSET $6::bigint",
    6};

static pier_err no_repository(struct perr *e, const char *name)
{
    return perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s does not exist", name);
}

pier_err lifecycle_policy_put(struct ctx *c, const char *name, const char *text, struct perr *e)
{
    if (!text || strlen(text) > LIFECYCLE_TEXT_MAX)
        return perr_set(e, PIER_E_BAD_REQUEST, "lifecycle policy: at most %d characters",
                        LIFECYCLE_TEXT_MAX);
    struct lifecycle_policy *p;
    pier_err rc = lifecycle_parse(text, &p, e);
    if (rc)
        return rc;
    lifecycle_free(p);
    PGresult *res = db_exec(c->db, c->a, &st_put, e, name, text);
    if (!res)
        return e->code;
    return PQntuples(res) ? PIER_OK : no_repository(e, name);
}

pier_err lifecycle_policy_get(struct ctx *c, const char *name, struct lifecycle_record *out,
                              struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get, e, name);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return no_repository(e, name);
    if (db_value(res, 0, 0)[0] != 't')
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN,
                        "Lifecycle policy does not exist for the repository with name '%s'", name);
    out->text = PQgetvalue(res, 0, 1);
    out->last_evaluated_at = db_int(res, 0, 2);
    return PIER_OK;
}

pier_err lifecycle_policy_delete(struct ctx *c, const char *name, struct lifecycle_record *old,
                                 struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_delete, e, name);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0) /* why not: no repository, or no policy */
        return lifecycle_policy_get(c, name, old, e)
                   ? e->code
                   : perr_set(e, PIER_E_CONFLICT, "the lifecycle policy of %s changed meanwhile",
                              name);
    old->text = PQgetvalue(res, 0, 0);
    old->last_evaluated_at = db_int(res, 0, 1);
    return PIER_OK;
}

pier_err lifecycle_policy_init(struct ctx *c, const char *repo_id, const char *text, struct perr *e)
{
    struct lifecycle_policy *p;
    struct perr why;
    if (strlen(text) > LIFECYCLE_TEXT_MAX || lifecycle_parse(text, &p, &why) != PIER_OK) {
        log_warn("creation template: the lifecycle policy for repository id %s is left out: %s",
                 repo_id, strlen(text) > LIFECYCLE_TEXT_MAX ? "too long" : why.msg);
        return PIER_OK;
    }
    lifecycle_free(p);
    return db_exec(c->db, c->a, &st_init, e, repo_id, text) ? PIER_OK : e->code;
}

pier_err lifecycle_policy_evaluated(struct ctx *c, const char *name, struct perr *e)
{
    return db_exec(c->db, c->a, &st_evaluated, e, name) ? PIER_OK : e->code;
}

pier_err lifecycle_policy_due(struct ctx *c, int n, const char ***names, int *count, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_due, e, n);
    if (!res)
        return e->code;
    *count = PQntuples(res);
    *names = arena_alloc(c->a, sizeof **names * (size_t)(*count ? *count : 1));
    for (int i = 0; i < *count; i++)
        (*names)[i] = PQgetvalue(res, i, 0);
    return PIER_OK;
}

pier_err lifecycle_policy_staleness(struct ctx *c, long long *policies, long long *oldest,
                                   struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_staleness, e);
    if (!res)
        return e->code;
    *policies = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *oldest = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    return PIER_OK;
}

pier_err lifecycle_preview_lock(struct ctx *c, const char *name, struct perr *e)
{
    PIER_ASSERT(db_in_tx(c->db));
    PGresult *res = db_exec(c->db, c->a, &st_preview_lock, e, name);
    if (!res)
        return e->code;
    if (db_value(res, 0, 0)[0] != 't')
        return perr_set(e, PIER_E_CONFLICT,
                        "a lifecycle policy preview of repository %s is in progress", name);
    return PIER_OK;
}

/* Results [from, to) of x as the JSON array st_preview_insert reads. */
static char *batch_json(const struct lifecycle_expiry *x, size_t from, size_t to)
{
    json_t *arr = json_array();
    for (size_t i = from; i < to; i++) {
        json_t *tags = json_loads(x[i].tags_json, 0, NULL);
        json_array_append_new(arr, json_pack("{s:s, s:o, s:I, s:i}", "d", x[i].digest, "t",
                                             json_is_array(tags) ? tags : json_array(), "p",
                                             (json_int_t)x[i].pushed_at, "r", x[i].rule));
        if (tags && !json_is_array(tags))
            json_decref(tags);
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

pier_err lifecycle_preview_save(struct ctx *c, const char *name, const char *text,
                                const struct lifecycle_expiry *x, size_t n, struct perr *e)
{
    pier_err rc = db_tx_begin(c->db, e);
    if (rc)
        return rc;
    PGresult *res = db_exec(c->db, c->a, &st_preview_upsert, e, name, text, (long long)n);
    if (!res) {
        rc = e->code;
    } else if (PQntuples(res) == 0) {
        rc = no_repository(e, name);
    } else {
        const char *id = PQgetvalue(res, 0, 0);
        if (!db_exec(c->db, c->a, &st_preview_clear, e, id))
            rc = e->code;
        for (size_t from = 0; !rc && from < n; from += PREVIEW_BATCH) {
            size_t to = n - from > PREVIEW_BATCH ? from + PREVIEW_BATCH : n;
            char *batch = batch_json(x, from, to);
            if (!batch) {
                rc = perr_set(e, PIER_E_INTERNAL, "out of memory");
                break;
            }
            arena_defer(c->a, free, batch);
            if (!db_exec(c->db, c->a, &st_preview_insert, e, id, batch, (int)from))
                rc = e->code;
        }
    }
    return db_tx_end(c->db, rc, e);
}

pier_err lifecycle_preview_get(struct ctx *c, const char *name, struct lifecycle_preview *out,
                               struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_preview_get, e, name);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return no_repository(e, name);
    if (db_value(res, 0, 0)[0] != 't')
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN,
                        "Lifecycle policy preview request does not exist for the repository "
                        "with name '%s'",
                        name);
    out->text = PQgetvalue(res, 0, 1);
    out->status = PQgetvalue(res, 0, 2);
    out->expiring = db_int(res, 0, 3);
    out->created_at = db_int(res, 0, 4);
    return PIER_OK;
}

pier_err lifecycle_preview_results(struct ctx *c, const char *name, const char *status,
                                   const char *digest, const char *tag, long long limit,
                                   long long offset, json_t *out, bool *more, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_preview_results, e, name, status, digest, tag,
                            limit + 1, offset);
    if (!res)
        return e->code;
    int rows = PQntuples(res);
    *more = rows > limit;
    for (int i = 0; i < rows && i < limit; i++) {
        json_t *r = json_pack("{s:s, s:I, s:{s:s}, s:I}", "imageDigest", PQgetvalue(res, i, 0),
                              "imagePushedAt", (json_int_t)db_int(res, i, 2), "action", "type",
                              "EXPIRE", "appliedRulePriority", (json_int_t)db_int(res, i, 3));
        json_t *tags = json_loads(PQgetvalue(res, i, 1), 0, NULL);
        if (json_array_size(tags) > 0)
            json_object_set_new(r, "imageTags", tags);
        else
            json_decref(tags);
        json_array_append_new(out, r);
    }
    return PIER_OK;
}
