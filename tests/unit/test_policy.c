/* Unit tests for the IAM policy parser and evaluator. */
#include <time.h>
#include "auth/policy.h"
#include "tap.h"

#define REPO(x) "arn:aws:ecr:us-east-1:123456789012:repository/" x
#define ALICE "arn:aws:iam::123456789012:user/alice"
#define BOB "arn:aws:iam::123456789012:user/bob"

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
    return TAP_DONE();
}
