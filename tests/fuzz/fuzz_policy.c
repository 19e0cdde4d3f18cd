/* Fuzz target: IAM policy documents (policy_parse in auth/policy.c), parsed
 * as identity and as resource policies; every document that parses is
 * evaluated against a set of requests (principals, actions, resources,
 * IPv4/IPv6/garbage source addresses, times). Also policy_wildcard with
 * line 1 as the pattern and line 2 as the string.
 * Checks: evaluation is deterministic and names a statement only when it
 * decides; a wildcard-free pattern matches exactly its own string, and any
 * string matches itself. */
#include <string.h>
#include <strings.h>
#include "auth/policy.h"
#include "fuzz.h"

static const char *const PRINCIPALS[] = {
    NULL, "arn:aws:iam::111122223333:user/alice", "arn:aws:iam::444455556666:user/ci/bob",
    "arn:aws:iam::111122223333:root"};
static const char *const ACTIONS[] = {"ecr:BatchGetImage", "ecr:PutImage", "ecr:CreateRepository",
                                      "ecr:DescribeRepositories"};
static const char *const RESOURCES[] = {
    "arn:aws:ecr:us-east-1:111122223333:repository/team/app",
    "arn:aws:ecr:us-east-1:111122223333:registry"};
static const char *const ADDRESSES[] = {NULL, "10.1.2.3", "2001:db8::17", "::ffff:192.0.2.1",
                                        "not-an-address"};
static const time_t TIMES[] = {1767225600 /* 2026-01-01 */, 0, 4102444800 /* 2100-01-01 */};

static void evaluate(const struct policy *p)
{
    for (unsigned i = 0; i < 12; i++) {
        struct authz_request rq = {
            .principal = PRINCIPALS[i % 4],
            .action = ACTIONS[(i / 2) % 4],
            .resource = RESOURCES[i % 2],
            .source_ip = ADDRESSES[i % 5],
            .now = TIMES[i % 3],
        };
        const char *sid = NULL, *sid2 = NULL;
        enum effect a = policy_evaluate(p, &rq, &sid);
        enum effect b = policy_evaluate(p, &rq, &sid2);
        FUZZ_ASSERT(a == b && sid && sid2 && strcmp(sid, sid2) == 0);
        FUZZ_ASSERT(a == EFFECT_NONE || a == EFFECT_ALLOW || a == EFFECT_DENY);
        if (a == EFFECT_NONE)
            FUZZ_ASSERT(sid[0] == '\0');
        FUZZ_ASSERT(policy_evaluate(p, &rq, NULL) == a);
    }
    (void)policy_has_conditions(p);
}

static void wildcard(char *input)
{
    char *cursor = input;
    const char *pattern = fuzz_line(&cursor);
    const char *s = fuzz_line(&cursor);
    bool cs = policy_wildcard(pattern, s, false);
    bool ci = policy_wildcard(pattern, s, true);
    FUZZ_ASSERT(!cs || ci);
    if (!strpbrk(pattern, "*?")) {
        FUZZ_ASSERT(cs == (strcmp(pattern, s) == 0));
        FUZZ_ASSERT(ci == (strcasecmp(pattern, s) == 0));
    }
    FUZZ_ASSERT(policy_wildcard("*", s, false));
    /* '*' and '?' also match themselves: every string matches itself. */
    FUZZ_ASSERT(policy_wildcard(s, s, false));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum policy_kind kinds[] = {POLICY_IDENTITY, POLICY_RESOURCE};
    for (size_t k = 0; k < 2; k++) {
        struct policy *p = (struct policy *)1;
        struct perr e;
        if (policy_parse((const char *)data, size, kinds[k], &p, &e) == PIER_OK) {
            FUZZ_ASSERT(p != NULL);
            evaluate(p);
            policy_free(p);
        } else {
            FUZZ_ASSERT(p == NULL && e.code == PIER_E_BAD_REQUEST);
            FUZZ_ASSERT(memchr(e.msg, '\0', sizeof e.msg) != NULL);
        }
    }
    char *s = fuzz_strdup(data, size);
    wildcard(s);
    free(s);
    return 0;
}
