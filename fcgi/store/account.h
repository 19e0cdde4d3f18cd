/* account: registry-wide settings of the account that are stored — the
 * principals whose pulls do not update lastRecordedPullTime (ECR's pull-time
 * update exclusions). The only module with SQL on pull_time_exclusions; the
 * pull recorder (repo_note_pulls) reads it. Results live in the request
 * arena. */
#ifndef PIER_ACCOUNT_H
#define PIER_ACCOUNT_H

#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

/* At most this many exclusions per registry (ECR's list holds 100). */
#define ACCOUNT_EXCLUSIONS_MAX 100

/* Exclude principal_arn (an IAM ARN the caller checked) from pull-time
 * updates; *created_at (unix s) is when. PIER_E_CONFLICT when it is already
 * excluded, PIER_E_TOO_LARGE when ACCOUNT_EXCLUSIONS_MAX are registered. */
PIER_MUST_USE
pier_err account_exclusion_add(struct ctx *c, const char *principal_arn, long long *created_at,
                               struct perr *e);
/* Remove the exclusion of principal_arn; PIER_E_NAME_UNKNOWN when there is
 * none. */
PIER_MUST_USE
pier_err account_exclusion_delete(struct ctx *c, const char *principal_arn, struct perr *e);
/* The excluded ARNs in ARN order, at most limit from offset: *arns (arena),
 * *n of them. */
PIER_MUST_USE
pier_err account_exclusion_list(struct ctx *c, long long limit, long long offset,
                                const char ***arns, int *n, struct perr *e);

#endif
