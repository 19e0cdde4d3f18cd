/* Unit tests for the IAM policy parser and evaluator. */
#include <time.h>
#include "auth/policy.h"
#include "ecrapi/api.h"
#include "tap.h"

#define REPO(x) "arn:aws:ecr:us-east-1:123456789012:repository/" x
#define ALICE "arn:aws:iam::123456789012:user/alice"
#define BOB "arn:aws:iam::123456789012:user/bob"
#define BUILDER "arn:aws:iam::123456789012:role/builder"

static struct policy *parse(const char *doc, enum policy_kind kind, struct perr *e)
{
    struct policy *p = NULL;
    if (policy_parse(doc, strlen(doc), kind, &p, e) != PIER_OK)
        return NULL; /* e says why; the callers check it */
    return p;
}

static const char *error_of(const char *doc, enum policy_kind kind)
{
    static struct perr e;
    struct policy *p = parse(doc, kind, &e);
    if (p) {
        policy_free(p);
        return NULL;
    }
    return e.msg;
}

static enum effect eval(struct policy *p, const char *who, const char *action, const char *res,
                        const char *ip, time_t now, const char **sid)
{
    struct authz_request rq = {.principal = who, .action = action, .resource = res,
                               .source_ip = ip, .now = now};
    return policy_evaluate(p, &rq, sid);
}

/* The effect of p on who's action on repository x, which has the given tags. */
static enum effect eval_tagged(struct policy *p, const char *who, const char *action,
                               const struct policy_tag *tags, size_t ntags)
{
    struct authz_request rq = {.principal = who, .action = action, .resource = REPO("x"),
                               .now = 1800000000, .tags = tags, .ntags = ntags};
    const char *sid;
    return policy_evaluate(p, &rq, &sid);
}

/* Attribute-based access control: resource tags in conditions. */
static void test_resource_tags(void)
{
    struct perr e;
    static const struct policy_tag team_a[] = {{"team", "a"}, {"env", "prod"}};
    static const struct policy_tag team_b[] = {{"team", "b"}};
    static const struct policy_tag team_upper[] = {{"Team", "a"}};
    struct policy *p = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"TeamA\",\"Effect\":\"Allow\","
        "\"Action\":\"ecr:BatchGetImage\",\"Resource\":\"*\","
        "\"Condition\":{\"StringEquals\":{\"aws:ResourceTag/team\":\"a\"}}}]}", POLICY_IDENTITY, &e);
    CHECK("aws:ResourceTag/<key> parses", p != NULL);
    CHECK("ResourceTag: a matching tag allows",
          eval_tagged(p, ALICE, "ecr:BatchGetImage", team_a, 2) == EFFECT_ALLOW);
    CHECK("ResourceTag: another value does not",
          eval_tagged(p, ALICE, "ecr:BatchGetImage", team_b, 1) == EFFECT_NONE);
    CHECK("ResourceTag: an untagged resource does not",
          eval_tagged(p, ALICE, "ecr:BatchGetImage", NULL, 0) == EFFECT_NONE);
    CHECK("ResourceTag: the tag key matches without regard to case",
          eval_tagged(p, ALICE, "ecr:BatchGetImage", team_upper, 1) == EFFECT_ALLOW);
    policy_free(p);

    p = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
              "{\"AWS\":\"" ALICE "\"},\"Action\":\"ecr:*\",\"Condition\":{\"StringLike\":"
              "{\"ecr:ResourceTag/env\":\"pro*\"}}}]}", POLICY_RESOURCE, &e);
    CHECK("ecr:ResourceTag/<key> parses in a resource policy", p != NULL);
    CHECK("ecr:ResourceTag with StringLike",
          eval_tagged(p, ALICE, "ecr:PutImage", team_a, 2) == EFFECT_ALLOW &&
              eval_tagged(p, ALICE, "ecr:PutImage", team_b, 1) == EFFECT_NONE &&
              eval_tagged(p, BOB, "ecr:PutImage", team_a, 2) == EFFECT_NONE);
    policy_free(p);

    p = parse("{\"Version\":\"2012-10-17\",\"Statement\":["
              "{\"Effect\":\"Allow\",\"Action\":\"ecr:*\",\"Resource\":\"*\"},"
              "{\"Sid\":\"OnlyOwnTeam\",\"Effect\":\"Deny\",\"Action\":\"ecr:*\",\"Resource\":\"*\","
              "\"Condition\":{\"StringNotEquals\":{\"aws:ResourceTag/team\":\"a\"}}}]}",
              POLICY_IDENTITY, &e);
    CHECK("deny unless tagged: tagged a passes",
          eval_tagged(p, ALICE, "ecr:PutImage", team_a, 2) == EFFECT_ALLOW);
    CHECK("deny unless tagged: tagged b is denied",
          eval_tagged(p, ALICE, "ecr:PutImage", team_b, 1) == EFFECT_DENY);
    CHECK("deny unless tagged: untagged is denied (a missing key satisfies StringNotEquals)",
          eval_tagged(p, ALICE, "ecr:PutImage", NULL, 0) == EFFECT_DENY);
    policy_free(p);

    p = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
              "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"StringEqualsIfExists\":"
              "{\"aws:ResourceTag/team\":\"a\"}}}]}", POLICY_IDENTITY, &e);
    CHECK("IfExists parses", p != NULL);
    CHECK("IfExists: a missing key satisfies it, another value does not",
          eval_tagged(p, ALICE, "ecr:PutImage", NULL, 0) == EFFECT_ALLOW &&
              eval_tagged(p, ALICE, "ecr:PutImage", team_a, 2) == EFFECT_ALLOW &&
              eval_tagged(p, ALICE, "ecr:PutImage", team_b, 1) == EFFECT_NONE);
    policy_free(p);

    p = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Action\":"
              "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"Null\":{\"aws:ResourceTag/env\":"
              "\"true\"}}}]}", POLICY_IDENTITY, &e);
    CHECK("Null parses", p != NULL);
    CHECK("Null true: denies where the tag is missing, not where it is set",
          eval_tagged(p, ALICE, "ecr:PutImage", team_b, 1) == EFFECT_DENY &&
              eval_tagged(p, ALICE, "ecr:PutImage", team_a, 2) == EFFECT_NONE);
    policy_free(p);

    const char *m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                             "\"Action\":\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"StringEquals\":"
                             "{\"aws:ResourceTag/\":\"a\"}}}]}", POLICY_IDENTITY);
    CHECK("ResourceTag without a tag key is refused", m && strstr(m, "ResourceTag/"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
                 "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"NullIfExists\":{\"aws:username\":"
                 "\"true\"}}}]}", POLICY_IDENTITY);
    CHECK("NullIfExists is not an operator", m && strstr(m, "NullIfExists"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
                 "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"Null\":{\"aws:username\":"
                 "\"maybe\"}}}]}", POLICY_IDENTITY);
    CHECK("Null takes true or false", m && strstr(m, "true"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
                 "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"IpAddress\":"
                 "{\"aws:ResourceTag/team\":\"10.0.0.0/8\"}}}]}", POLICY_IDENTITY);
    CHECK("IpAddress on a resource tag is refused", m && strstr(m, "aws:SourceIp"));
}

/* A role has no aws:username (IAM sets it for users only). */
static void test_roles(void)
{
    struct perr e;
    const char *sid;
    struct policy *p = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
        "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"Null\":{\"aws:username\":\"false\"}}}]}",
        POLICY_IDENTITY, &e);
    CHECK("aws:username is set for users, not for roles",
          p && eval(p, ALICE, "ecr:PutImage", REPO("x"), NULL, 0, &sid) == EFFECT_ALLOW &&
              eval(p, BUILDER, "ecr:PutImage", REPO("x"), NULL, 0, &sid) == EFFECT_NONE);
    policy_free(p);
    p = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":"
              "\"ecr:*\",\"Resource\":\"*\",\"Condition\":{\"StringEquals\":{\"aws:username\":"
              "\"builder\"}}}]}", POLICY_IDENTITY, &e);
    CHECK("a role does not match an aws:username condition with its name",
          p && eval(p, BUILDER, "ecr:PutImage", REPO("x"), NULL, 0, &sid) == EFFECT_NONE &&
              eval(p, "arn:aws:iam::123456789012:user/builder", "ecr:PutImage", REPO("x"), NULL, 0,
                   &sid) == EFFECT_ALLOW);
    policy_free(p);
}

/* The one list of actions: what the console's editor warns about. */
static void test_known_actions(void)
{
    CHECK("known action", policy_action_known("ecr:BatchGetImage"));
    CHECK("misspelled action is unknown", !policy_action_known("ecr:BatchGetImagee"));
    CHECK("actions compare case-insensitively", policy_action_known("ECR:batchgetimage"));
    CHECK("a wildcard that names known actions", policy_action_known("ecr:Get*") &&
                                                     policy_action_known("ecr:*") &&
                                                     policy_action_known("*"));
    CHECK("a wildcard that names none is unknown",
          !policy_action_known("ecr:Gte*") && !policy_action_known("ecr:BatchGetImage?"));
    CHECK("Pier's own and Secrets Manager actions are known",
          policy_action_known("ecr:LookupAuditEvents") && policy_action_known("ecr:GetMetrics") &&
              policy_action_known("secretsmanager:GetSecretValue"));
    CHECK("the console's iam: actions are known",
          policy_action_known("iam:CreateAccessKey") && policy_action_known("iam:PutRolePolicy") &&
              policy_action_known("iam:*") && !policy_action_known("iam:CreateAccesKey"));
    const char *missing = ecrapi_unlisted_operation();
    if (missing)
        printf("# %s is an operation the list of actions lacks\n", missing);
    CHECK("every control-plane operation is in the list of actions", missing == NULL);
}

int main(void)
{
    struct perr e;
    const char *sid;
    time_t now = 1800000000; /* 2027-01-15 */

    CHECK("wildcard star", policy_wildcard("ecr:Batch*", "ecr:BatchGetImage", false));
    CHECK("wildcard question", policy_wildcard("a?c", "abc", false) && !policy_wildcard("a?c", "ac", false));
    CHECK("wildcard case", policy_wildcard("ECR:batch*", "ecr:BatchGetImage", true) &&
                               !policy_wildcard("ECR:batch*", "ecr:BatchGetImage", false));
    CHECK("wildcard middle", policy_wildcard(REPO("ecr-public/docker/*"), REPO("ecr-public/docker/library/nginx"), false));
    CHECK("wildcard no match", !policy_wildcard(REPO("ecr-public/docker/*"), REPO("ecr-public/nginx/nginx"), false));

    /* The reference scenario: a registry policy lets one group import only docker images. */
    struct policy *reg = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"PullThroughDocker\",\"Effect\":\"Allow\","
        "\"Principal\":{\"AWS\":[\"" ALICE "\"]},\"Action\":[\"ecr:CreateRepository\",\"ecr:BatchImportUpstreamImage\"],"
        "\"Resource\":\"" REPO("ecr-public/docker/*") "\"}]}", POLICY_RESOURCE, &e);
    CHECK("registry policy parses", reg != NULL);
    CHECK("alice may import docker/*", eval(reg, ALICE, "ecr:BatchImportUpstreamImage",
                                            REPO("ecr-public/docker/library/nginx"), NULL, now, &sid) == EFFECT_ALLOW &&
                                           !strcmp(sid, "PullThroughDocker"));
    CHECK("alice may not import nginx/nginx", eval(reg, ALICE, "ecr:BatchImportUpstreamImage",
                                                   REPO("ecr-public/nginx/nginx"), NULL, now, &sid) == EFFECT_NONE);
    CHECK("bob is not named", eval(reg, BOB, "ecr:CreateRepository", REPO("ecr-public/docker/x"), NULL, now,
                                   &sid) == EFFECT_NONE);
    CHECK("anonymous is not named", eval(reg, NULL, "ecr:CreateRepository", REPO("ecr-public/docker/x"), NULL,
                                         now, &sid) == EFFECT_NONE);
    CHECK("other actions not granted", eval(reg, ALICE, "ecr:PutImage", REPO("ecr-public/docker/x"), NULL, now,
                                            &sid) == EFFECT_NONE);
    policy_free(reg);

    struct policy *admin = parse("{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\","
                                 "\"Action\":\"ecr:*\",\"Resource\":\"*\"}}", POLICY_IDENTITY, &e);
    CHECK("identity policy with single statement object", admin != NULL);
    CHECK("ecr:* allows anything", eval(admin, ALICE, "ecr:DeleteRepository", REPO("x"), NULL, now, &sid) ==
                                       EFFECT_ALLOW);
    policy_free(admin);

    struct policy *mix = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":["
        "{\"Sid\":\"All\",\"Effect\":\"Allow\",\"Action\":\"ecr:*\",\"Resource\":\"*\"},"
        "{\"Sid\":\"NoProd\",\"Effect\":\"Deny\",\"Action\":[\"ecr:PutImage\",\"ecr:BatchDelete*\"],"
        "\"Resource\":\"" REPO("prod/*") "\"}]}", POLICY_IDENTITY, &e);
    CHECK("deny overrides allow", eval(mix, ALICE, "ecr:PutImage", REPO("prod/app"), NULL, now, &sid) ==
                                      EFFECT_DENY && !strcmp(sid, "NoProd"));
    CHECK("deny wildcard action", eval(mix, ALICE, "ecr:BatchDeleteImage", REPO("prod/app"), NULL, now, &sid) ==
                                      EFFECT_DENY);
    CHECK("allow elsewhere", eval(mix, ALICE, "ecr:PutImage", REPO("dev/app"), NULL, now, &sid) == EFFECT_ALLOW &&
                                 !strcmp(sid, "All"));
    policy_free(mix);

    struct policy *nots = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"NotAction\":\"ecr:Delete*\","
        "\"NotResource\":\"" REPO("secret/*") "\"}]}", POLICY_IDENTITY, &e);
    CHECK("NotAction/NotResource parse", nots != NULL);
    CHECK("NotAction excludes", eval(nots, ALICE, "ecr:DeleteRepository", REPO("a"), NULL, now, &sid) == EFFECT_NONE);
    CHECK("NotResource excludes", eval(nots, ALICE, "ecr:BatchGetImage", REPO("secret/x"), NULL, now, &sid) ==
                                      EFFECT_NONE);
    CHECK("NotAction/NotResource allow the rest", eval(nots, ALICE, "ecr:BatchGetImage", REPO("a"), NULL, now,
                                                       &sid) == EFFECT_ALLOW);
    policy_free(nots);

    struct policy *cond = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\","
        "\"Action\":\"ecr:BatchGetImage\",\"Condition\":{"
        "\"IpAddress\":{\"aws:SourceIp\":[\"10.0.0.0/8\",\"2001:db8::/32\"]},"
        "\"DateLessThan\":{\"aws:CurrentTime\":\"2027-06-01T00:00:00Z\"},"
        "\"StringLike\":{\"aws:PrincipalArn\":\"arn:aws:iam::123456789012:user/a*\"}}}]}",
        POLICY_RESOURCE, &e);
    CHECK("conditions parse", cond != NULL);
    CHECK("conditions all hold", eval(cond, ALICE, "ecr:BatchGetImage", REPO("x"), "10.1.2.3", now, &sid) ==
                                     EFFECT_ALLOW);
    CHECK("ipv6 in range", eval(cond, ALICE, "ecr:BatchGetImage", REPO("x"), "2001:db8::5", now, &sid) ==
                               EFFECT_ALLOW);
    CHECK("ip outside", eval(cond, ALICE, "ecr:BatchGetImage", REPO("x"), "192.168.1.1", now, &sid) == EFFECT_NONE);
    CHECK("after the date", eval(cond, ALICE, "ecr:BatchGetImage", REPO("x"), "10.1.2.3", now + 86400 * 200,
                                 &sid) == EFFECT_NONE);
    CHECK("StringLike on principal", eval(cond, BOB, "ecr:BatchGetImage", REPO("x"), "10.1.2.3", now, &sid) ==
                                         EFFECT_NONE);
    CHECK("missing key fails positive operator", eval(cond, NULL, "ecr:BatchGetImage", REPO("x"), "10.1.2.3",
                                                      now, &sid) == EFFECT_NONE);
    policy_free(cond);

    struct policy *notip = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":\"*\"},"
        "\"Action\":\"ecr:*\",\"Condition\":{\"NotIpAddress\":{\"aws:SourceIp\":\"127.0.0.0/8\"},"
        "\"StringEquals\":{\"aws:PrincipalAccount\":\"123456789012\"}}}]}", POLICY_RESOURCE, &e);
    CHECK("NotIpAddress denies outside", eval(notip, ALICE, "ecr:BatchGetImage", REPO("x"), "10.0.0.1", now, &sid) ==
                                             EFFECT_DENY);
    CHECK("NotIpAddress spares inside", eval(notip, ALICE, "ecr:BatchGetImage", REPO("x"), "127.0.0.1", now, &sid) ==
                                            EFFECT_NONE);
    policy_free(notip);

    struct policy *acct = parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
        "\"arn:aws:iam::123456789012:root\"},\"Action\":\"ecr:BatchGetImage\"}]}", POLICY_RESOURCE, &e);
    CHECK("account root covers its users", eval(acct, BOB, "ecr:BatchGetImage", REPO("x"), NULL, now, &sid) ==
                                               EFFECT_ALLOW);
    CHECK("account root does not cover others",
          eval(acct, "arn:aws:iam::999999999999:user/x", "ecr:BatchGetImage", REPO("x"), NULL, now, &sid) ==
              EFFECT_NONE);
    policy_free(acct);

    /* Malformed documents, each with a useful message. */
    const char *m;
    m = error_of("{nope", POLICY_IDENTITY);
    CHECK("invalid JSON", m && strstr(m, "not valid JSON"));
    m = error_of("{\"Statement\":[]}", POLICY_IDENTITY);
    CHECK("missing Version", m && strstr(m, "Version"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[]}", POLICY_IDENTITY);
    CHECK("empty Statement", m && strstr(m, "Statement"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statment\":[]}", POLICY_IDENTITY);
    CHECK("unknown top-level key", m && strstr(m, "Statment"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"ecr:*\","
                 "\"Resource\":\"*\",\"Actoin\":\"x\"}]}", POLICY_IDENTITY);
    CHECK("unknown statement key with path", m && strstr(m, "Statement[0].Actoin"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Maybe\",\"Action\":\"ecr:*\","
                 "\"Resource\":\"*\"}]}", POLICY_IDENTITY);
    CHECK("bad Effect", m && strstr(m, "Statement[0].Effect"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
                 "\"Resource\":\"*\"}]}", POLICY_IDENTITY);
    CHECK("non-ECR action", m && strstr(m, "Statement[0].Action") && strstr(m, "s3:GetObject"));
    {
        /* IAM's actions (users, keys, identity policies from the console):
         * accepted, and ecr:* does not grant them. */
        struct perr ie;
        struct policy *ip = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                                  "\"Action\":\"iam:CreateAccessKey\",\"Resource\":\"" BOB "\"}]}",
                                  POLICY_IDENTITY, &ie);
        const char *isid;
        CHECK("iam: actions parse and grant on the user ARN",
              ip && eval(ip, ALICE, "iam:CreateAccessKey", BOB, NULL, 0, &isid) == EFFECT_ALLOW &&
                  eval(ip, ALICE, "iam:CreateAccessKey", ALICE, NULL, 0, &isid) != EFFECT_ALLOW);
        policy_free(ip);
        ip = parse("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                   "\"Action\":\"ecr:*\",\"Resource\":\"*\"}]}", POLICY_IDENTITY, &ie);
        CHECK("ecr:* does not grant iam: actions",
              ip && eval(ip, ALICE, "iam:DeleteUser", BOB, NULL, 0, &isid) != EFFECT_ALLOW);
        policy_free(ip);
    }
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"ecr:A\",5],"
                 "\"Resource\":\"*\"}]}", POLICY_IDENTITY);
    CHECK("non-string action with index", m && strstr(m, "Statement[0].Action[1]"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"ecr:*\","
                 "\"Resource\":\"*\",\"Condition\":{\"StringLik\":{\"aws:username\":\"x\"}}}]}", POLICY_IDENTITY);
    CHECK("unknown operator with path", m && strstr(m, "Statement[0].Condition.StringLik"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"ecr:*\","
                 "\"Resource\":\"*\",\"Condition\":{\"StringLike\":{\"aws:Foo\":\"x\"}}}]}", POLICY_IDENTITY);
    CHECK("unknown condition key", m && strstr(m, "aws:Foo"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"ecr:*\","
                 "\"Resource\":\"*\",\"Condition\":{\"IpAddress\":{\"aws:SourceIp\":\"10.0.0.300/8\"}}}]}",
                 POLICY_IDENTITY);
    CHECK("bad CIDR", m && strstr(m, "10.0.0.300/8"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"ecr:*\"}]}",
                 POLICY_RESOURCE);
    CHECK("resource policy needs Principal", m && strstr(m, "Principal"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\","
                 "\"Action\":\"ecr:*\",\"Resource\":\"*\"}]}", POLICY_IDENTITY);
    CHECK("identity policy refuses Principal", m && strstr(m, "Principal"));
    m = error_of("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
                 "\"arn:aws:iam::*:user/x\"},\"Action\":\"ecr:*\"}]}", POLICY_RESOURCE);
    CHECK("wildcard principal ARN refused", m && strstr(m, "Principal.AWS"));
    char big[POLICY_MAX_BYTES + 100];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    m = error_of(big, POLICY_IDENTITY);
    CHECK("oversize refused", m && strstr(m, "limit"));
    test_resource_tags();
    test_roles();
    test_known_actions();
    return TAP_DONE();
}
