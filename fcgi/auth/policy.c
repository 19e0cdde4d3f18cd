/* policy: parsing into a compact form once, evaluation per request. */
#include "auth/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "lib/arena.h"
#include "lib/grammar.h"

enum cond_key {
    KEY_SOURCE_IP, KEY_CURRENT_TIME, KEY_EPOCH_TIME, KEY_PRINCIPAL_ARN, KEY_PRINCIPAL_ACCOUNT,
    KEY_USERNAME, KEY_USERID,
    KEY_RESOURCE_TAG, /* aws:ResourceTag/<key> or ecr:ResourceTag/<key> (ABAC) */
    KEY__COUNT
};

static const char *const KEY_NAMES[KEY__COUNT] = {
    "aws:SourceIp", "aws:CurrentTime", "aws:EpochTime", "aws:PrincipalArn",
    "aws:PrincipalAccount", "aws:username", "aws:userid", "aws:ResourceTag/",
};

/* The tag part of a resource-tag condition key, as long as a tag key may be. */
#define TAG_KEY_MAX 128

enum op_kind { OPK_STRING, OPK_IP, OPK_DATE, OPK_NULL };

static const struct {
    const char *name;
    enum op_kind kind;
    bool negated;
    bool like;
    bool ignore_case;
    int cmp; /* dates: -2 <, -1 <=, 0 =, 1 >=, 2 >, 3 != */
} OPS[] = {
    {"StringEquals", OPK_STRING, false, false, false, 0},
    {"StringNotEquals", OPK_STRING, true, false, false, 0},
    {"StringEqualsIgnoreCase", OPK_STRING, false, false, true, 0},
    {"StringNotEqualsIgnoreCase", OPK_STRING, true, false, true, 0},
    {"StringLike", OPK_STRING, false, true, false, 0},
    {"StringNotLike", OPK_STRING, true, true, false, 0},
    {"ArnEquals", OPK_STRING, false, false, false, 0},
    {"ArnLike", OPK_STRING, false, true, false, 0},
    {"ArnNotEquals", OPK_STRING, true, false, false, 0},
    {"ArnNotLike", OPK_STRING, true, true, false, 0},
    {"IpAddress", OPK_IP, false, false, false, 0},
    {"NotIpAddress", OPK_IP, true, false, false, 0},
    {"DateEquals", OPK_DATE, false, false, false, 0},
    {"DateNotEquals", OPK_DATE, false, false, false, 3},
    {"DateLessThan", OPK_DATE, false, false, false, -2},
    {"DateLessThanEquals", OPK_DATE, false, false, false, -1},
    {"DateGreaterThan", OPK_DATE, false, false, false, 2},
    {"DateGreaterThanEquals", OPK_DATE, false, false, false, 1},
    {"Null", OPK_NULL, false, false, false, 0},
};
#define NOPS (sizeof OPS / sizeof OPS[0])

struct cidr {
    int family;
    unsigned char addr[16];
    int bits;
};

struct condition {
    int op;                 /* index into OPS */
    bool if_exists;         /* <op>IfExists: a missing key satisfies it */
    enum cond_key key;
    char *tag_key;          /* KEY_RESOURCE_TAG: the tag's key */
    size_t n;
    char **strings;         /* OPK_STRING */
    struct cidr *cidrs;     /* OPK_IP */
    time_t *times;          /* OPK_DATE */
    bool *absent;           /* OPK_NULL: "true" (the key must be absent) or "false" */
};

struct statement {
    char *sid;
    bool deny;
    bool any_principal;
    char **principals;
    size_t nprincipals;
    bool not_action;
    char **actions;
    size_t nactions;
    bool has_resource;
    bool not_resource;
    char **resources;
    size_t nresources;
    struct condition *conds;
    size_t nconds;
};

struct policy {
    struct statement *st;
    size_t n;
};

/* ---- matching ---- */

bool policy_wildcard(const char *p, const char *s, bool ic)
{
    const char *star_p = NULL, *star_s = NULL;
    while (*s) {
        char pc = *p, sc = *s;
        if (ic) {
            pc = (char)tolower((unsigned char)pc);
            sc = (char)tolower((unsigned char)sc);
        }
        if (*p == '*') {
            star_p = ++p;
            star_s = s;
        } else if (*p == '?' || (*p && pc == sc)) {
            p++;
            s++;
        } else if (star_p) {
            p = star_p;
            s = ++star_s;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

/* ---- parsing helpers ---- */

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; p->st && i < p->n; i++) {
        struct statement *s = &p->st[i];
        free(s->sid);
        free_strings(s->principals, s->nprincipals);
        free_strings(s->actions, s->nactions);
        free_strings(s->resources, s->nresources);
        for (size_t j = 0; j < s->nconds; j++) {
            free_strings(s->conds[j].strings, s->conds[j].strings ? s->conds[j].n : 0);
            free(s->conds[j].cidrs);
            free(s->conds[j].times);
            free(s->conds[j].absent);
            free(s->conds[j].tag_key);
        }
        free(s->conds);
    }
    free(p->st);
    free(p);
}

/* A string or a non-empty array of strings, copied. */
static pier_err string_list(json_t *j, const char *path, char ***out, size_t *n, struct perr *e)
{
    if (json_is_string(j)) {
        *out = xcalloc(1, sizeof **out);
        (*out)[0] = xstrdup(json_string_value(j));
        *n = 1;
        return PIER_OK;
    }
    if (!json_is_array(j) || json_array_size(j) == 0)
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: must be a string or a non-empty list of strings",
                        path);
    *n = json_array_size(j);
    *out = xcalloc(*n, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(j, i);
        if (!json_is_string(v)) {
            perr_set(e, PIER_E_BAD_REQUEST, "%s[%zu]: must be a string", path, i);
            return PIER_E_BAD_REQUEST;
        }
        (*out)[i] = xstrdup(json_string_value(v));
    }
    return PIER_OK;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

const char *const policy_actions[] = {
    /* ECR: AWS's list of actions for Amazon Elastic Container Registry. */
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchDeleteImage",
    "ecr:BatchGetImage",
    "ecr:BatchGetRepositoryScanningConfiguration",
    "ecr:BatchImportUpstreamImage",
    "ecr:CompleteLayerUpload",
    "ecr:CreatePullThroughCacheRule",
    "ecr:CreateRepository",
    "ecr:CreateRepositoryCreationTemplate",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeletePullThroughCacheRule",
    "ecr:DeleteRegistryPolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryCreationTemplate",
    "ecr:DeleteRepositoryPolicy",
    "ecr:DeleteSigningConfiguration",
    "ecr:DeregisterPullTimeUpdateExclusion",
    "ecr:DescribeImageReplicationStatus",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImageSigningStatus",
    "ecr:DescribeImages",
    "ecr:DescribePullThroughCacheRules",
    "ecr:DescribeRegistry",
    "ecr:DescribeRepositories",
    "ecr:DescribeRepositoryCreationTemplates",
    "ecr:GetAccountSetting",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetImageCopyStatus",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRegistryPolicy",
    "ecr:GetRegistryScanningConfiguration",
    "ecr:GetRepositoryPolicy",
    "ecr:GetSigningConfiguration",
    "ecr:InitiateLayerUpload",
    "ecr:ListImageReferrers",
    "ecr:ListImages",
    "ecr:ListPullTimeUpdateExclusions",
    "ecr:ListTagsForResource",
    "ecr:PutAccountSetting",
    "ecr:PutImage",
    "ecr:PutImageScanningConfiguration",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:PutRegistryPolicy",
    "ecr:PutRegistryScanningConfiguration",
    "ecr:PutReplicationConfiguration",
    "ecr:PutSigningConfiguration",
    "ecr:RegisterPullTimeUpdateExclusion",
    "ecr:ReplicateImage",
    "ecr:SetRepositoryPolicy",
    "ecr:StartImageScan",
    "ecr:StartLifecyclePolicyPreview",
    "ecr:TagResource",
    "ecr:UntagResource",
    "ecr:UpdateImageStorageClass",
    "ecr:UpdatePullThroughCacheRule",
    "ecr:UpdateRepositoryCreationTemplate",
    "ecr:UploadLayerPart",
    "ecr:ValidatePullThroughCacheRule",
    /* Pier's own: /metrics and the audit trail. */
    "ecr:GetMetrics",
    "ecr:LookupAuditEvents",
    /* Secrets Manager: the operations Pier answers, and reading a rule's secret. */
    "iam:CreateAccessKey",
    "iam:CreateLoginPassword",
    "iam:CreateRole",
    "iam:CreateUser",
    "iam:DeleteAccessKey",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DeleteUser",
    "iam:DeleteUserPolicy",
    "iam:GetRolePolicy",
    "iam:GetUserPolicy",
    "iam:ListRolePolicies",
    "iam:ListUserPolicies",
    "iam:ListUsers",
    "iam:PutRolePolicy",
    "iam:PutUserPolicy",
    "iam:UpdateAccessKey",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:ListSecrets",
    "secretsmanager:PutSecretValue",
};
const size_t policy_actions_count = sizeof policy_actions / sizeof policy_actions[0];

bool policy_action_known(const char *action)
{
    for (size_t i = 0; i < policy_actions_count; i++)
        if (policy_wildcard(action, policy_actions[i], true))
            return true;
    return false;
}

static pier_err check_action(const char *a, const char *path, struct perr *e)
{
    if (strcmp(a, "*") == 0)
        return PIER_OK;
    /* ECR's actions, Secrets Manager's (attaching a secret to a rule needs
     * secretsmanager:GetSecretValue on it) and IAM's (managing users, keys
     * and identity policies from the console). */
    size_t plen = strncasecmp(a, "ecr:", 4) == 0              ? 4
                  : strncasecmp(a, "secretsmanager:", 15) == 0 ? 15
                  : strncasecmp(a, "iam:", 4) == 0             ? 4
                                                               : 0;
    if (!plen)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "%s: '%.64s' is not an ECR, Secrets Manager or IAM action (expected "
                        "ecr:<Action>, secretsmanager:<Action> or iam:<Action>, wildcards * and ?)",
                        path, a);
    if (!a[plen])
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: action name missing after '%.*s'", path,
                        (int)plen, a);
    for (const char *p = a + plen; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '*' && *p != '?')
            return perr_set(e, PIER_E_BAD_REQUEST, "%s: character '%c' is not allowed in an action",
                            path, *p);
    return PIER_OK;
}

static pier_err check_resource(const char *r, const char *path, struct perr *e)
{
    if (strcmp(r, "*") == 0)
        return PIER_OK;
    if (strncmp(r, "arn:", 4) != 0 || strlen(r) > 1024 || !printable(r))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "%s: '%.64s' is not an ARN pattern (e.g. "
                        "arn:aws:ecr:<region>:<account>:repository/<name or pattern>)", path, r);
    return PIER_OK;
}

static pier_err check_principal(const char *p, const char *path, struct perr *e)
{
    if (strcmp(p, "*") == 0)
        return PIER_OK;
    size_t n = strlen(p);
    bool account = n == 12;
    for (size_t i = 0; account && i < n; i++)
        account = isdigit((unsigned char)p[i]);
    if (account || (strncmp(p, "arn:aws:iam::", 13) == 0 && n < 512 && printable(p) &&
                    !strpbrk(p, "*?")))
        return PIER_OK;
    return perr_set(e, PIER_E_BAD_REQUEST,
                    "%s: '%.64s' is not a principal (\"*\", a 12-digit account id, "
                    "arn:aws:iam::<account>:user/<name> or arn:aws:iam::<account>:role/<name>, "
                    "without wildcards)", path, p);
}

static bool parse_time(const char *s, time_t *out)
{
    long long v;
    if (grammar_uint(s, 1LL << 40, &v)) {
        *out = (time_t)v;
        return true;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) {
        memset(&tm, 0, sizeof tm);
        rest = strptime(s, "%Y-%m-%d", &tm);
        if (!rest || *rest)
            return false;
    } else {
        if (*rest == '.')
            for (rest++; isdigit((unsigned char)*rest); rest++)
                ;
        if (strcmp(rest, "Z") != 0 && strcmp(rest, "") != 0 && strcmp(rest, "+00:00") != 0)
            return false;
    }
    *out = timegm(&tm);
    return true;
}

static bool parse_cidr(const char *s, struct cidr *c)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    int maxbits;
    if (slash)
        *slash = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        maxbits = 128;
    } else {
        return false;
    }
    c->bits = maxbits;
    if (slash) {
        long long b;
        if (!grammar_uint(slash + 1, maxbits, &b))
            return false;
        c->bits = (int)b;
    }
    return true;
}

static bool cidr_contains(const struct cidr *c, const char *ip)
{
    unsigned char a[16];
    int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, ip, a) != 1 || fam != c->family)
        return false;
    int full = c->bits / 8, rem = c->bits % 8;
    if (memcmp(a, c->addr, (size_t)full) != 0)
        return false;
    if (rem) {
        unsigned char mask = (unsigned char)(0xff << (8 - rem));
        if ((a[full] & mask) != (c->addr[full] & mask))
            return false;
    }
    return true;
}

/* The operator named opname (an index into OPS) and whether it carries the
 * IfExists suffix; -1 when there is no such operator. */
static int find_operator(const char *opname, bool *if_exists)
{
    static const char suffix[] = "IfExists";
    size_t len = strlen(opname), slen = sizeof suffix - 1;
    *if_exists = len > slen && strcmp(opname + len - slen, suffix) == 0;
    if (*if_exists)
        len -= slen;
    for (size_t op = 0; op < NOPS; op++)
        if (strlen(OPS[op].name) == len && strncmp(OPS[op].name, opname, len) == 0)
            return *if_exists && OPS[op].kind == OPK_NULL ? -1 : (int)op;
    return -1;
}

/* The condition key keyname; KEY__COUNT when it is unknown. A resource-tag
 * key returns its tag part in *tag (IAM's key names ignore case, the tag's
 * included). */
static enum cond_key find_key(const char *keyname, const char **tag)
{
    *tag = NULL;
    size_t plen = strlen(KEY_NAMES[KEY_RESOURCE_TAG]);
    if (strncasecmp(keyname, "aws:ResourceTag/", plen) == 0 ||
        strncasecmp(keyname, "ecr:ResourceTag/", plen) == 0) {
        *tag = keyname + plen;
        return KEY_RESOURCE_TAG;
    }
    int k;
    for (k = 0; k < KEY__COUNT && (k == KEY_RESOURCE_TAG || strcasecmp(KEY_NAMES[k], keyname) != 0);
         k++)
        ;
    return (enum cond_key)k;
}

/* The values of a Null condition: "true" (the key must be absent) or
 * "false" (it must be present), as strings or JSON booleans. */
static pier_err null_values(json_t *vals, const char *kpath, struct condition *c, struct perr *e)
{
    json_t *one = json_is_array(vals) ? NULL : vals;
    size_t n = one ? 1 : json_array_size(vals);
    if (n == 0)
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: must be \"true\" or \"false\"", kpath);
    c->absent = xcalloc(n, sizeof *c->absent);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = one ? one : json_array_get(vals, i);
        if (json_is_boolean(v))
            c->absent[i] = json_is_true(v);
        else if (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0)
            c->absent[i] = true;
        else if (json_is_string(v) && strcasecmp(json_string_value(v), "false") == 0)
            c->absent[i] = false;
        else
            return perr_set(e, PIER_E_BAD_REQUEST, "%s: must be \"true\" or \"false\"", kpath);
    }
    return PIER_OK;
}

static pier_err parse_conditions(json_t *j, const char *path, struct statement *st, struct perr *e)
{
    if (!json_is_object(j))
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: must be an object of operators", path);
    const char *opname;
    json_t *block;
    json_object_foreach(j, opname, block) {
        bool if_exists;
        int op = find_operator(opname, &if_exists);
        if (op < 0)
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "%s.%.64s: unknown condition operator (supported: StringEquals, "
                            "StringNotEquals, StringLike, StringNotLike, StringEqualsIgnoreCase, "
                            "ArnEquals, ArnLike, IpAddress, NotIpAddress, DateEquals, "
                            "DateLessThan, DateGreaterThan and their variants, each also with "
                            "IfExists, and Null)", path, opname);
        if (!json_is_object(block) || json_object_size(block) == 0)
            return perr_set(e, PIER_E_BAD_REQUEST, "%s.%s: must be an object of condition keys",
                            path, opname);
        const char *keyname;
        json_t *vals;
        json_object_foreach(block, keyname, vals) {
            const char *tag;
            enum cond_key k = find_key(keyname, &tag);
            char kpath[256];
            if (snprintf(kpath, sizeof kpath, "%s.%s.%.64s", path, opname, keyname) >=
                (int)sizeof kpath)
                return perr_set(e, PIER_E_BAD_REQUEST, "%s.%.64s: condition path too long", path,
                                opname);
            if (k == KEY__COUNT)
                return perr_set(e, PIER_E_BAD_REQUEST,
                                "%s: unknown condition key (supported: aws:SourceIp, "
                                "aws:CurrentTime, aws:EpochTime, aws:PrincipalArn, "
                                "aws:PrincipalAccount, aws:username, aws:userid, "
                                "aws:ResourceTag/<key>, ecr:ResourceTag/<key>)", kpath);
            if (k == KEY_RESOURCE_TAG && (!*tag || strlen(tag) > TAG_KEY_MAX || !printable(tag)))
                return perr_set(e, PIER_E_BAD_REQUEST,
                                "%s: the tag key after ResourceTag/ must be 1 to %d printable "
                                "characters", kpath, TAG_KEY_MAX);
            if (OPS[op].kind == OPK_IP && k != KEY_SOURCE_IP)
                return perr_set(e, PIER_E_BAD_REQUEST, "%s: %s applies only to aws:SourceIp",
                                kpath, opname);
            if (OPS[op].kind == OPK_DATE && k != KEY_CURRENT_TIME && k != KEY_EPOCH_TIME)
                return perr_set(e, PIER_E_BAD_REQUEST,
                                "%s: %s applies only to aws:CurrentTime or aws:EpochTime", kpath,
                                opname);
            st->conds = xrealloc(st->conds, (st->nconds + 1) * sizeof *st->conds);
            struct condition *c = &st->conds[st->nconds++];
            memset(c, 0, sizeof *c);
            c->op = op;
            c->if_exists = if_exists;
            c->key = k;
            if (tag)
                c->tag_key = xstrdup(tag);
            if (OPS[op].kind == OPK_NULL) {
                pier_err rc = null_values(vals, kpath, c, e);
                if (rc)
                    return rc;
                continue;
            }
            pier_err rc = string_list(vals, kpath, &c->strings, &c->n, e);
            if (rc)
                return rc;
            if (OPS[op].kind == OPK_IP) {
                c->cidrs = xcalloc(c->n, sizeof *c->cidrs);
                for (size_t i = 0; i < c->n; i++)
                    if (!parse_cidr(c->strings[i], &c->cidrs[i]))
                        return perr_set(e, PIER_E_BAD_REQUEST,
                                        "%s: '%.64s' is not an IP address or CIDR block", kpath,
                                        c->strings[i]);
            } else if (OPS[op].kind == OPK_DATE) {
                c->times = xcalloc(c->n, sizeof *c->times);
                for (size_t i = 0; i < c->n; i++)
                    if (!parse_time(c->strings[i], &c->times[i]))
                        return perr_set(e, PIER_E_BAD_REQUEST,
                                        "%s: '%.64s' is not a date (2026-01-31T12:00:00Z or epoch "
                                        "seconds)", kpath, c->strings[i]);
            }
        }
    }
    return PIER_OK;
}

static pier_err parse_statement(json_t *j, const char *path, enum policy_kind kind,
                                struct statement *st, struct perr *e)
{
    if (!json_is_object(j))
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: a statement must be an object", path);
    static const char *const known[] = {"Sid", "Effect", "Principal", "Action", "NotAction",
                                        "Resource", "NotResource", "Condition"};
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        size_t i;
        for (i = 0; i < sizeof known / sizeof known[0] && strcmp(known[i], k) != 0; i++)
            ;
        if (i == sizeof known / sizeof known[0])
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "%s.%.64s: unknown element (allowed: Sid, Effect, Principal, Action, "
                            "NotAction, Resource, NotResource, Condition)", path, k);
    }
    char sub[200];
    json_t *sid = json_object_get(j, "Sid");
    if (sid) {
        if (!json_is_string(sid) || strlen(json_string_value(sid)) > 128)
            return perr_set(e, PIER_E_BAD_REQUEST, "%s.Sid: must be a string of at most 128 characters", path);
        for (const char *p = json_string_value(sid); *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != ' ' && *p != '.')
                return perr_set(e, PIER_E_BAD_REQUEST, "%s.Sid: character '%c' is not allowed", path, *p);
    }
    st->sid = xstrdup(sid ? json_string_value(sid) : "");
    json_t *effect = json_object_get(j, "Effect");
    if (!json_is_string(effect) || (strcmp(json_string_value(effect), "Allow") != 0 &&
                                    strcmp(json_string_value(effect), "Deny") != 0))
        return perr_set(e, PIER_E_BAD_REQUEST, "%s.Effect: required, \"Allow\" or \"Deny\"", path);
    st->deny = strcmp(json_string_value(effect), "Deny") == 0;

    json_t *principal = json_object_get(j, "Principal");
    if (kind == POLICY_IDENTITY && principal)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "%s.Principal: not allowed in an identity policy (it applies to its principal)",
                        path);
    if (kind == POLICY_RESOURCE) {
        if (!principal)
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "%s.Principal: required in registry and repository policies", path);
        if (json_is_string(principal)) {
            if (strcmp(json_string_value(principal), "*") != 0)
                return perr_set(e, PIER_E_BAD_REQUEST,
                                "%s.Principal: a string principal must be \"*\"; use {\"AWS\": ...}", path);
            st->any_principal = true;
        } else if (json_is_object(principal)) {
            const char *pk;
            json_t *pv;
            json_object_foreach(principal, pk, pv) {
                if (strcmp(pk, "AWS") != 0)
                    return perr_set(e, PIER_E_BAD_REQUEST,
                                    "%s.Principal.%.64s: only \"AWS\" principals are supported", path, pk);
            }
            json_t *aws = json_object_get(principal, "AWS");
            if (!aws)
                return perr_set(e, PIER_E_BAD_REQUEST, "%s.Principal: needs \"AWS\"", path);
            snprintf(sub, sizeof sub, "%s.Principal.AWS", path);
            pier_err rc = string_list(aws, sub, &st->principals, &st->nprincipals, e);
            if (rc)
                return rc;
            for (size_t i = 0; i < st->nprincipals; i++) {
                char ipath[sizeof sub + 24]; /* sub "[" 20 digits "]" */
                snprintf(ipath, sizeof ipath, "%s[%zu]", sub, i);
                if ((rc = check_principal(st->principals[i], ipath, e)))
                    return rc;
                if (strcmp(st->principals[i], "*") == 0)
                    st->any_principal = true;
            }
        } else {
            return perr_set(e, PIER_E_BAD_REQUEST, "%s.Principal: must be \"*\" or {\"AWS\": ...}", path);
        }
    }

    json_t *action = json_object_get(j, "Action"), *notaction = json_object_get(j, "NotAction");
    if (!action == !notaction)
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: exactly one of Action or NotAction is required", path);
    st->not_action = notaction != NULL;
    snprintf(sub, sizeof sub, "%s.%s", path, action ? "Action" : "NotAction");
    pier_err rc = string_list(action ? action : notaction, sub, &st->actions, &st->nactions, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < st->nactions; i++) {
        char ipath[sizeof sub + 24];
        snprintf(ipath, sizeof ipath, "%s[%zu]", sub, i);
        if ((rc = check_action(st->actions[i], st->nactions > 1 ? ipath : sub, e)))
            return rc;
    }

    json_t *res = json_object_get(j, "Resource"), *notres = json_object_get(j, "NotResource");
    if (res && notres)
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: Resource and NotResource exclude each other", path);
    if (!res && !notres && kind == POLICY_IDENTITY)
        return perr_set(e, PIER_E_BAD_REQUEST, "%s: Resource or NotResource is required", path);
    if (res || notres) {
        st->has_resource = true;
        st->not_resource = notres != NULL;
        snprintf(sub, sizeof sub, "%s.%s", path, res ? "Resource" : "NotResource");
        if ((rc = string_list(res ? res : notres, sub, &st->resources, &st->nresources, e)))
            return rc;
        for (size_t i = 0; i < st->nresources; i++) {
            char ipath[sizeof sub + 24];
            snprintf(ipath, sizeof ipath, "%s[%zu]", sub, i);
            if ((rc = check_resource(st->resources[i], st->nresources > 1 ? ipath : sub, e)))
                return rc;
        }
    }
    json_t *cond = json_object_get(j, "Condition");
    if (cond) {
        snprintf(sub, sizeof sub, "%s.Condition", path);
        if ((rc = parse_conditions(cond, sub, st, e)))
            return rc;
    }
    return PIER_OK;
}

pier_err policy_parse(const char *json, size_t len, enum policy_kind kind, struct policy **out,
                      struct perr *e)
{
    *out = NULL;
    if (len > POLICY_MAX_BYTES)
        return perr_set(e, PIER_E_BAD_REQUEST, "policy document is %zu bytes; the limit is %d", len,
                        POLICY_MAX_BYTES);
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return perr_set(e, PIER_E_BAD_REQUEST, "policy is not valid JSON: %s (line %d, column %d)",
                        jerr.text, jerr.line, jerr.column);
    pier_err rc = PIER_OK;
    struct policy *p = xcalloc(1, sizeof *p);
    if (!json_is_object(doc)) {
        rc = perr_set(e, PIER_E_BAD_REQUEST, "policy must be a JSON object");
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) {
        if (strcmp(k, "Version") != 0 && strcmp(k, "Statement") != 0 && strcmp(k, "Id") != 0) {
            rc = perr_set(e, PIER_E_BAD_REQUEST,
                          "%.64s: unknown element (allowed: Version, Id, Statement)", k);
            goto done;
        }
    }
    json_t *ver = json_object_get(doc, "Version");
    if (!json_is_string(ver) || (strcmp(json_string_value(ver), "2012-10-17") != 0 &&
                                 strcmp(json_string_value(ver), "2008-10-17") != 0)) {
        rc = perr_set(e, PIER_E_BAD_REQUEST, "Version: required, \"2012-10-17\" (or \"2008-10-17\")");
        goto done;
    }
    json_t *stmts = json_object_get(doc, "Statement");
    if (json_is_object(stmts)) {
        p->n = 1;
    } else if (json_is_array(stmts) && json_array_size(stmts) > 0) {
        p->n = json_array_size(stmts);
    } else {
        rc = perr_set(e, PIER_E_BAD_REQUEST, "Statement: required, a statement or a non-empty list");
        goto done;
    }
    if (p->n > POLICY_MAX_STATEMENTS) {
        rc = perr_set(e, PIER_E_BAD_REQUEST, "Statement: %zu statements, the limit is %d", p->n,
                      POLICY_MAX_STATEMENTS);
        goto done;
    }
    p->st = xcalloc(p->n, sizeof *p->st);
    for (size_t i = 0; i < p->n; i++) {
        char path[32];
        if (json_is_object(stmts))
            snprintf(path, sizeof path, "Statement");
        else
            snprintf(path, sizeof path, "Statement[%zu]", i);
        rc = parse_statement(json_is_object(stmts) ? stmts : json_array_get(stmts, i), path, kind,
                             &p->st[i], e);
        if (rc)
            goto done;
    }
done:
    json_decref(doc);
    if (rc) {
        policy_free(p);
        return rc;
    }
    *out = p;
    return PIER_OK;
}

/* ---- evaluation ---- */

/* "arn:aws:iam::123456789012:user/x" -> "123456789012" into out. */
static const char *account_of(const char *arn, char out[32])
{
    out[0] = '\0';
    if (!arn || strncmp(arn, "arn:aws:iam::", 13) != 0)
        return NULL;
    const char *a = arn + 13;
    size_t n = strcspn(a, ":");
    if (n == 0 || n >= 32)
        return NULL;
    memcpy(out, a, n);
    out[n] = '\0';
    return out;
}

static bool principal_matches(const struct statement *st, const char *principal)
{
    if (st->any_principal)
        return true;
    if (!principal)
        return false;
    char acct[32];
    const char *mine = account_of(principal, acct);
    for (size_t i = 0; i < st->nprincipals; i++) {
        const char *p = st->principals[i];
        if (strcmp(p, principal) == 0)
            return true;
        /* An account (id or its root ARN) stands for every principal in it. */
        char pa[32];
        if (mine && (strcmp(p, mine) == 0 ||
                     (account_of(p, pa) && strcmp(pa, mine) == 0 && strstr(p, ":root"))))
            return true;
    }
    return false;
}

static bool any_match(char *const *patterns, size_t n, const char *s, bool ic)
{
    for (size_t i = 0; i < n; i++)
        if (policy_wildcard(patterns[i], s, ic))
            return true;
    return false;
}

/* The value of resource tag key (exact first, then ignoring case, as IAM's
 * condition keys do), or NULL when the resource has no such tag. */
static const char *tag_value(const struct authz_request *rq, const char *key)
{
    for (size_t i = 0; i < rq->ntags; i++)
        if (strcmp(rq->tags[i].key, key) == 0)
            return rq->tags[i].value;
    for (size_t i = 0; i < rq->ntags; i++)
        if (strcasecmp(rq->tags[i].key, key) == 0)
            return rq->tags[i].value;
    return NULL;
}

static const char *context_value(const struct condition *c, const struct authz_request *rq,
                                 char *buf, size_t bufsz)
{
    char acct[32];
    switch (c->key) {
    case KEY_SOURCE_IP: return rq->source_ip;
    case KEY_PRINCIPAL_ARN: return rq->principal;
    case KEY_PRINCIPAL_ACCOUNT: return account_of(rq->principal, acct) ? (snprintf(buf, bufsz, "%s", acct), buf) : NULL;
    case KEY_USERNAME: {
        /* IAM sets aws:username for users only, not for roles. */
        const char *u = rq->principal ? strstr(rq->principal, ":user/") : NULL;
        return u ? strrchr(u, '/') + 1 : NULL;
    }
    case KEY_USERID: {
        const char *slash = rq->principal ? strrchr(rq->principal, '/') : NULL;
        return slash ? slash + 1 : NULL;
    }
    case KEY_CURRENT_TIME:
    case KEY_EPOCH_TIME:
        snprintf(buf, bufsz, "%lld", (long long)rq->now);
        return buf;
    case KEY_RESOURCE_TAG: return tag_value(rq, c->tag_key);
    default: return NULL;
    }
}

static bool condition_holds(const struct condition *c, const struct authz_request *rq)
{
    char buf[64];
    const char *v = context_value(c, rq, buf, sizeof buf);
    if (OPS[c->op].kind == OPK_NULL) {
        for (size_t i = 0; i < c->n; i++)
            if (c->absent[i] == (v == NULL))
                return true;
        return false;
    }
    bool neg = OPS[c->op].negated;
    if (!v)
        return c->if_exists || neg; /* a missing key satisfies only negated and IfExists operators */
    bool any = false;
    switch (OPS[c->op].kind) {
    case OPK_STRING:
        for (size_t i = 0; i < c->n && !any; i++)
            any = OPS[c->op].like ? policy_wildcard(c->strings[i], v, false)
                  : OPS[c->op].ignore_case ? strcasecmp(c->strings[i], v) == 0
                                           : strcmp(c->strings[i], v) == 0;
        break;
    case OPK_IP:
        for (size_t i = 0; i < c->n && !any; i++)
            any = cidr_contains(&c->cidrs[i], v);
        break;
    case OPK_DATE:
        for (size_t i = 0; i < c->n && !any; i++) {
            time_t t = rq->now, x = c->times[i];
            switch (OPS[c->op].cmp) {
            case -2: any = t < x; break;
            case -1: any = t <= x; break;
            case 0: any = t == x; break;
            case 1: any = t >= x; break;
            case 2: any = t > x; break;
            case 3: any = t != x; break;
            }
        }
        break;
    case OPK_NULL: break; /* answered above */
    }
    return neg ? !any : any;
}

static bool statement_applies(const struct statement *st, const struct authz_request *rq,
                              bool resource_policy)
{
    if (resource_policy && !principal_matches(st, rq->principal))
        return false;
    bool a = any_match(st->actions, st->nactions, rq->action, true);
    if (st->not_action ? a : !a)
        return false;
    if (st->has_resource) {
        bool r = any_match(st->resources, st->nresources, rq->resource, false);
        if (st->not_resource ? r : !r)
            return false;
    }
    for (size_t i = 0; i < st->nconds; i++)
        if (!condition_holds(&st->conds[i], rq))
            return false;
    return true;
}

enum effect policy_evaluate(const struct policy *p, const struct authz_request *rq, const char **sid)
{
    enum effect result = EFFECT_NONE;
    const char *allow_sid = "";
    if (sid)
        *sid = "";
    if (!p)
        return EFFECT_NONE;
    for (size_t i = 0; i < p->n; i++) {
        const struct statement *st = &p->st[i];
        /* Statements with a Principal element belong to resource policies. */
        bool resource_policy = st->any_principal || st->nprincipals > 0;
        if (!statement_applies(st, rq, resource_policy))
            continue;
        if (st->deny) {
            if (sid)
                *sid = st->sid;
            return EFFECT_DENY;
        }
        if (result == EFFECT_NONE)
            allow_sid = st->sid;
        result = EFFECT_ALLOW;
    }
    if (sid && result == EFFECT_ALLOW)
        *sid = allow_sid;
    return result;
}

bool policy_has_conditions(const struct policy *p)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (p->st[i].nconds)
            return true;
    return false;
}
