/* lifecycle: ECR's lifecycle policy language — parsing with the errors ECR
 * names, and the evaluation that decides which images a policy expires.
 * Pure: no database, no clock of its own; the caller passes the images and
 * "now". Storing policies is store/lifecycle_store.h's; planning, previewing
 * and running them store/lifecycle_run.h's (docs/lifecycle.md). */
#ifndef PIER_LIFECYCLE_H
#define PIER_LIFECYCLE_H

#include <stddef.h>
#include "lib/contract.h"
#include "lib/err.h"

#define LIFECYCLE_MAX_RULES 50
#define LIFECYCLE_MAX_WILDCARDS 4

struct lifecycle_policy;

/* One image of a repository as the evaluation sees it. */
struct lifecycle_image {
    const char *digest;
    const char *const *tags; /* ntags tags; untagged: ntags == 0 */
    size_t ntags;
    long long pushed_at;     /* seconds since the epoch */
    long long pulled_at;     /* last recorded pull, 0 when never pulled */
};

/* Parse and validate a policy document ({"rules":[...]}). On failure
 * PIER_E_BAD_REQUEST with a message naming the offending rule and element
 * (e.g. "rules[1].selection.countUnit: ..."); *out is NULL. */
PIER_MUST_USE
pier_err lifecycle_parse(const char *text, struct lifecycle_policy **out, struct perr *e);
void lifecycle_free(struct lifecycle_policy *p);
size_t lifecycle_rule_count(const struct lifecycle_policy *p);

/* Which rule expires each image: expire_by[i] is the rulePriority of the
 * rule that expires imgs[i], 0 when none does. ECR's evaluation: every rule
 * selects by its tag filter and count over all images (as if nothing were
 * expired yet); an image is expired by at most one rule, the highest-priority
 * one that marks it, and never by a rule of lower priority than one whose
 * tag filter it matches. now is in seconds since the epoch. */
void lifecycle_evaluate(const struct lifecycle_policy *p, const struct lifecycle_image *imgs,
                        size_t n, long long now, int *expire_by);

#endif
