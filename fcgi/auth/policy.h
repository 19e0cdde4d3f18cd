/* policy: the IAM policy language subset ECR uses — parsing with a precise
 * error path for every refused element, and evaluation of one request
 * (principal, action, resource, source address, time) against a document. */
#ifndef PIER_POLICY_H
#define PIER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "lib/err.h"

#define POLICY_MAX_BYTES 10240   /* ECR's limit for repository and registry policies */
#define POLICY_MAX_STATEMENTS 100

enum policy_kind {
    POLICY_IDENTITY,   /* attached to a principal: no Principal element */
    POLICY_RESOURCE,   /* registry or repository policy: Principal required */
};

enum effect { EFFECT_NONE = 0, EFFECT_ALLOW, EFFECT_DENY };

struct policy;

/* One tag of the resource a request is about (aws:ResourceTag/<key>). */
struct policy_tag {
    const char *key;
    const char *value;
};

/* What is being asked. principal is an ARN (a user's or a role's), or NULL
 * for an anonymous caller. */
struct authz_request {
    const char *principal;
    const char *action;      /* e.g. "ecr:BatchGetImage" */
    const char *resource;    /* e.g. "arn:aws:ecr:us-east-1:123456789012:repository/x/y" */
    const char *source_ip;   /* textual IPv4 or IPv6, may be NULL */
    time_t now;
    const struct policy_tag *tags; /* the resource's tags (ntags of them), for the condition
                                      keys aws:ResourceTag/<key> and ecr:ResourceTag/<key> */
    size_t ntags;
};

/* Parse and check a document. Errors are PIER_E_BAD_REQUEST with a message
 * naming the JSON path ("Statement[1].Condition.StringLik: unknown operator").
 * On success the caller owns *out (policy_free). */
PIER_MUST_USE
pier_err policy_parse(const char *json, size_t len, enum policy_kind kind, struct policy **out,
                      struct perr *e);
void policy_free(struct policy *p);

/* The effect of the document on the request: EFFECT_DENY if a matching
 * statement denies, else EFFECT_ALLOW if one allows, else EFFECT_NONE.
 * *sid receives the deciding statement's Sid (or "" when it has none). */
enum effect policy_evaluate(const struct policy *p, const struct authz_request *rq, const char **sid);

/* True when some statement has a Condition (its decisions then depend on the
 * request's address, time or resource tags and must not be reused). */
bool policy_has_conditions(const struct policy *p);

/* IAM wildcard match: '*' any run, '?' one character. */
bool policy_wildcard(const char *pattern, const char *s, bool ignore_case);

/* The actions a policy can name: every ECR action (those of AWS's ECR,
 * including the ones Pier answers with UnsupportedOperation, and Pier's own
 * ecr:GetMetrics and ecr:LookupAuditEvents) and the Secrets Manager actions of
 * the secrets a rule uses. The one list: the console's editor warns about an
 * action outside it (GET /console/api/policy-actions), and the control plane's
 * operations are checked against it by the unit tests. A policy naming an
 * unknown action is still accepted, as IAM accepts it: it grants nothing. */
extern const char *const policy_actions[];
extern const size_t policy_actions_count;

/* Does action (a pattern with * and ?, case-insensitive as IAM compares
 * actions) name at least one action of policy_actions? "*" does. */
bool policy_action_known(const char *action);

#endif
