/* templates: the creation_templates table. */
#include "store/templates.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "auth/authz.h"
#include "auth/policy.h"
#include "db/db.h"
#include "lib/grammar.h"
#include "store/lifecycle.h"
#include "store/lifecycle_store.h"
#include "store/mutability.h"
#include "store/repo.h"
#include "store/resource_tags.h"

#define TEMPLATE_COLUMNS                                                                            \
    "prefix, coalesce(description, ''), encryption_type, kms_key, resource_tags::text,"             \
    " image_tag_mutability, repository_policy, lifecycle_policy, array_to_json(applied_for)::text," \
    " custom_role_arn, (extract(epoch FROM created_at) * 1000)::bigint,"                            \
    " (extract(epoch FROM updated_at) * 1000)::bigint,"                                             \
    " array_to_json(image_tag_mutability_exclusions)::text"

static const struct db_stmt st_get = {
    "tpl_get", "SELECT " TEMPLATE_COLUMNS " FROM creation_templates WHERE prefix = $1", 1};
static const struct db_stmt st_list = {
    "tpl_list", "SELECT " TEMPLATE_COLUMNS " FROM creation_templates ORDER BY prefix", 0};
static const struct db_stmt st_insert = {
    "tpl_insert",
    "INSERT INTO creation_templates(prefix, description, encryption_type, kms_key, resource_tags,"
    " image_tag_mutability, repository_policy, lifecycle_policy, applied_for, custom_role_arn,"
    " image_tag_mutability_exclusions)"
    " VALUES ($1, nullif($2, ''), $3, $4, $5::jsonb, $6, $7, $8,"
    " ARRAY(SELECT json_array_elements_text($9::json)), $10,"
    " ARRAY(SELECT json_array_elements_text($11::json))) ON CONFLICT (prefix) DO NOTHING"
    " RETURNING prefix", 11};
static const struct db_stmt st_update = {
    "tpl_update",
    "UPDATE creation_templates SET description = nullif($2, ''), encryption_type = $3,"
    " kms_key = $4, resource_tags = $5::jsonb, image_tag_mutability = $6, repository_policy = $7,"
    " lifecycle_policy = $8, applied_for = ARRAY(SELECT json_array_elements_text($9::json)),"
    " custom_role_arn = $10,"
    " image_tag_mutability_exclusions = ARRAY(SELECT json_array_elements_text($11::json)),"
    " updated_at = now() WHERE prefix = $1 RETURNING prefix", 11};
static const struct db_stmt st_delete = {
    "tpl_delete", "DELETE FROM creation_templates WHERE prefix = $1", 1};
static const struct db_stmt st_match = {
    "tpl_match",
    "SELECT encryption_type, kms_key, image_tag_mutability, repository_policy, resource_tags::text,"
    " array_to_json(image_tag_mutability_exclusions)::text, lifecycle_policy"
    " FROM creation_templates WHERE $2 = ANY(applied_for)"
    " AND (prefix = 'ROOT' OR $1 = prefix OR left($1, length(prefix) + 1) = prefix || '/')"
    " ORDER BY prefix = 'ROOT', length(prefix) DESC LIMIT 1",
    2};

static json_t *row(PGresult *res, int i)
{
    json_t *tags = json_loads(PQgetvalue(res, i, 4), 0, NULL);
    /* ECR's timestamps: epoch seconds with their milliseconds. */
    json_t *t = json_pack("{s:s, s:o, s:o, s:s, s:f, s:f}", "prefix", PQgetvalue(res, i, 0),
                          "encryptionConfiguration",
                          json_pack("{s:s}", "encryptionType", PQgetvalue(res, i, 2)),
                          "resourceTags", tags ? tags : json_array(), "imageTagMutability",
                          PQgetvalue(res, i, 5), "createdAt", (double)db_int(res, i, 10) / 1000.0,
                          "updatedAt", (double)db_int(res, i, 11) / 1000.0);
    json_t *excl = json_loads(PQgetvalue(res, i, 12), 0, NULL);
    if (json_array_size(excl) > 0)
        json_object_set_new(t, "imageTagMutabilityExclusionFilters", mutability_filters_json(excl));
    json_decref(excl);
    if (PQgetvalue(res, i, 1)[0])
        json_object_set_new(t, "description", json_string(PQgetvalue(res, i, 1)));
    if (!PQgetisnull(res, i, 3))
        json_object_set_new(json_object_get(t, "encryptionConfiguration"), "kmsKey",
                            json_string(PQgetvalue(res, i, 3)));
    if (!PQgetisnull(res, i, 6))
        json_object_set_new(t, "repositoryPolicy", json_string(PQgetvalue(res, i, 6)));
    if (!PQgetisnull(res, i, 7))
        json_object_set_new(t, "lifecyclePolicy", json_string(PQgetvalue(res, i, 7)));
    json_t *applied = json_loads(PQgetvalue(res, i, 8), 0, NULL);
    json_object_set_new(t, "appliedFor", applied ? applied : json_array());
    if (!PQgetisnull(res, i, 9))
        json_object_set_new(t, "customRoleArn", json_string(PQgetvalue(res, i, 9)));
    return t;
}

pier_err templates_get(struct ctx *c, const char *prefix, json_t **out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get, e, prefix);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no repository creation template with prefix %s", prefix);
    *out = row(res, 0);
    return PIER_OK;
}

pier_err templates_list(struct ctx *c, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_list, e);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(out, row(res, i));
    return PIER_OK;
}

/* An empty string removes an optional document (ECR's Update semantics). */
static const char *doc_or_null(json_t *t, const char *field)
{
    const char *s = json_string_value(json_object_get(t, field));
    return s && *s ? s : NULL;
}

static pier_err validate(json_t *t, struct perr *e)
{
    json_t *af = json_object_get(t, "appliedFor");
    if (!json_is_array(af) || json_array_size(af) == 0)
        return perr_set(e, PIER_E_BAD_REQUEST, "appliedFor must list PULL_THROUGH_CACHE, REPLICATION and/or CREATE_ON_PUSH");
    size_t i;
    json_t *v;
    json_array_foreach(af, i, v) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "PULL_THROUGH_CACHE") && strcmp(s, "REPLICATION") && strcmp(s, "CREATE_ON_PUSH")))
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "appliedFor[%zu] must be PULL_THROUGH_CACHE, REPLICATION or CREATE_ON_PUSH", i);
    }
    json_t *mv = json_object_get(t, "imageTagMutability");
    if (mv && !json_is_string(mv))
        return perr_set(e, PIER_E_BAD_REQUEST, "imageTagMutability must be a string");
    const char *mut = mv ? json_string_value(mv) : "MUTABLE";
    json_t *values;
    pier_err rc = mutability_parse(mut, json_object_get(t, "imageTagMutabilityExclusionFilters"),
                                   &values, e);
    if (rc)
        return rc;
    json_decref(values);
    json_t *enc = json_object_get(t, "encryptionConfiguration");
    const char *et = json_string_value(json_object_get(enc, "encryptionType"));
    if (enc && (!et || (strcmp(et, "AES256") && strcmp(et, "KMS") && strcmp(et, "KMS_DSSE"))))
        return perr_set(e, PIER_E_BAD_REQUEST, "encryptionConfiguration.encryptionType must be AES256, KMS or KMS_DSSE");
    const char *pol = doc_or_null(t, "repositoryPolicy");
    if (pol) {
        struct policy *p;
        struct perr sub;
        if (policy_parse(pol, strlen(pol), POLICY_RESOURCE, &p, &sub) != PIER_OK)
            return perr_set(e, PIER_E_BAD_REQUEST, "repositoryPolicy: %s", sub.msg);
        policy_free(p);
    }
    const char *lc = doc_or_null(t, "lifecyclePolicy");
    if (lc) {
        struct lifecycle_policy *p;
        struct perr sub;
        if (strlen(lc) > LIFECYCLE_TEXT_MAX)
            return perr_set(e, PIER_E_BAD_REQUEST, "lifecyclePolicy must be at most %d characters",
                            LIFECYCLE_TEXT_MAX);
        if (lifecycle_parse(lc, &p, &sub) != PIER_OK)
            return perr_set(e, PIER_E_BAD_REQUEST, "lifecyclePolicy: %s", sub.msg);
        lifecycle_free(p);
    }
    json_t *tags = json_object_get(t, "resourceTags");
    if (tags && (!json_is_array(tags) || json_array_size(tags) > 50))
        return perr_set(e, PIER_E_BAD_REQUEST, "resourceTags must be a list of at most 50 tags");
    json_array_foreach(tags, i, v) {
        const char *k = json_string_value(json_object_get(v, "Key"));
        if (!k || !*k || strlen(k) > 128)
            return perr_set(e, PIER_E_BAD_REQUEST, "resourceTags[%zu].Key must be 1-128 characters", i);
    }
    return PIER_OK;
}

pier_err templates_check(const char *prefix, json_t *t, struct perr *e)
{
    if (strcmp(prefix, "ROOT") != 0) {
        struct perr sub;
        if (strlen(prefix) < 2 || strlen(prefix) > 256 || grammar_name(prefix, &sub) != PIER_OK)
            return perr_set(e, PIER_E_BAD_REQUEST, "prefix must be ROOT or a repository name prefix");
    }
    return validate(t, e);
}

pier_err templates_put(struct ctx *c, const char *prefix, json_t *t, bool create, struct perr *e)
{
    pier_err rc = templates_check(prefix, t, e);
    if (rc)
        return rc;
    json_t *enc = json_object_get(t, "encryptionConfiguration");
    const char *et = json_string_value(json_object_get(enc, "encryptionType"));
    const char *mut = json_string_value(json_object_get(t, "imageTagMutability"));
    json_t *values;
    if ((rc = mutability_parse(mut ? mut : "MUTABLE",
                               json_object_get(t, "imageTagMutabilityExclusionFilters"), &values,
                               e)))
        return rc;
    char *exclusions = json_dumps(values, JSON_COMPACT);
    json_decref(values);
    arena_defer(c->a, free, exclusions);
    json_t *given = json_object_get(t, "resourceTags");
    char *tags = given ? json_dumps(given, JSON_COMPACT) : strdup("[]");
    char *applied = json_dumps(json_object_get(t, "appliedFor"), JSON_COMPACT);
    arena_defer(c->a, free, tags);
    arena_defer(c->a, free, applied);
    const char *desc = json_string_value(json_object_get(t, "description"));
    PGresult *res = db_exec(
        c->db, c->a, create ? &st_insert : &st_update, e, prefix, desc ? desc : "",
        et ? et : "AES256", json_string_value(json_object_get(enc, "kmsKey")), tags,
        mut ? mut : "MUTABLE", doc_or_null(t, "repositoryPolicy"),
        doc_or_null(t, "lifecyclePolicy"), applied,
        json_string_value(json_object_get(t, "customRoleArn")), exclusions ? exclusions : "[]");
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return create ? perr_set(e, PIER_E_CONFLICT, "a template with prefix %s already exists", prefix)
                      : perr_set(e, PIER_E_NAME_UNKNOWN, "no repository creation template with prefix %s", prefix);
    return PIER_OK;
}

pier_err templates_delete(struct ctx *c, const char *prefix, json_t **old, struct perr *e)
{
    pier_err rc = templates_get(c, prefix, old, e);
    if (rc)
        return rc;
    return db_exec(c->db, c->a, &st_delete, e, prefix) ? PIER_OK : e->code;
}

pier_err templates_apply(struct ctx *c, const char *repo_id, const char *name, const char *applied_for,
                         struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_match, e, name, applied_for);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return PIER_OK;
    pier_err rc = repo_apply_template(c, repo_id, PQgetvalue(res, 0, 0), db_value(res, 0, 1),
                                      PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 5), e);
    if (rc)
        return rc;
    if (!PQgetisnull(res, 0, 3) &&
        (rc = repository_policy_init(c, repo_id, PQgetvalue(res, 0, 3), e)))
        return rc;
    if (!PQgetisnull(res, 0, 6) &&
        (rc = lifecycle_policy_init(c, repo_id, PQgetvalue(res, 0, 6), e)))
        return rc;
    char *arn = arena_printf(c->a, "arn:aws:ecr:%s:%s:repository/%s", c->cfg->region,
                             c->cfg->account_id, name);
    return resource_tags_add_json(c, arn, PQgetvalue(res, 0, 4), e);
}
