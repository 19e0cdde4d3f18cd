/* secrets: secrets table, values sealed with the server key. */
#include "auth/secrets.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "db/db.h"
#include "lib/secretbox.h"
#include "lib/util.h"

#define CTX_SECRET "secrets.value"

static const struct db_stmt st_insert = {
    "sec_insert",
    "INSERT INTO secrets(name, arn, description, value_enc, version_id)"
    " VALUES ($1, $2, $3, $4::bytea, $5::uuid) ON CONFLICT (name) DO NOTHING RETURNING arn", 5};
static const struct db_stmt st_put = {
    "sec_put",
    "UPDATE secrets SET value_enc = $2::bytea, version_id = $3::uuid, updated_at = now()"
    " WHERE name = $1 OR arn = $1 RETURNING arn, name", 3};
static const struct db_stmt st_get = {
    "sec_get",
    "SELECT name, arn, coalesce(description, ''), extract(epoch FROM created_at)::bigint,"
    " extract(epoch FROM updated_at)::bigint, value_enc FROM secrets WHERE name = $1 OR arn = $1", 1};
static const struct db_stmt st_list = {
    "sec_list",
    "SELECT name, arn, coalesce(description, ''), extract(epoch FROM created_at)::bigint,"
    " extract(epoch FROM updated_at)::bigint FROM secrets ORDER BY name", 0};
static const struct db_stmt st_delete = {
    "sec_delete", "DELETE FROM secrets WHERE name = $1 OR arn = $1 RETURNING arn, name", 1};

pier_err secret_check_name(const char *name, struct perr *e)
{
    size_t n = strlen(name);
    if (n < 1 || n > 512)
        return perr_set(e, PIER_E_BAD_REQUEST, "secret names are 1-512 characters");
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("/_+=.@-", name[i]))
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "secret names may contain only letters, digits and /_+=.@- "
                            "(character %zu is '%c')", i, name[i]);
    return PIER_OK;
}

static pier_err seal(struct ctx *c, const char *value, struct db_param *p, struct perr *e)
{
    if (strlen(value) > SECRET_VALUE_MAX)
        return perr_set(e, PIER_E_BAD_REQUEST, "secret values are at most %d bytes", SECRET_VALUE_MAX);
    p->binary = true;
    return secretbox_seal_arena(c->sb, c->a, CTX_SECRET, value, &p->value, &p->length, e);
}

pier_err secret_create(struct ctx *c, const char *name, const char *description,
                       const char *value, const char **arn, const char **version, struct perr *e)
{
    pier_err rc = secret_check_name(name, e);
    if (rc)
        return rc;
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[6];
    char suffix[7], *vid = arena_alloc(c->a, UUID_STR_LEN);
    if (RAND_bytes(rnd, sizeof rnd) != 1 || !uuid_v4(vid))
        return perr_set(e, PIER_E_INTERNAL, "random number generator failed");
    for (int i = 0; i < 6; i++)
        suffix[i] = alnum[rnd[i] % (sizeof alnum - 1)];
    suffix[6] = '\0';
    char *a = arena_printf(c->a, "arn:aws:secretsmanager:%s:%s:secret:%s-%s", c->cfg->region,
                           c->cfg->account_id, name, suffix);
    struct db_param p[5] = {{.value = name}, {.value = a}, {.value = description}};
    if (value && (rc = seal(c, value, &p[3], e)))
        return rc;
    p[4].value = value ? vid : NULL;
    PGresult *res = db_execp(c->db, c->a, &st_insert, p, false, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_CONFLICT, "the secret %s already exists", name);
    *arn = a;
    *version = value ? vid : NULL;
    return PIER_OK;
}

pier_err secret_put(struct ctx *c, const char *id, const char *value, const char **arn,
                    const char **name, const char **version, struct perr *e)
{
    struct db_param p[3] = {{.value = id}};
    char *vid = arena_alloc(c->a, UUID_STR_LEN);
    if (!uuid_v4(vid))
        return perr_set(e, PIER_E_INTERNAL, "the random number generator failed");
    pier_err rc = seal(c, value, &p[1], e);
    if (rc)
        return rc;
    p[2].value = vid;
    PGresult *res = db_execp(c->db, c->a, &st_put, p, false, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "Secrets Manager can't find the specified secret.");
    *arn = PQgetvalue(res, 0, 0);
    *name = PQgetvalue(res, 0, 1);
    *version = vid;
    return PIER_OK;
}

static json_t *meta(PGresult *res, int i)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "Name", PQgetvalue(res, i, 0), "ARN",
                          PQgetvalue(res, i, 1), "CreatedDate", (json_int_t)db_int(res, i, 3),
                          "LastChangedDate", (json_int_t)db_int(res, i, 4));
    if (PQgetvalue(res, i, 2)[0])
        json_object_set_new(j, "Description", json_string(PQgetvalue(res, i, 2)));
    return j;
}

pier_err secret_describe(struct ctx *c, const char *id, json_t **out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get, e, id);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "Secrets Manager can't find the specified secret.");
    *out = meta(res, 0);
    return PIER_OK;
}

pier_err secret_list(struct ctx *c, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_list, e);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(out, meta(res, i));
    return PIER_OK;
}

pier_err secret_delete(struct ctx *c, const char *id, const char **arn, const char **name,
                       struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_delete, e, id);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "Secrets Manager can't find the specified secret.");
    *arn = PQgetvalue(res, 0, 0);
    *name = PQgetvalue(res, 0, 1);
    return PIER_OK;
}

pier_err secret_value(struct ctx *c, const char *id, char **value, struct perr *e)
{
    struct db_param p[1] = {{.value = id}};
    PGresult *res = db_execp(c->db, c->a, &st_get, p, true, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 5))
        return perr_set(e, PIER_E_NAME_UNKNOWN, "the secret %.200s does not exist or has no value", id);
    size_t len = (size_t)PQgetlength(res, 0, 5);
    char *out = arena_alloc(c->a, len + 1);
    pier_err rc = secretbox_open(c->sb, CTX_SECRET, (const unsigned char *)PQgetvalue(res, 0, 5), len,
                                 out, len + 1, NULL, e);
    if (rc)
        return rc;
    *value = out;
    return PIER_OK;
}
