/* lifecycle_store: where lifecycle policies and their previews are kept. It
 * owns the tables lifecycle_policies (one policy per repository, with the
 * time its last run finished), lifecycle_previews and
 * lifecycle_preview_results (the last preview of each repository). Nothing
 * here evaluates a policy: lifecycle_run does, with store/lifecycle. None of
 * these functions authorizes: the caller has. */
#ifndef PIER_LIFECYCLE_STORE_H
#define PIER_LIFECYCLE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

/* ECR's bound on a lifecycle policy's text (LifecyclePolicyText). */
#define LIFECYCLE_TEXT_MAX 30720

/* One image a policy expires, as a preview shows it and a run deletes it. */
struct lifecycle_expiry {
    const char *digest;
    const char *tags_json; /* JSON array of its tags, by name; "[]" untagged */
    long long pushed_at;   /* seconds since the epoch */
    int rule;              /* rulePriority of the rule that expires it */
};

/* A repository's stored policy. */
struct lifecycle_record {
    const char *text;
    long long last_evaluated_at; /* seconds since the epoch, 0: never run */
};

/* Store text (checked with lifecycle_parse first: PIER_E_BAD_REQUEST naming
 * the rule and element) as the policy of repository name, replacing any.
 * PIER_E_NAME_UNKNOWN when the repository does not exist. */
PIER_MUST_USE
pier_err lifecycle_policy_put(struct ctx *c, const char *name, const char *text, struct perr *e);
/* The policy of name (arena): PIER_E_NAME_UNKNOWN when the repository does
 * not exist, PIER_E_MANIFEST_UNKNOWN when it has no policy. */
PIER_MUST_USE
pier_err lifecycle_policy_get(struct ctx *c, const char *name, struct lifecycle_record *out,
                              struct perr *e);
/* Remove the policy of name and give it back in *old; errors as
 * lifecycle_policy_get. The repository's last preview stays. */
PIER_MUST_USE
pier_err lifecycle_policy_delete(struct ctx *c, const char *name, struct lifecycle_record *old,
                                 struct perr *e);
/* A creation template's policy for the repository just created with id
 * repo_id, in the caller's transaction. A text that is not a valid policy
 * (stored before templates checked it) is left out with a warning in the
 * log: creating the repository goes on. */
PIER_MUST_USE
pier_err lifecycle_policy_init(struct ctx *c, const char *repo_id, const char *text,
                               struct perr *e);
/* A run of name's policy finished now (GetLifecyclePolicy's lastEvaluatedAt). */
PIER_MUST_USE
pier_err lifecycle_policy_evaluated(struct ctx *c, const char *name, struct perr *e);
/* Up to n repositories that have a policy, the longest unevaluated first
 * (never evaluated before all others): *names (arena), *count. */
PIER_MUST_USE
pier_err lifecycle_policy_due(struct ctx *c, int n, const char ***names, int *count,
                              struct perr *e);
/* How many repositories have a policy, and the unix time of the oldest
 * last run among them (a policy never run counts from when it was put; 0
 * when there are none): for /metrics, so that an alert sees policies that
 * stopped running. */
PIER_MUST_USE
pier_err lifecycle_policy_staleness(struct ctx *c, long long *policies, long long *oldest,
                                    struct perr *e);

/* ---- previews ---- */

/* Take the lock of name's preview for the caller's transaction (which must
 * be open): PIER_E_CONFLICT when another preview of it is being computed. */
PIER_MUST_USE
pier_err lifecycle_preview_lock(struct ctx *c, const char *name, struct perr *e);
/* Replace name's preview: text was evaluated and expires the n images of x,
 * in that order. In the caller's transaction when one is open. */
PIER_MUST_USE
pier_err lifecycle_preview_save(struct ctx *c, const char *name, const char *text,
                                const struct lifecycle_expiry *x, size_t n, struct perr *e);

struct lifecycle_preview {
    const char *text;     /* the policy text it evaluated */
    const char *status;   /* "COMPLETE" */
    long long expiring;   /* how many images it expires */
    long long created_at; /* seconds since the epoch */
};

/* name's last preview (arena): PIER_E_NAME_UNKNOWN when the repository does
 * not exist, PIER_E_MANIFEST_UNKNOWN when it has none. */
PIER_MUST_USE
pier_err lifecycle_preview_get(struct ctx *c, const char *name, struct lifecycle_preview *out,
                               struct perr *e);
/* Results of name's last preview, appended to out as ECR's
 * LifecyclePolicyPreviewResult objects: status "ANY", "TAGGED" or
 * "UNTAGGED" filters on tags; digest and tag (each may be NULL) keep only
 * the image with that digest or carrying that tag; up to limit after
 * skipping offset, *more when others follow. */
PIER_MUST_USE
pier_err lifecycle_preview_results(struct ctx *c, const char *name, const char *status,
                                   const char *digest, const char *tag, long long limit,
                                   long long offset, json_t *out, bool *more, struct perr *e);

#endif
