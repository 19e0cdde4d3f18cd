/* ops_iam: users (and roles), their access keys and identity policies, and
 * login passwords — what `pierctl user/key/policy identity/login-password`
 * do, as operations the console runs for its session's principal. Each is
 * authorized with an IAM action on the principal's ARN
 * (arn:aws:iam::<account>:user/<name> or …:role/<name>), recorded in the
 * audit trail with the principal and the key id or policy name (never a
 * secret, never a policy text), and a secret is answered only by the call
 * that created it. Nobody can lock themselves out: the caller's own user and
 * its last active access key cannot be deleted or deactivated. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "auth/authz.h"
#include "auth/principals.h"
#include "auth/token.h"
#include "ecrapi/api.h"

/* Login passwords: 12 hours unless asked otherwise, at most 30 days (as
 * pierctl login-password). */
#define LOGIN_HOURS_DEFAULT 12
#define LOGIN_HOURS_MAX (24 * 30)
#define POLICY_NAME_MAX 128

static bool is_role(const char *arn)
{
    return strstr(arn, ":role/") != NULL;
}

/* May the caller perform action on the principal (or set) arn? The audit
 * event of the call names arn from here on. */
static bool authorize(struct api *x, const char *action, const char *arn)
{
    struct perr e;
    /* A copy: arn is often in a caller's struct principal on the stack, and
     * the audit event is written after the operation has returned. */
    x->audit_resource = arena_strdup(x->c->a, arn);
    pier_err rc = authz_check_arn(x->c, action, arn, &e);
    if (rc)
        return api_fail(x,
                        rc == PIER_E_DENIED || rc == PIER_E_UNAUTHORIZED ? ECR_EXC_ACCESS_DENIED
                                                                         : ECR_EXC_SERVER,
                        "%s", e.msg);
    return true;
}

/* The action for a user or a role: verb, "User" or "Role", then rest
 * ("iam:Put", "Policy": iam:PutUserPolicy, iam:PutRolePolicy); a NULL rest:
 * verb is the whole action. */
static const char *kind_action(struct api *x, const char *verb, const char *rest, const char *arn)
{
    if (!rest)
        return verb;
    return arena_printf(x->c->a, "%s%s%s", verb, is_role(arn) ? "Role" : "User", rest);
}

/* The principal called name (users and roles alike), once the caller is
 * authorized for the action (verb, rest: kind_action) on it. As IAM does,
 * authorization comes first, on the ARN the name would have: a caller not
 * allowed the action learns nothing about which users, roles or keys exist. */
static bool principal_arg(struct api *x, const char *name, struct principal *p, const char *verb,
                          const char *rest)
{
    struct perr e;
    if (principal_check_name(name, &e) != PIER_OK)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "UserName: %s", e.msg);
    pier_err rc = principal_get(x->c, name, p, &e);
    if (rc != PIER_OK && rc != PIER_E_NAME_UNKNOWN)
        return api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
    if (rc != PIER_OK) /* the ARN a user of that name would have */
        principal_arn(x->c, PRINCIPAL_USER, name, p->arn);
    if (!authorize(x, kind_action(x, verb, rest, p->arn), p->arn))
        return false;
    if (rc != PIER_OK)
        return api_fail(x, ECR_EXC_NO_SUCH_ENTITY, "%s", e.msg);
    return true;
}

/* The principal named by UserName, the caller authorized as principal_arg. */
static bool user_arg(struct api *x, struct principal *p, const char *verb, const char *rest)
{
    const char *name = api_str(x, "UserName", true, PRINCIPAL_NAME_MAX);
    return name && principal_arg(x, name, p, verb, rest);
}

static bool is_caller(struct api *x, const struct principal *p)
{
    return x->c->who && x->c->who->authenticated && x->c->who->p.id == p->id;
}

/* The "*" resource of a listing: every user and role of the account. */
static const char *all_users_arn(struct api *x)
{
    return arena_printf(x->c->a, "arn:aws:iam::%s:user/*", x->c->cfg->account_id);
}

void op_iam_list_users(struct api *x)
{
    if (!authorize(x, "iam:ListUsers", all_users_arn(x)))
        return;
    struct perr e;
    json_t *users = json_array();
    if (principal_list(x->c, users, &e) != PIER_OK) {
        json_decref(users);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        struct principal p;
        json_t *keys = json_array();
        const char *name = json_string_value(json_object_get(u, "name"));
        if (principal_get(x->c, name, &p, &e) != PIER_OK ||
            key_list(x->c, p.id, keys, &e) != PIER_OK) {
            json_decref(keys);
            json_decref(users);
            api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
            return;
        }
        json_object_set_new(u, "accessKeys", keys);
        json_object_set_new(u, "role", json_boolean(is_role(p.arn)));
        json_object_set_new(u, "you", json_boolean(is_caller(x, &p)));
    }
    json_object_set_new(x->out, "Users", users);
}

void op_iam_create_user(struct api *x)
{
    const char *name = api_str(x, "UserName", true, PRINCIPAL_NAME_MAX);
    bool role = false;
    if (!name || !api_bool(x, "Role", &role))
        return;
    struct perr e;
    if (principal_check_name(name, &e) != PIER_OK) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "UserName: %s", e.msg);
        return;
    }
    char arn[ARN_MAX];
    principal_arn(x->c, role ? PRINCIPAL_ROLE : PRINCIPAL_USER, name, arn);
    if (!authorize(x, role ? "iam:CreateRole" : "iam:CreateUser", arn))
        return;
    struct principal p;
    if (principal_create(x->c, name, role ? PRINCIPAL_ROLE : PRINCIPAL_USER, &p, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_ENTITY_ALREADY_EXISTS);
        return;
    }
    json_object_set_new(
        x->out, "User",
        json_pack("{s:s, s:s, s:b}", "UserName", p.name, "Arn", p.arn, "Role", role));
}

void op_iam_delete_user(struct api *x)
{
    struct principal p;
    if (!user_arg(x, &p, "iam:Delete", ""))
        return;
    if (is_caller(x, &p)) {
        api_fail(x, ECR_EXC_DELETE_CONFLICT,
                 "%s is the user you are signed in as: deleting it would lock you out. Sign in "
                 "as another administrator to delete it.",
                 p.name);
        return;
    }
    struct perr e;
    if (principal_delete(x->c, p.name, &e) != PIER_OK)
        api_perr(x, &e, ECR_EXC_NO_SUCH_ENTITY, ECR_EXC_NONE);
}

void op_iam_create_access_key(struct api *x)
{
    struct principal p;
    if (!user_arg(x, &p, "iam:CreateAccessKey", NULL))
        return;
    char id[KEY_ID_LEN + 1], secret[KEY_SECRET_LEN + 1];
    struct perr e;
    if (key_create(x->c, p.id, id, secret, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    x->audit_target = arena_strdup(x->c->a, id);
    /* The only answer that ever carries the secret. */
    json_object_set_new(x->out, "AccessKey",
                        json_pack("{s:s, s:s, s:s, s:s, s:I}", "UserName", p.name, "AccessKeyId",
                                  id, "SecretAccessKey", secret, "Status", "Active", "CreateDate",
                                  (json_int_t)time(NULL)));
    OPENSSL_cleanse(secret, sizeof secret);
}

/* The key named by AccessKeyId of the user UserName names (the caller when
 * it names none, as IAM), the caller authorized with action on that user
 * before the key is looked up: an unknown key and another user's key are
 * the same NoSuchEntity, and a caller not allowed the action is refused
 * whatever the key id. */
static bool key_arg(struct api *x, const char *action, const char **id, struct principal *owner,
                    bool *active, long long *active_keys)
{
    *id = api_str(x, "AccessKeyId", true, 32);
    const char *user = api_str(x, "UserName", false, PRINCIPAL_NAME_MAX);
    if (!*id || x->err_type)
        return false;
    x->audit_target = *id;
    if (!user) /* these operations run only for a signed-in console session */
        user = x->c->who->p.name;
    struct principal named;
    if (!principal_arg(x, user, &named, action, NULL))
        return false;
    struct perr e;
    pier_err rc = key_owner(x->c, *id, owner, active, active_keys, &e);
    if (rc != PIER_OK && rc != PIER_E_NAME_UNKNOWN)
        return api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
    if (rc != PIER_OK || owner->id != named.id)
        return api_fail(x, ECR_EXC_NO_SUCH_ENTITY, "%s has no access key %s", named.name, *id);
    return true;
}

/* The caller's own last active key: without it they could not sign in again. */
static bool not_last_own_key(struct api *x, const struct principal *owner, bool active,
                             long long active_keys, const char *what)
{
    if (is_caller(x, owner) && active && active_keys <= 1)
        return api_fail(x, ECR_EXC_DELETE_CONFLICT,
                        "This is the last active access key of %s, the user you are signed in as: "
                        "%s it would lock you out. Create another key first.",
                        owner->name, what);
    return true;
}

void op_iam_update_access_key(struct api *x)
{
    const char *status = api_str(x, "Status", true, 16);
    if (!status)
        return;
    if (strcmp(status, "Active") != 0 && strcmp(status, "Inactive") != 0) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "Status must be Active or Inactive");
        return;
    }
    const char *id;
    struct principal owner;
    bool active, on = status[0] == 'A';
    long long n;
    if (!key_arg(x, "iam:UpdateAccessKey", &id, &owner, &active, &n))
        return;
    x->audit_target = arena_printf(x->c->a, "%s %s", id, status);
    if (!on && !not_last_own_key(x, &owner, active, n, "deactivating"))
        return;
    struct perr e;
    if (key_set_active(x->c, id, on, &e) != PIER_OK)
        api_perr(x, &e, ECR_EXC_NO_SUCH_ENTITY, ECR_EXC_NONE);
}

void op_iam_delete_access_key(struct api *x)
{
    const char *id;
    struct principal owner;
    bool active;
    long long n;
    if (!key_arg(x, "iam:DeleteAccessKey", &id, &owner, &active, &n) ||
        !not_last_own_key(x, &owner, active, n, "deleting"))
        return;
    struct perr e;
    if (key_delete(x->c, id, &e) != PIER_OK)
        api_perr(x, &e, ECR_EXC_NO_SUCH_ENTITY, ECR_EXC_NONE);
}

static const char *policy_name_arg(struct api *x)
{
    const char *name = api_str(x, "PolicyName", true, POLICY_NAME_MAX);
    if (name) {
        for (const char *p = name; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                api_fail(x, ECR_EXC_INVALID_PARAMETER, "PolicyName has a control character");
                return NULL;
            }
        x->audit_target = arena_printf(x->c->a, "policy %s", name);
    }
    return name;
}

void op_iam_list_user_policies(struct api *x)
{
    struct principal p;
    if (!user_arg(x, &p, "iam:List", "Policies"))
        return;
    struct perr e;
    json_t *l = json_array();
    if (identity_policy_list(x->c, p.id, l, &e) != PIER_OK) {
        json_decref(l);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_t *names = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(l, i, v) json_array_append(names, json_object_get(v, "name"));
    json_decref(l);
    json_object_set_new(x->out, "PolicyNames", names);
}

void op_iam_get_user_policy(struct api *x)
{
    struct principal p;
    const char *name;
    if (!(name = policy_name_arg(x)) || !user_arg(x, &p, "iam:Get", "Policy"))
        return;
    struct perr e;
    json_t *l = json_array();
    if (identity_policy_list(x->c, p.id, l, &e) != PIER_OK) {
        json_decref(l);
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(l, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0) {
            json_object_set_new(x->out, "UserName", json_string(p.name));
            json_object_set_new(x->out, "PolicyName", json_string(name));
            json_object_set(x->out, "PolicyDocument", json_object_get(v, "document"));
            json_decref(l);
            return;
        }
    }
    json_decref(l);
    api_fail(x, ECR_EXC_NO_SUCH_ENTITY, "%s has no identity policy named %s", p.name, name);
}

void op_iam_put_user_policy(struct api *x)
{
    struct principal p;
    const char *name, *doc;
    if (!(name = policy_name_arg(x)) || !(doc = api_str(x, "PolicyDocument", true, 10240)) ||
        !user_arg(x, &p, "iam:Put", "Policy"))
        return;
    struct perr e;
    if (identity_policy_put(x->c, p.id, name, doc, &e) != PIER_OK)
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
}

void op_iam_delete_user_policy(struct api *x)
{
    struct principal p;
    const char *name;
    if (!(name = policy_name_arg(x)) || !user_arg(x, &p, "iam:Delete", "Policy"))
        return;
    struct perr e;
    if (identity_policy_delete(x->c, p.id, name, &e) != PIER_OK)
        api_perr(x, &e, ECR_EXC_NO_SUCH_ENTITY, ECR_EXC_NONE);
}

void op_iam_create_login_password(struct api *x)
{
    struct principal p;
    long long hours = LOGIN_HOURS_DEFAULT;
    if (!api_int(x, "Hours", 1, LOGIN_HOURS_MAX, &hours) ||
        !user_arg(x, &p, "iam:CreateLoginPassword", NULL))
        return;
    long lifetime = (long)hours * 3600;
    json_t *claims = json_pack("{s:s, s:I}", "sub", p.arn, "pid", (json_int_t)p.id);
    /* One's own password dies with the key (and never outlives the session)
     * it was made with, like GetAuthorizationToken's; one made for another
     * principal is pierctl login-password's: it ends when it expires or the
     * principal is deleted. */
    const struct identity *who = x->c->who;
    if (is_caller(x, &p)) {
        if (who->key_id[0])
            json_object_set_new(claims, "kid", json_string(who->key_id));
        long long left = who->expires - (long long)time(NULL);
        if (who->expires > 0 && left < lifetime)
            lifetime = left > 1 ? (long)left : 1;
    }
    char *tok = token_sign(x->r->a, x->c->tk, TOKEN_LOGIN, claims, lifetime);
    json_decref(claims);
    if (!tok) {
        api_fail(x, ECR_EXC_SERVER, "tokens are not available: no server key");
        return;
    }
    json_object_set_new(x->out, "LoginPassword",
                        json_pack("{s:s, s:s, s:s, s:I}", "UserName", p.name, "Username", "AWS",
                                  "Password", tok, "ExpiresAt",
                                  (json_int_t)(time(NULL) + lifetime)));
}
