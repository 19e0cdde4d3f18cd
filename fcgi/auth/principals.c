/* principals: principals, access_keys, identity_policies tables. */
#include "auth/principals.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "auth/policy.h"
#include "db/db.h"
#include "lib/log.h"
#include "lib/secretbox.h"

/* Secrets are 240 random bits: guessing is hopeless, so a keyed hash (HMAC
 * under a key derived from the server key) replaces the slow hash; rows
 * still hashed with PBKDF2 (iterations > 0) are upgraded at their next
 * successful login. */
#define KEY_HASH_LABEL "pier access key hash v1"
#define SALT_LEN 16
#define HASH_LEN 32
#define CTX_KEY "access_keys.secret"

static const struct db_stmt st_insert = {
    "pr_insert",
    "INSERT INTO principals(name, arn) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id", 2};
static const struct db_stmt st_get = {
    "pr_get", "SELECT id, name, arn FROM principals WHERE name = $1", 1};
static const struct db_stmt st_get_id = {
    "pr_get_id", "SELECT id, name, arn FROM principals WHERE id = $1::bigint", 1};
static const struct db_stmt st_delete = {
    "pr_delete", "DELETE FROM principals WHERE name = $1", 1};
static const struct db_stmt st_list = {
    "pr_list",
    "SELECT p.name, p.arn, extract(epoch FROM p.created_at)::bigint,"
    " (SELECT count(*) FROM access_keys k WHERE k.principal_id = p.id),"
    " (SELECT coalesce(json_agg(i.name ORDER BY i.name), '[]') FROM identity_policies i"
    "   WHERE i.principal_id = p.id)"
    " FROM principals p ORDER BY p.name", 0};
static const struct db_stmt st_count = {"pr_count", "SELECT count(*) FROM principals", 0};
static const struct db_stmt st_key_insert = {
    "key_insert",
    "INSERT INTO access_keys(id, principal_id, secret_hash, salt, iterations, secret_enc)"
    " VALUES ($1, $2::bigint, $3::bytea, $4::bytea, $5::int, $6::bytea)", 6};
static const struct db_stmt st_key_delete = {"key_delete", "DELETE FROM access_keys WHERE id = $1", 1};
static const struct db_stmt st_key_list = {
    "key_list",
    "SELECT id, active, extract(epoch FROM created_at)::bigint,"
    " coalesce(extract(epoch FROM last_used_at)::bigint, 0)"
    " FROM access_keys WHERE principal_id = $1::bigint ORDER BY created_at", 1};
static const struct db_stmt st_key_get = {
    "key_get",
    "SELECT k.secret_hash, k.salt, k.iterations, k.secret_enc, k.active, p.id, p.name, p.arn"
    " FROM access_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1", 1};
static const struct db_stmt st_key_rehash = {
    "key_rehash",
    "UPDATE access_keys SET secret_hash = $2::bytea, iterations = 0 WHERE id = $1", 2};
static const struct db_stmt st_key_active = {
    "key_active", "SELECT active FROM access_keys WHERE id = $1", 1};
static const struct db_stmt st_key_set_active = {
    "key_set_active", "UPDATE access_keys SET active = $2::boolean WHERE id = $1", 2};
/* The key's principal and how many active keys that principal has. */
static const struct db_stmt st_key_owner = {
    "key_owner",
    "SELECT p.id, p.name, p.arn, k.active,"
    " (SELECT count(*) FROM access_keys o WHERE o.principal_id = p.id AND o.active)"
    " FROM access_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1", 1};
static const struct db_stmt st_key_used = {
    "key_used",
    "UPDATE access_keys SET last_used_at = now() WHERE id = $1"
    " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", 1};
/* Writes nothing (no row returned) when the principal already has
 * IDENTITY_POLICIES_MAX other policies. */
static const struct db_stmt st_ip_put = {
    "ip_put",
    "INSERT INTO identity_policies(principal_id, name, document)"
    " SELECT $1::bigint, $2, $3 WHERE (SELECT count(*) FROM identity_policies"
    "   WHERE principal_id = $1::bigint AND name <> $2) < $4::int"
    " ON CONFLICT (principal_id, name) DO UPDATE SET document = EXCLUDED.document,"
    " updated_at = now() RETURNING 1", 4};
static const struct db_stmt st_ip_delete = {
    "ip_delete", "DELETE FROM identity_policies WHERE principal_id = $1::bigint AND name = $2", 2};
static const struct db_stmt st_ip_list = {
    "ip_list",
    "SELECT name, document FROM identity_policies WHERE principal_id = $1::bigint ORDER BY name", 1};

pier_err principal_check_name(const char *name, struct perr *e)
{
    size_t n = strlen(name);
    if (n < 1 || n > PRINCIPAL_NAME_MAX)
        return perr_set(e, PIER_E_BAD_REQUEST, "user and role names must be 1-64 characters");
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("+=,.@_-", name[i]))
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "user and role names may contain only letters, digits and +=,.@_- "
                            "(character %zu is '%c')", i, name[i]);
    return PIER_OK;
}

static void fill(PGresult *res, struct principal *out)
{
    out->id = db_int(res, 0, 0);
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(res, 0, 1));
    snprintf(out->arn, sizeof out->arn, "%s", PQgetvalue(res, 0, 2));
}

void principal_arn(struct ctx *c, enum principal_kind kind, const char *name, char out[ARN_MAX])
{
    snprintf(out, ARN_MAX, "arn:aws:iam::%s:%s/%s", c->cfg->account_id,
             kind == PRINCIPAL_ROLE ? "role" : "user", name);
}

pier_err principal_create(struct ctx *c, const char *name, enum principal_kind kind,
                          struct principal *out, struct perr *e)
{
    pier_err rc = principal_check_name(name, e);
    if (rc)
        return rc;
    char arn[ARN_MAX];
    principal_arn(c, kind, name, arn);
    PGresult *res = db_exec(c->db, c->a, &st_insert, e, name, arn);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_CONFLICT, "a user or role named %s already exists", name);
    out->id = db_int(res, 0, 0);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->arn, sizeof out->arn, "%s", arn);
    return PIER_OK;
}

pier_err principal_get(struct ctx *c, const char *name, struct principal *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get, e, name);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no user or role named %s", name);
    fill(res, out);
    return PIER_OK;
}

pier_err principal_get_id(struct ctx *c, long long id, struct principal *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_get_id, e, id);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_UNAUTHORIZED, "the principal no longer exists");
    fill(res, out);
    return PIER_OK;
}

pier_err principal_delete(struct ctx *c, const char *name, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_delete, e, name);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no user or role named %s", name);
    return PIER_OK;
}

pier_err principal_list(struct ctx *c, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_list, e);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *pol = json_loads(PQgetvalue(res, i, 4), 0, NULL);
        json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:I, s:o}", "name",
                                             PQgetvalue(res, i, 0), "arn", PQgetvalue(res, i, 1),
                                             "createdAt", (json_int_t)db_int(res, i, 2),
                                             "accessKeys", (json_int_t)db_int(res, i, 3),
                                             "policies", pol ? pol : json_array()));
    }
    return PIER_OK;
}

pier_err principal_count(struct ctx *c, long long *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_count, e);
    if (!res)
        return e->code;
    *n = db_int(res, 0, 0);
    return PIER_OK;
}

/* iterations 0: HMAC-SHA256(derived key, salt || secret); otherwise the
 * PBKDF2 of rows written by earlier versions. */
static bool hash_secret(struct ctx *c, const char *secret, const unsigned char *salt,
                        int iterations, unsigned char out[HASH_LEN])
{
    if (iterations > 0)
        return PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, SALT_LEN, iterations,
                                 EVP_sha256(), HASH_LEN, out) == 1;
    unsigned char key[SECRETBOX_KEY_LEN];
    struct perr e;
    if (secretbox_derive(c->sb, KEY_HASH_LABEL, key, &e) != PIER_OK)
        return false;
    unsigned char msg[SALT_LEN + 128];
    size_t n = strlen(secret);
    if (n > 128)
        n = 128;
    memcpy(msg, salt, SALT_LEN);
    memcpy(msg + SALT_LEN, secret, n);
    unsigned int len = HASH_LEN;
    bool ok = HMAC(EVP_sha256(), key, sizeof key, msg, SALT_LEN + n, out, &len) != NULL;
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(msg, sizeof msg);
    return ok && len == HASH_LEN;
}

pier_err key_create(struct ctx *c, long long principal_id, char id[KEY_ID_LEN + 1],
                    char secret[KEY_SECRET_LEN + 1], struct perr *e)
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char rnd[16], sraw[30], salt[SALT_LEN], hash[HASH_LEN];
    if (RAND_bytes(rnd, sizeof rnd) != 1 || RAND_bytes(sraw, sizeof sraw) != 1 ||
        RAND_bytes(salt, sizeof salt) != 1)
        return perr_set(e, PIER_E_INTERNAL, "random number generator failed");
    memcpy(id, "PIER", 4);
    for (int i = 0; i < 16; i++)
        id[4 + i] = b32[rnd[i] & 31];
    id[KEY_ID_LEN] = '\0';
    /* base64 has no ':', which `aws ecr get-login-password` would trip over. */
    EVP_EncodeBlock((unsigned char *)secret, sraw, sizeof sraw);
    secret[KEY_SECRET_LEN] = '\0';
    OPENSSL_cleanse(sraw, sizeof sraw);
    if (!hash_secret(c, secret, salt, 0, hash))
        return perr_set(e, PIER_E_INTERNAL, "cannot hash the secret: no server key");
    unsigned char sealed[KEY_SECRET_LEN + SECRETBOX_OVERHEAD];
    size_t slen;
    pier_err rc = secretbox_seal(c->sb, CTX_KEY, secret, KEY_SECRET_LEN, sealed, &slen, e);
    if (rc)
        return rc;
    struct db_param p[6] = {
        DB_ARG(id), DB_ARG(principal_id),
        DB_BYTES(hash, HASH_LEN),
        DB_BYTES(salt, SALT_LEN),
        DB_ARG(0),
        DB_BYTES(sealed, slen),
    };
    return db_execp(c->db, c->a, &st_key_insert, p, false, e) ? PIER_OK : e->code;
}

pier_err key_delete(struct ctx *c, const char *id, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_key_delete, e, id);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no access key %s", id);
    return PIER_OK;
}

pier_err key_set_active(struct ctx *c, const char *id, bool active, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_key_set_active, e, id, active);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no access key %s", id);
    return PIER_OK;
}

pier_err key_owner(struct ctx *c, const char *id, struct principal *out, bool *active,
                   long long *active_keys, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_key_owner, e, id);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no access key %s", id);
    fill(res, out);
    *active = PQgetvalue(res, 0, 3)[0] == 't';
    *active_keys = db_int(res, 0, 4);
    return PIER_OK;
}

pier_err key_list(struct ctx *c, long long principal_id, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_key_list, e, principal_id);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(out, json_pack("{s:s, s:b, s:I, s:I}", "accessKeyId",
                                             PQgetvalue(res, i, 0), "active",
                                             PQgetvalue(res, i, 1)[0] == 't', "createdAt",
                                             (json_int_t)db_int(res, i, 2), "lastUsedAt",
                                             (json_int_t)db_int(res, i, 3)));
    return PIER_OK;
}

static PGresult *key_row(struct ctx *c, const char *id, struct perr *e)
{
    if (strlen(id) != KEY_ID_LEN || strncmp(id, "PIER", 4) != 0) {
        perr_set(e, PIER_E_UNAUTHORIZED, "unknown access key");
        return NULL;
    }
    struct db_param p[1] = {{.value = id}};
    PGresult *res = db_execp(c->db, c->a, &st_key_get, p, true, e);
    if (!res)
        return NULL;
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 4)[0] == 0) {
        perr_set(e, PIER_E_UNAUTHORIZED, "unknown or inactive access key");
        return NULL;
    }
    return res;
}

static void principal_from_key_row(PGresult *res, struct principal *out)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(res, 0, 5);
    long long id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | b[i];
    out->id = id;
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(res, 0, 6));
    snprintf(out->arn, sizeof out->arn, "%s", PQgetvalue(res, 0, 7));
}

pier_err key_verify(struct ctx *c, const char *id, const char *secret, struct principal *out,
                    struct perr *e)
{
    PGresult *res = key_row(c, id, e);
    unsigned char hash[HASH_LEN];
    if (!res) {
        /* The same work for a key id that does not exist, so that timing
         * does not tell which ids do. */
        static const unsigned char zero_salt[SALT_LEN];
        struct perr keep = *e;
        hash_secret(c, secret, zero_salt, 0, hash);
        *e = keep;
        return e->code;
    }
    const unsigned char *b = (const unsigned char *)PQgetvalue(res, 0, 2);
    int iterations = (int)(((unsigned)b[0] << 24) | ((unsigned)b[1] << 16) | ((unsigned)b[2] << 8) | b[3]);
    const unsigned char *salt = (const unsigned char *)PQgetvalue(res, 0, 1);
    if (PQgetlength(res, 0, 0) != HASH_LEN || PQgetlength(res, 0, 1) != SALT_LEN ||
        !hash_secret(c, secret, salt, iterations, hash) ||
        CRYPTO_memcmp(hash, PQgetvalue(res, 0, 0), HASH_LEN) != 0)
        return perr_set(e, PIER_E_UNAUTHORIZED, "wrong secret for access key %s", id);
    principal_from_key_row(res, out);
    struct perr ignore;
    if (iterations > 0 && hash_secret(c, secret, salt, 0, hash)) {
        struct db_param p[2] = {{.value = id},
                                {.value = (const char *)hash, .length = HASH_LEN, .binary = true}};
        db_execp(c->db, c->a, &st_key_rehash, p, false, &ignore);
    }
    db_exec(c->db, c->a, &st_key_used, &ignore, id);
    return PIER_OK;
}

pier_err key_active(struct ctx *c, const char *id, bool *active, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_key_active, e, id);
    if (!res)
        return e->code;
    *active = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
    return PIER_OK;
}

pier_err key_secret(struct ctx *c, const char *id, char secret[KEY_SECRET_LEN + 1],
                    struct principal *out, struct perr *e)
{
    PGresult *res = key_row(c, id, e);
    if (!res)
        return e->code;
    pier_err rc = secretbox_open(c->sb, CTX_KEY, (const unsigned char *)PQgetvalue(res, 0, 3),
                                 (size_t)PQgetlength(res, 0, 3), secret, KEY_SECRET_LEN + 1, NULL, e);
    if (rc)
        return rc;
    principal_from_key_row(res, out);
    return PIER_OK;
}

pier_err identity_policy_put(struct ctx *c, long long principal_id, const char *name,
                             const char *doc, struct perr *e)
{
    if (!*name || strlen(name) > 128)
        return perr_set(e, PIER_E_BAD_REQUEST, "policy name must be 1-128 characters");
    struct policy *p;
    pier_err rc = policy_parse(doc, strlen(doc), POLICY_IDENTITY, &p, e);
    if (rc)
        return rc;
    policy_free(p);
    PGresult *res = db_exec(c->db, c->a, &st_ip_put, e, principal_id, name, doc,
                            IDENTITY_POLICIES_MAX);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "a principal has at most %d identity policies; delete one first or merge "
                        "statements into one policy", IDENTITY_POLICIES_MAX);
    return PIER_OK;
}

pier_err identity_policy_delete(struct ctx *c, long long principal_id, const char *name,
                                struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_ip_delete, e, principal_id, name);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "no identity policy named %s", name);
    return PIER_OK;
}

pier_err identity_policy_list(struct ctx *c, long long principal_id, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_ip_list, e, principal_id);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(out, json_pack("{s:s, s:s}", "name", PQgetvalue(res, i, 0),
                                             "document", PQgetvalue(res, i, 1)));
    return PIER_OK;
}

/* ---- identity policies for the policy engine ---- */

/* No row: the principal does not exist (any more). */
static const struct db_stmt st_ip_documents = {
    "pr_ip_documents",
    "SELECT ip.document FROM principals p"
    " LEFT JOIN identity_policies ip ON ip.principal_id = p.id"
    " WHERE p.id = $1::bigint ORDER BY ip.name", 1};

pier_err identity_policy_documents(struct ctx *c, long long principal_id, bool *exists,
                                   const char ***docs, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_ip_documents, e, principal_id);
    if (!res)
        return e->code;
    *exists = PQntuples(res) > 0;
    *n = PQntuples(res) == 1 && PQgetisnull(res, 0, 0) ? 0 : PQntuples(res);
    *docs = arena_alloc(c->a, sizeof **docs * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++)
        (*docs)[i] = PQgetvalue(res, i, 0);
    return PIER_OK;
}
