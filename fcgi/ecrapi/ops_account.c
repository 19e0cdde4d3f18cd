/* ops_account: settings of the account — GetAccountSetting and
 * PutAccountSetting, which answer what Pier does (it has one behaviour for
 * each setting, so there is nothing to store), and the pull-time update
 * exclusions (Register/Deregister/ListPullTimeUpdateExclusions), which are
 * stored (store/account.c) and honoured where pulls are recorded. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "ecrapi/api.h"
#include "store/account.h"

/* The settings of ECR's model and Pier's one value for each. */
static const struct setting {
    const char *name;
    const char *value;        /* what Pier does; NULL: not supported at all */
    const char *values[3];    /* the values ECR accepts */
    const char *why;          /* why the other values are refused */
} SETTINGS[] = {
    {"REGISTRY_POLICY_SCOPE", "V2", {"V1", "V2"},
     "Pier evaluates the registry policy for every ECR action (scope V2); scope V1, which limits "
     "it to replication and pull-through-cache actions, is not supported"},
    {"BLOB_MOUNTING", "ENABLED", {"ENABLED", "DISABLED"},
     "Pier always mounts a blob from another repository of the registry when the pushing caller "
     "may read it there; DISABLED is not supported"},
    {"BASIC_SCAN_TYPE_VERSION", NULL, {"AWS_NATIVE", "CLAIR"},
     "BASIC_SCAN_TYPE_VERSION is not supported by Pier: it has no scanning engine"},
};

/* The setting named by the request's name member, or NULL (x holds why). */
static const struct setting *setting_named(struct api *x)
{
    const char *name = api_str(x, "name", true, 64);
    if (!name || !api_authorize(x, NULL))
        return NULL;
    for (size_t i = 0; i < sizeof SETTINGS / sizeof SETTINGS[0]; i++) {
        if (strcmp(SETTINGS[i].name, name) != 0)
            continue;
        if (!SETTINGS[i].value) {
            api_fail(x, ECR_EXC_VALIDATION, "%s", SETTINGS[i].why);
            return NULL;
        }
        return &SETTINGS[i];
    }
    api_fail(x, ECR_EXC_INVALID_PARAMETER,
             "name must be REGISTRY_POLICY_SCOPE, BLOB_MOUNTING or BASIC_SCAN_TYPE_VERSION");
    return NULL;
}

void op_get_account_setting(struct api *x)
{
    const struct setting *s = setting_named(x);
    if (!s)
        return;
    json_object_set_new(x->out, "name", json_string(s->name));
    json_object_set_new(x->out, "value", json_string(s->value));
}

void op_put_account_setting(struct api *x)
{
    const char *value = api_str(x, "value", true, 64);
    const struct setting *s = x->err_type ? NULL : setting_named(x);
    if (!s)
        return;
    if (strcmp(value, s->value) != 0) {
        bool known = false;
        for (size_t i = 0; i < sizeof s->values / sizeof s->values[0] && s->values[i]; i++)
            known = known || strcmp(s->values[i], value) == 0;
        if (known)
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "%s", s->why);
        else
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "value of %s must be %s or %s", s->name,
                     s->values[0], s->values[1]);
        return;
    }
    json_object_set_new(x->out, "name", json_string(s->name));
    json_object_set_new(x->out, "value", json_string(s->value));
}

/* ---- pull-time update exclusions ---- */

/* [\w+=,.@-]: the characters of IAM names and path segments. */
static bool iam_name_char(char ch)
{
    return ch && (isalnum((unsigned char)ch) || strchr("_+=,.@-", ch));
}

/* The model's pattern for principalArn:
 * ^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$ */
static bool principal_arn_valid(const char *s)
{
    if (strncmp(s, "arn:aws", 7) != 0)
        return false;
    s += 7;
    while (*s == '-') {
        const char *p = ++s;
        while (*s >= 'a' && *s <= 'z')
            s++;
        if (s == p)
            return false;
    }
    if (strncmp(s, ":iam::", 6) != 0)
        return false;
    s += 6;
    for (int i = 0; i < 12; i++, s++)
        if (!isdigit((unsigned char)*s))
            return false;
    if (strncmp(s, ":role/", 6) != 0 && strncmp(s, ":user/", 6) != 0)
        return false;
    s += 6;
    /* one or more segments of name characters separated by single slashes */
    if (!iam_name_char(*s))
        return false;
    for (; *s; s++)
        if (!iam_name_char(*s) && !(*s == '/' && iam_name_char(s[1])))
            return false;
    return true;
}

static const char *principal_arn(struct api *x)
{
    const char *arn = api_str(x, "principalArn", true, 200);
    if (arn && !principal_arn_valid(arn)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER,
                 "principalArn must be the ARN of an IAM user or role "
                 "(arn:aws:iam::<12-digit account>:user/<name> or ...:role/<name>)");
        return NULL;
    }
    return arn;
}

void op_register_pull_time_exclusion(struct api *x)
{
    const char *arn = principal_arn(x);
    if (!arn || !api_authorize(x, NULL))
        return;
    struct perr e;
    long long created_at = 0;
    pier_err rc = account_exclusion_add(x->c, arn, &created_at, &e);
    if (rc == PIER_E_CONFLICT) {
        api_fail(x, ECR_EXC_EXCLUSION_ALREADY_EXISTS, "%s", e.msg);
        return;
    }
    if (rc == PIER_E_TOO_LARGE) {
        api_fail(x, ECR_EXC_LIMIT_EXCEEDED, "%s", e.msg);
        return;
    }
    if (rc) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "principalArn", json_string(arn));
    json_object_set_new(x->out, "createdAt", json_integer(created_at));
}

void op_deregister_pull_time_exclusion(struct api *x)
{
    const char *arn = principal_arn(x);
    if (!arn || !api_authorize(x, NULL))
        return;
    struct perr e;
    if (account_exclusion_delete(x->c, arn, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_EXCLUSION_NOT_FOUND, ECR_EXC_NONE);
        return;
    }
    json_object_set_new(x->out, "principalArn", json_string(arn));
}

void op_list_pull_time_exclusions(struct api *x)
{
    long long limit, offset;
    if (!api_page(x, 1000, &limit, &offset) || !api_authorize(x, NULL))
        return;
    if (limit > ACCOUNT_EXCLUSIONS_MAX)
        limit = ACCOUNT_EXCLUSIONS_MAX; /* a page of the model holds at most 100 */
    struct perr e;
    const char **arns;
    int n;
    if (account_exclusion_list(x->c, limit + 1, offset, &arns, &n, &e) != PIER_OK) {
        api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(list, json_string(arns[i]));
    json_object_set_new(x->out, "pullTimeUpdateExclusions", list);
    api_next(x, offset, limit, n > limit);
}
